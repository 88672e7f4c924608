import MediscopeAuth
import MediscopeFirestore
import MediscopeImaging
import MediscopeInference
import MediscopeReport
import MediscopeServer
import MediscopeStore

/// An error of a layer below the HTTP one, and the one problem response it becomes.
///
/// Every mapping from an error type to a status lives here, once: handlers throw these errors or a
/// `Problem`, and `Services.problem(_:)` converts. Failures of our own dependencies (a store, the
/// models) are logged by kind, never by message (a message may quote data), and answered 503.
protocol ProblemConvertible: Error {
    /// The problem the client gets; `log` is where a server-side failure is recorded.
    func problem(log: ServerLog) -> Problem
}
extension Problem {
    /// A 503 for a part of the service that is down (the store, the accounts, Firestore, the models): the
    /// failure is logged as `event` with `fields` (kinds and codes, never patient data), the client is told
    /// `detail` and when to retry.
    static func unavailable(_ detail: String, retryAfter: Int = 5, log: ServerLog, _ event: StaticString,
                            _ fields: [String: LogField]) -> Problem {
        log.error(event, fields)
        return Problem(status: 503, detail: detail, retryAfter: retryAfter)
    }
}

extension StoreError: ProblemConvertible {
    func problem(log: ServerLog) -> Problem {
        if kind == .invalidCursor { return Problem.badRequest("the cursor is not valid") }
        if kind == .conflict { return Problem(status: 409, detail: "it was changed meanwhile: reload it and apply your change again") }
        // E.g. a display image over Firestore's 1 MiB document limit: this upload cannot be kept.
        if kind == .invalidRecord { return Problem(status: 422, detail: "the analysis cannot be stored: \(message)") }
        return .unavailable("the result store is unavailable", log: log, "store_error", ["kind": .token(.init(kind.rawValue))])
    }
}
extension FirestoreError: ProblemConvertible {
    /// Only setting up a client throws this to a handler (an unreadable key file); the stores map the rest.
    func problem(log: ServerLog) -> Problem {
        .unavailable("Firestore cannot be used: \(status.rawValue)", log: log, "firestore_error", ["status": .token(.init(status.rawValue))])
    }
}
extension AuthError: ProblemConvertible {
    /// The store's own refusals (weak password, duplicate name) are the caller's problem; being
    /// unavailable is ours.
    func problem(log: ServerLog) -> Problem {
        switch kind {
        case .invalid, .weakPassword: return Problem(status: 422, detail: message)
        case .conflict: return Problem(status: 409, detail: message)
        case .notFound: return Problem.notFound(message)
        case .unavailable:
            return .unavailable("the account store is unavailable", log: log, "accounts_error", ["kind": .token(.init(kind.rawValue))])
        }
    }
}
extension ModelError: ProblemConvertible {
    func problem(log: ServerLog) -> Problem {
        .unavailable("the models are not available: \(message)", retryAfter: 30, log: log, "model_error", ["kind": .token(.init(kind.rawValue))])
    }
}
extension ImagingError: ProblemConvertible {
    /// 415: not a format we read, or a variant we do not decode; 422: a file we read but cannot use.
    func problem(log: ServerLog) -> Problem {
        switch kind {
        case .unsupportedFormat: return Problem(status: 415, detail: "the image is not a JPEG, PNG or DICOM file: \(message)")
        case .unsupportedVariant: return Problem(status: 415, detail: message)
        case .empty: return Problem(status: 422, detail: "the image file is empty")
        case .tooLarge, .tooComplex, .noSuchFrame: return Problem(status: 422, detail: message)
        case .corrupt: return Problem(status: 422, detail: "the image cannot be decoded: \(message)")
        case .encodeFailed:
            log.error("encode_failed", [:])
            return Problem(status: 500, detail: "the display images could not be encoded")
        }
    }
}
extension AnalysisError: ProblemConvertible {
    func problem(log: ServerLog) -> Problem {
        switch self {
        case .badImage(let e): return e.problem(log: log)
        case .model(let e): return e.problem(log: log)
        case .unreadable(let message): return Problem(status: 422, detail: message)
        }
    }
}
extension ReportTemplateError: ProblemConvertible {
    /// The detail names the kind only: the folder's path is the server's business, not the reader's.
    func problem(log: ServerLog) -> Problem {
        log.error("report_templates_invalid", ["kind": .token(.init(kind.rawValue))])
        return Problem(status: 503, detail: "the report templates cannot be loaded (\(kind.rawValue)); see the server log",
                       retryAfter: 30)
    }
}
