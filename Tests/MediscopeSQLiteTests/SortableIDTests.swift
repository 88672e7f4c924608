import Foundation
import Testing
@testable import MediscopeSQLite

/// The ids every SQLite store gives its rows: 26 characters, sortable by the time they were made.
@Suite struct SortableIDTests {
    @Test func idsAreTimeOrderedAndUnique() throws {
        var ids: [String] = []
        for _ in 0..<2000 { ids.append(SortableID.Generator.shared.next().id) }
        #expect(ids == ids.sorted())
        #expect(Set(ids).count == ids.count)
        // The timestamp part decodes back to the milliseconds it came from.
        let date = Date(timeIntervalSince1970: 1_700_000_000.123)
        let (id, ms) = SortableID.Generator().next(now: date)
        #expect(ms == 1_700_000_000_123)
        #expect(String(id.prefix(10)) == String(SortableID.encode(ms: 1_700_000_000_123, high: 0, low: 0).prefix(10)))
        #expect(SortableID.encode(ms: 0, high: 0, low: 0) == String(repeating: "0", count: 26))
        #expect(SortableID.encode(ms: 0xffff_ffff_ffff, high: .max, low: .max) == "7" + String(repeating: "Z", count: 25))
        // The stateless variant (account ids) encodes the same timestamp.
        let randomId = SortableID.next(now: date)
        #expect(SortableID.isValid(randomId))
        #expect(randomId.prefix(10) == id.prefix(10))
    }
}
