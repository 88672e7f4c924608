import Foundation
import MediscopeAuth
import MediscopeEncoding
import MediscopeIdempotency
import MediscopeJobs
import MediscopeLLM
import MediscopeReport
import MediscopeServer
import MediscopeStore

/// The clinician's side of the report: edit the draft, sign it, amend what was signed. Each is a new
/// version; `baseVersion` must be the newest one the clinician saw, else 409 (someone else changed it).
/// While the draft is pending (no version yet) a clinician may write or sign their own text with
/// `baseVersion` 0; the draft that arrives later is kept as a late draft and never replaces it.
enum ReportAPI {
    static let kind = "report.draft"
    static let pattern = "/api/analyses/{id}/report"
    static let signPattern = "/api/analyses/{id}/report/sign"
    static let amendPattern = "/api/analyses/{id}/report/amend"

    static let routes: [RouteSpec] = [
        // The dashboard polls this while a draft is written: a pending report holds no patient text and
        // is not audited (a poll every 1.5 s would flood the log); one with text is audited as report.view
        // here, and every refused or failed poll by Guard (an attempt on another's record leaves a trace).
        RouteSpec(method: "GET", pattern: pattern, access: .clinical, audit: "report.view") { s, req, p, c throws(Problem) in
            let rec = try AnalysisAPI.record(s, c.user, p["id"])
            let report = try body(s, rec)
            if report.text != nil { try Guard.audit(s, req, c, action: "report.view", recordId: rec.id, status: 200) }
            return .json(report, headers: [("Cache-Control", "no-store")])
        }.auditingSuccessesInHandler(),
        RouteSpec(method: "PUT", pattern: pattern, access: .clinical, audit: "report.edit") { s, req, p, c throws(Problem) in
            try change(s, req, p["id"], c.user, expecting: .draft, makes: .draft)
        },
        RouteSpec(method: "POST", pattern: signPattern, access: .clinical, audit: "report.sign") { s, req, p, c throws(Problem) in
            try change(s, req, p["id"], c.user, expecting: .draft, makes: .signed)
        },
        RouteSpec(method: "POST", pattern: amendPattern, access: .clinical, audit: "report.amend") { s, req, p, c throws(Problem) in
            try change(s, req, p["id"], c.user, expecting: .signed, makes: .signed)
        },
    ]

    struct ChangeBody: Decodable {
        var text: String
        var baseVersion: Int
    }

    /// Appends version `baseVersion + 1` with the clinician's text; the report (`ReportVersions.current`)
    /// must be `expecting`, or pending (no version yet: a clinician need not wait for the draft to edit or sign).
    ///
    /// Under an Idempotency-Key (`IdempotentRequest`) a repeat is answered with the versions up to the one
    /// the first request appended. That version is also recognised without the key's row (its process
    /// died before completing it, or another host took the first request): version `baseVersion + 1`,
    /// by this clinician, with this text and status, is what this request makes.
    static func change(_ s: Services, _ req: HTTPRequest, _ id: String, _ user: User, expecting: ReportVersion.Status,
                       makes status: ReportVersion.Status) throws(Problem) -> HTTPResponse {
        let record = try AnalysisAPI.record(s, user, id)
        let body: ChangeBody = try AccountAPI.decodeJSON(req)
        guard let text = try FieldText.check(Array(body.text.utf8), field: "text", rule: .report) else {
            throw Problem(status: 422, detail: "the report text is empty")
        }
        var fingerprint = RequestFingerprint("report change")
        fingerprint.add(text)
        fingerprint.add(String(body.baseVersion))
        let keyed = try IdempotentRequest.begin(s, req, user, fingerprint: fingerprint)
        if let refusal = keyed?.refusal { throw refusal }   // another request's key: not this one's to release
        var settled = keyed == nil
        defer { if !settled { keyed?.release() } }
        if case .done = keyed?.claim { settled = true }      // answered from what it made; nothing to write
        let response = try append(s, record, text: text, baseVersion: body.baseVersion, user, expecting: expecting,
                                  makes: status, keyed: keyed)
        if !settled { keyed?.complete(String(response.version)) }
        settled = true
        return response.replayed ? IdempotentRequest.replayed(response.http) : response.http
    }

