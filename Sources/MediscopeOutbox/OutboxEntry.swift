import Foundation

/// One write waiting in the outbox for delivery to the shared store (Firestore).
package struct OutboxEntry: Sendable, Equatable {
    /// What the delivery does with the entry.
    package enum Kind: String, Sendable, Codable {
        /// Create the analysis record and its images (`key`: the analysis id; body: the record's JSON).
        case analysisCreate = "analysis.create"
        /// Delete the analysis and the images no other record uses (`key`: the analysis id; no body).
        case analysisDelete = "analysis.delete"
        /// Append one audit entry (`key`: its id in decimal; body: the entry's JSON, id set).
        case auditAppend = "audit.append"
    }

    /// Position in the outbox: deliveries happen in this order.
    package let seq: Int64
    package let kind: Kind
    package let key: String
    /// The organisation the entry belongs to (nil for audit entries without one).
    package let organizationId: String?
    /// When the entry was made durable here (millisecond precision).
    package let enqueuedAt: Date
    /// JSON of the record or audit entry (empty for a delete).
    package let body: [UInt8]
    /// Delivery attempts begun so far; counted (durably) before each attempt is sent.
    package let attempts: Int
    /// Not before this time is the entry tried again.
    package let nextAttemptAt: Date
    /// The last failure, in words (Firestore's status and message; never the record's contents).
    package let lastError: String?
    /// Set once the shared store refused the entry for good; a parked entry is kept, never retried by
    /// itself, and counted in `OutboxStats.parked` until an operator requeues it.
    package let parkedAt: Date?
}
