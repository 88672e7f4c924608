import Foundation

/// What the status page, /api/metrics and /api/ready report of the outbox.
package struct OutboxStats: Sendable, Codable, Equatable {
    /// Entries waiting for delivery (parked ones not included).
    package var depth: Int
    /// Entries the shared store refused for good, kept here.
    package var parked: Int
    /// When the oldest waiting entry was enqueued; nil when none waits.
    package var oldestEnqueuedAt: Date?
    /// Entries delivered since the outbox file was made.
    package var deliveries: Int64
    /// Attempts that failed and were scheduled again.
    package var retries: Int64
    /// Entries ever parked.
    package var parkedTotal: Int64
    /// Whether the last call of the delivery loop reached the shared store: nil before its first call.
    package var remoteReachable: Bool?
    /// Since when `remoteReachable` has had its value.
    package var remoteSince: Date?
    /// The last error the delivery loop saw reaching the shared store (status words, no data).
    package var remoteLastError: String?
}