    /// `change`'s work: the response, the version it shows last, and whether it repeats a first answer.
    private static func append(_ s: Services, _ record: AnalysisRecord, text: String, baseVersion: Int, _ user: User,
                               expecting: ReportVersion.Status, makes status: ReportVersion.Status,
                               keyed: IdempotentRequest?) throws(Problem) -> (http: HTTPResponse, version: Int, replayed: Bool) {
        let reports = try s.reportStore()
        let versions: [ReportVersion]
        do { versions = try reports.versions(analysisId: record.id, organizationId: record.organizationId) } catch { throw s.problem(error) }
        func upTo(_ number: Int) -> HTTPResponse {
            .json(ReportBody(versions.filter { $0.number <= number }), headers: [("Cache-Control", "no-store")])
        }
        if let keyed {
            if case .done(let made) = keyed.claim, let number = Int(made) { return (upTo(number), number, true) }
            if let made = versions.first(where: { $0.number == baseVersion + 1 }), made.origin == .clinician,
               made.authorId == user.id, made.text == text, made.status == status {
                // Queued once; the first request's worker may have died before it queued the SR.
                if status == .signed { ResultsSending.reportSigned(s, record, version: made.number) }
                return (upTo(made.number), made.number, true)
            }
        }
        let newest = versions.last?.number ?? 0
        guard newest == baseVersion else {
            throw Problem(status: 409, detail: "the report changed meanwhile (version \(newest)); reload it and apply your change again")
        }
        // Nothing yet (the draft is pending): a clinician's own text may be the first version, a draft or signed.
        guard (ReportVersions.current(versions)?.status ?? .draft) == expecting else {
            throw Problem(status: 409, detail: expecting == .draft
                ? "the report is signed: it cannot be edited or signed again; amend it instead"
                : "the report is not signed yet: edit or sign the draft instead")
        }
        let version = ReportVersion(
            analysisId: record.id, organizationId: record.organizationId, number: newest + 1, status: status, text: text,
            origin: .clinician, authorId: user.id, authorName: user.displayName ?? user.username, createdAt: Date().roundedToMilliseconds)
        do { try reports.append(version) } catch { throw s.problem(error) }
        if status == .signed { ResultsSending.reportSigned(s, record, version: version.number) }
        return (.json(ReportBody(versions + [version]), headers: [("Cache-Control", "no-store")]), version.number, false)
    }

    /// The report for an analysis: its versions, or pending (and its draft job queued, if none is: an
    /// analysis from before reports, or a job lost with a host, is drafted on first view).
    static func body(_ s: Services, _ record: AnalysisRecord) throws(Problem) -> ReportBody {
        let store = try s.reportStore()
        let versions: [ReportVersion]
        do { versions = try store.versions(analysisId: record.id, organizationId: record.organizationId) } catch {
            // The analysis is still worth showing while the shared store cannot be read (an outage).
            guard error.kind == .unavailable else { throw s.problem(error) }
            s.server.log.warning("report_unavailable", ["analysis": .token(.init(record.id))])
            return .unavailable
        }
        if versions.isEmpty { enqueueDraft(s, record) }
        return ReportBody(versions)
    }

    /// The draft of a received instance's analysis: queued now only with `reports.draft.received` =
    /// `at_once`; otherwise the first look at the analysis queues it (`body`).
    static func enqueueDraft(ofReceived record: AnalysisRecord, _ s: Services) {
        if s.config.reports.draftReceived == .atOnce { enqueueDraft(s, record) }
    }

    /// Queues the draft; a failure is logged, never fails the request (the next view queues it again).
    static func enqueueDraft(_ s: Services, _ record: AnalysisRecord) {
        do { try s.jobs().enqueue(kind: kind, key: record.id, organizationId: record.organizationId) } catch {
            s.server.log.error("report_enqueue_failed", ["analysis": .token(.init(record.id))])
        }
    }
}
