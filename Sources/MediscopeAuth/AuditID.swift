import Foundation

/// Time-ordered audit entry ids that any process can assign on its own, before a shared store sees the
/// entry (several hosts, a local outbox):
///
///     id = milliseconds since the epoch << 20 | host tag << 12 | sequence
///
/// a positive `Int64` (the millisecond part lasts until the year 2248). The host tag is 8 random bits
/// drawn once per process (per `Generator`); the 12-bit sequence starts each millisecond at a random
/// value below 2048, so two processes share an id only when they share the tag, the millisecond and
/// the sequence (about 1 in 2^19 for two processes writing in the same millisecond). A store that holds
/// ids refuses a taken one (`.conflict`), so a collision is never a silent overwrite.
///
/// Within one `Generator` ids strictly increase, even when the clock steps back or 4096 ids are asked
/// for in one millisecond: the id then moves to the next sequence or millisecond after the last one.
/// Across processes and hosts ids are ordered by time to the millisecond, within the hosts' clock skew.
package enum AuditID {
    /// Bits below the millisecond part.
    package static let timeShift = 20
    static let tagShift = 12
    static let sequenceMask: Int64 = 0xfff

    /// A new id from the process-wide generator.
    package static func next() -> Int64 { Generator.shared.next() }

    /// The millisecond (since the epoch) that `id` was made in, or after when ids were asked for faster
    /// than 4096 a millisecond or the clock stepped back.
    package static func milliseconds(of id: Int64) -> Int64 { id >> Int64(timeShift) }

    /// The id layout for the given parts (each masked to its width).
    package static func make(milliseconds: Int64, hostTag: UInt8, sequence: Int64) -> Int64 {
        (milliseconds << Int64(timeShift)) | (Int64(hostTag) << Int64(tagShift)) | (sequence & sequenceMask)
    }

    /// Strictly increasing ids for one process (thread-safe). `shared` is the one the stores use.
    package final class Generator: @unchecked Sendable {
        /// The process-wide generator, with a random host tag.
        package static let shared = Generator()

        /// The 8 bits every id of this generator carries.
        package let hostTag: UInt8
        private let now: @Sendable () -> Date
        private let lock = NSLock()
        private var lastMs: Int64 = 0
        private var lastSequence: Int64 = 0

        /// A generator with `hostTag` (random when nil) reading the time from `now` (a test seam).
        package init(hostTag: UInt8? = nil, now: @escaping @Sendable () -> Date = Date.init) {
            var rng = SystemRandomNumberGenerator()
            self.hostTag = hostTag ?? UInt8.random(in: 0...UInt8.max, using: &rng)
            self.now = now
        }

        /// The next id: larger than every id this generator gave before.
        package func next() -> Int64 {
            let nowMs = max(0, Int64((now().timeIntervalSince1970 * 1000).rounded(.down)))
            var rng = SystemRandomNumberGenerator()
            // A random start leaves 2048 ids of headroom in the millisecond and spreads processes apart.
            let start = Int64.random(in: 0..<2048, using: &rng)
            return lock.withLock {
                if nowMs > lastMs {
                    lastMs = nowMs
                    lastSequence = start
                } else if lastSequence < AuditID.sequenceMask {
                    lastSequence += 1        // same millisecond, or the clock went back: keep counting
                } else {
                    lastMs += 1              // sequence used up: borrow the next millisecond, never repeat
                    lastSequence = 0
                }
                return AuditID.make(milliseconds: lastMs, hostTag: hostTag, sequence: lastSequence)
            }
        }
    }
}
