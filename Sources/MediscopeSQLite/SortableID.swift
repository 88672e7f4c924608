import Foundation

/// 26-character time-ordered ids (ULID layout): 48-bit milliseconds since the epoch + 80 random bits,
/// as Crockford base32 (upper case), so that ids sort by creation time as text.
package enum SortableID {
    static let alphabet: [UInt8] = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    /// A new id for `now` with 80 fresh random bits. Ordered across calls to the millisecond only;
    /// use a `Generator` where ids made within one millisecond must sort in creation order.
    package static func next(now: Date) -> String {
        var rng = SystemRandomNumberGenerator()
        return encode(ms: milliseconds(now), high: UInt16.random(in: 0...UInt16.max, using: &rng), low: rng.next())
    }

    /// The id a digest names (its first 16 bytes: 48 bits where the time goes, 80 after): the same digest
    /// always gives the same id, so two processes or hosts that derive it from the same thing name one
    /// record. Valid like any id, but its time field is no time: it sorts nowhere in particular.
    package static func derived(from digest: [UInt8]) -> String {
        precondition(digest.count >= 16, "a derived id needs 16 bytes of digest")
        func int<T: FixedWidthInteger>(_ range: Range<Int>, _: T.Type) -> T {
            digest[range].reduce(T(0)) { $0 << 8 | T($1) }
        }
        return encode(ms: int(0..<6, UInt64.self), high: int(6..<8, UInt16.self), low: int(8..<16, UInt64.self))
    }

    /// 26 chars, all Crockford base32 (upper case), first char 0...7 (48-bit time).
    package static func isValid(_ id: String) -> Bool {
        let utf8 = Array(id.utf8)
        guard utf8.count == 26, let first = utf8.first, first >= UInt8(ascii: "0"), first <= UInt8(ascii: "7") else { return false }
        return utf8.allSatisfy { alphabet.contains($0) }
    }

    /// The id of millisecond `ms` (its low 48 bits) and the 80 bits `high` (top 16) and `low` (bottom 64).
    package static func encode(ms: UInt64, high: UInt16, low: UInt64) -> String {
        var chars = [UInt8](repeating: 0, count: 26)
        let time = ms & 0xffff_ffff_ffff
        for i in 0..<10 { chars[i] = alphabet[Int((time >> UInt64(45 - 5 * i)) & 31)] }
        // 80 random bits as 16 groups of 5, most significant first.
        for i in 0..<16 {
            let shift = 75 - 5 * i   // bit position of the group's lowest bit within the 80 bits
            let value: UInt64
            if shift >= 64 {
                value = UInt64(high) >> UInt64(shift - 64)
            } else if shift > 59 {
                // Group straddles the high/low boundary.
                value = (UInt64(high) << UInt64(64 - shift)) | (low >> UInt64(shift))
            } else {
                value = low >> UInt64(shift)
            }
            chars[10 + i] = alphabet[Int(value & 31)]
        }
        return String(decoding: chars, as: UTF8.self)
    }

    /// Truncated, not rounded like stored dates: an id never names a millisecond that has not begun.
    static func milliseconds(_ date: Date) -> UInt64 {
        UInt64(max(0, (date.timeIntervalSince1970 * 1000).rounded(.down)))
    }

    /// Ids that are strictly increasing within one process (same millisecond: the random part is
    /// incremented; clock stepping back: the last timestamp is kept), so a newer id always sorts later
    /// here. Across processes ordering holds to the millisecond.
    package final class Generator: @unchecked Sendable {
        package static let shared = Generator()

        private let lock = NSLock()
        private var lastMs: UInt64 = 0
        private var lastHigh: UInt16 = 0   // top 16 of the 80 random bits
        private var lastLow: UInt64 = 0    // bottom 64

        package init() {}

        /// Returns a new id and the millisecond timestamp it encodes.
        package func next(now: Date = Date()) -> (id: String, ms: Int64) {
            let nowMs = SortableID.milliseconds(now)
            var rng = SystemRandomNumberGenerator()
            lock.lock()
            defer { lock.unlock() }
            if nowMs > lastMs {
                lastMs = nowMs
                lastHigh = UInt16.random(in: 0...UInt16.max, using: &rng) & 0x7fff  // leave room to increment
                lastLow = rng.next()
            } else {
                // Same (or earlier) millisecond: increment the 80-bit random part.
                let (low, overflow) = lastLow.addingReportingOverflow(1)
                lastLow = low
                if overflow {
                    if lastHigh == UInt16.max { lastMs += 1; lastHigh = 0 } else { lastHigh += 1 }
                }
            }
            return (SortableID.encode(ms: lastMs, high: lastHigh, low: lastLow), Int64(lastMs))
        }
    }
}
