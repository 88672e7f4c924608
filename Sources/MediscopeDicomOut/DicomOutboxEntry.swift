import Foundation

/// One DICOM object waiting for (or delivered to) one destination: which analysis's object it is, so the
/// delivery process writes it when it sends it (`DicomOutbox`).
package struct DicomOutboxEntry: Sendable, Equatable {
    /// Which of an analysis's DICOM objects.
    package enum Object: String, Sendable, Codable {
        /// The Comprehensive SR of report version `part` ("0": the analysis's, before any report).
        case sr
        /// The Secondary Capture of the heatmap of result `part`.
        case sc
    }

    /// Where an entry stands.
    package enum State: String, Sendable, Codable {
        /// Not delivered yet: due at `nextAttemptAt`, in order behind the destination's older entries.
        case waiting
        /// Refused past the attempt limit, or not writable: set aside until an operator requeues it.
        case parked
        /// The destination acknowledged it.
        case delivered
        /// Its analysis (or report version) no longer exists: nothing to send.
        case gone
    }

    /// Delivery order (per destination), never reused.
    package let seq: Int64
    /// The destination's name in `dicom.destinations`.
    package let destination: String
    package let analysisId: String
    package let organizationId: String
    package let object: Object
    /// The report version (SR) or the result id (SC).
    package let part: String
    /// The object's SOP Instance UID (an entry is queued once per destination and instance).
    package let sopInstanceUID: String
    package let state: State
    /// Attempts the destination answered with a refusal (an unreachable destination counts none).
    package let attempts: Int
    package let enqueuedAt: Date
    package let nextAttemptAt: Date
    /// Why the last attempt failed, in words that hold no patient data.
    package let lastError: String?
    /// When it was delivered, parked or found gone.
    package let settledAt: Date?
}
