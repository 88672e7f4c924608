import Foundation

/// What `/api/status`, `/api/metrics` and `mediscope dicom-out status` report of one destination.
package struct DicomDestinationStats: Sendable, Equatable, Codable {
    package var name: String
    /// Entries not delivered yet.
    package var waiting: Int
    /// Entries set aside until an operator requeues them.
    package var parked: Int
    /// Objects delivered, found gone, refused attempts and parked entries since the queue was made.
    package var delivered: Int64
    package var gone: Int64
    package var refusedAttempts: Int64
    package var parkedTotal: Int64
    /// Rounds in which the destination could not be reached (connection, association, timeout, 5xx).
    package var unreachableAttempts: Int64
    /// When the oldest waiting entry was queued.
    package var oldestWaitingAt: Date?
    /// Whether the last round reached it; nil before the first.
    package var reachable: Bool?
    /// Since when `reachable` holds.
    package var since: Date?
    /// Why the last round failed (no patient data).
    package var lastError: String?
    /// When the destination is tried again after it could not be reached.
    package var retryAt: Date?
}
