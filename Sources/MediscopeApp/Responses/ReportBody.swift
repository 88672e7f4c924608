import Foundation
import MediscopeAuth
import MediscopeEncoding
import MediscopeJobs
import MediscopeLLM
import MediscopeReport
import MediscopeServer
import MediscopeStore

/// The report of an analysis as the API shows it: its state, the report's text and where it came from,
/// and every version (drafts, edits, signatures, amendments), oldest first. The report is the newest
/// version but a late draft (`ReportVersions.current`).
struct ReportBody: Encodable {
    struct Source: Encodable {
        /// `llm`, `template` or `clinician`.
        var kind: String
        var model: String?
        var reason: String?
    }
    struct Version: Encodable {
        var number: Int
        var status: String
        var text: String
        var source: Source
        var author: String?
        var createdAt: Date
        /// true for a late draft: the LLM's or the template's, written after a clinician's text (they
        /// wrote while it was pending). Listed, never the report.
        var late: Bool?
    }
    /// `pending` (being drafted), `draft` (may be edited and signed), `signed`, or `unavailable` (its
    /// store cannot be read now, e.g. Firestore is down; ask again later).
    var status: String
    var text: String?
    var source: Source?
    /// The newest version's number (a late draft's too): send it back as `baseVersion` with an edit, a
    /// signature or an amendment (absent while there is none: send 0).
    var version: Int?
    var signedBy: String?
    var signedAt: Date?
    var versions: [Version]

    static let pending = ReportBody(status: "pending", versions: [])
    /// The report store cannot be read now; the rest of the analysis is shown.
    static let unavailable = ReportBody(status: "unavailable", versions: [])

    init(status: String, versions: [Version]) { self.status = status; self.versions = versions }

    init(_ stored: [ReportVersion]) {
        versions = stored.map {
            Version(number: $0.number, status: $0.status.rawValue, text: $0.text,
                    source: Source(kind: $0.origin.rawValue, model: $0.model, reason: $0.reason), author: $0.authorName, createdAt: $0.createdAt,
                    late: ReportVersions.isLateDraft($0, in: stored) ? true : nil)
        }
        guard let newest = stored.last, let current = ReportVersions.current(stored) else {
            status = "pending"
            return
        }
        status = current.status.rawValue
        text = current.text
        source = Source(kind: current.origin.rawValue, model: current.model, reason: current.reason)
        version = newest.number
        if current.status == .signed {
            signedBy = current.authorName
            signedAt = current.createdAt
        }
    }
}
