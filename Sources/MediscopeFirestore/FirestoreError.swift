/// A failed Firestore call, decided by the error body's `status` (a google.rpc.Code name), not only by
/// the HTTP code: 409 is both ABORTED (retry) and ALREADY_EXISTS (do not).
///
/// Source: the REST error body `{"error": {"code": 409, "message": "...", "status": "ALREADY_EXISTS"}}`.
/// A transfer that got no response (refused, reset, timed out) is `unavailable` or `deadlineExceeded`.
package struct FirestoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// google.rpc.Code names, as the REST API spells them.
    package enum Status: String, Sendable {
        case cancelled = "CANCELLED", unknown = "UNKNOWN", invalidArgument = "INVALID_ARGUMENT"
        case deadlineExceeded = "DEADLINE_EXCEEDED", notFound = "NOT_FOUND", alreadyExists = "ALREADY_EXISTS"
        case permissionDenied = "PERMISSION_DENIED", resourceExhausted = "RESOURCE_EXHAUSTED"
        case failedPrecondition = "FAILED_PRECONDITION", aborted = "ABORTED", outOfRange = "OUT_OF_RANGE"
        case unimplemented = "UNIMPLEMENTED", internalError = "INTERNAL", unavailable = "UNAVAILABLE"
        case dataLoss = "DATA_LOSS", unauthenticated = "UNAUTHENTICATED"
    }

    package var status: Status
    /// The HTTP status, 0 when no response came.
    package var httpStatus: Int
    /// Firestore's or the transport's message; never holds credentials.
    package var message: String

    package init(_ status: Status, httpStatus: Int = 0, _ message: String) {
        self.status = status; self.httpStatus = httpStatus; self.message = message
    }

    /// Worth another attempt after a back-off: ABORTED, UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED
    /// (and INTERNAL, which Google documents as transient). Never INVALID_ARGUMENT, FAILED_PRECONDITION,
    /// PERMISSION_DENIED, NOT_FOUND or ALREADY_EXISTS.
    package var isRetryable: Bool {
        switch status {
        case .aborted, .unavailable, .deadlineExceeded, .resourceExhausted, .internalError: true
        default: false
        }
    }

    package var description: String { "Firestore \(status.rawValue) (HTTP \(httpStatus)): \(message)" }

    /// The status a bare HTTP code stands for when the body names none (google.rpc.Code's mapping).
    static func status(forHTTP code: Int) -> Status {
        switch code {
        case 400: .invalidArgument
        case 401: .unauthenticated
        case 403: .permissionDenied
        case 404: .notFound
        case 409: .aborted
        case 412: .failedPrecondition
        case 429: .resourceExhausted
        case 499: .cancelled
        case 501: .unimplemented
        case 503: .unavailable
        case 504: .deadlineExceeded
        default: code >= 500 ? .internalError : .unknown
        }
    }
}
