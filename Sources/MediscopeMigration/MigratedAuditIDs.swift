import Foundation
import MediscopeAuth
import MediscopeEncoding

/// The `AuditID` a SQLite audit entry gets in Firestore: the same on every run, and in the SQLite order.
///
/// SQLite numbers entries 1, 2, 3... (AUTOINCREMENT); Firestore's are `AuditID`s (milliseconds << 20 |
/// host tag << 12 | sequence). Walking the SQLite log in id order from its first entry:
/// - the millisecond part is the entry's `time`, or the previous entry's millisecond when the time
///   stepped back (so ids keep SQLite's order even where times do not);
/// - the host tag is `hostTag` (0) for every migrated entry;
/// - the sequence counts the entries of one millisecond from 0; past 4095 the id moves on to the next
///   millisecond, as `AuditID.Generator` does.
/// Entries appended to SQLite after a run only extend the walk, so earlier entries keep their ids and a
/// re-run finds them under the same names. The entry's own `time` field is kept as SQLite holds it.
struct MigratedAuditIDs {
    /// The host tag of every migrated id.
    static let hostTag: UInt8 = 0

    private var lastMs: Int64 = -1
    private var sequence: Int64 = 0

    /// The id of the next entry of the walk, made at `time`.
    mutating func next(time: Date) -> Int64 {
        let ms = max(time.millisecondsSince1970, 0)
        if ms > lastMs {
            lastMs = ms
            sequence = 0
        } else if sequence < 0xfff {
            sequence += 1
        } else {
            lastMs += 1
            sequence = 0
        }
        return AuditID.make(milliseconds: lastMs, hostTag: Self.hostTag, sequence: sequence)
    }
}
