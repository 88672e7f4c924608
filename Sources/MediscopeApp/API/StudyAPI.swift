import Foundation
import MediscopeServer
import MediscopeStore
import MediscopeStudies

/// The Studies view's data: the studies this host received for the caller's organisation (by C-STORE or
/// STOW-RS), the latest first, each series with its state and summary; and one study with each
/// instance and its analysis. Patient data: clinicians only, audited like the analyses list.
enum StudyAPI {
    static let routes: [RouteSpec] = [
        RouteSpec(method: "GET", pattern: APILinks.studies, access: .clinical, audit: "study.list") { s, req, _, c throws(Problem) in
            var limit = 20
            if let text = req.query["limit"] {
                guard let n = Int(text), (1...100).contains(n) else { throw Problem.badRequest("`limit` must be 1 to 100") }
                limit = n
            }
            var before: Date?
            if let text = req.query["before"] {
                guard let t = Double(text), t.isFinite, t > 0 else { throw Problem.badRequest("`before` must be a time in Unix seconds") }
                before = Date(timeIntervalSince1970: t)
            }
            let index = try s.studies()
            let org = c.user.organizationId
            let found: [(uid: String, lastReceivedAt: Date)]
            let studies: [StudyBody]
            do {
                found = try index.recentStudies(organizationId: org, limit: limit, before: before)
                studies = try found.map { study throws(StoreError) in
                    StudyBody(try index.instances(organizationId: org, studyInstanceUID: study.uid), detailed: false)
                }
            } catch { throw s.problem(error) }
            struct Body: Encodable { var studies: [StudyBody]; var next: String? }
            // The next page: studies whose latest instance came before the last one listed here.
            let next = found.count == limit ? found.last.map { "\(APILinks.studies)?limit=\(limit)&before=\($0.lastReceivedAt.timeIntervalSince1970)" } : nil
            return .json(Body(studies: studies, next: next), headers: [("Cache-Control", "no-store")])
        },
        RouteSpec(method: "GET", pattern: APILinks.studyPattern, access: .clinical, audit: "study.view") { s, _, p, c throws(Problem) in
            let entries: [ReceivedInstanceEntry]
            do { entries = try s.studies().instances(organizationId: c.user.organizationId, studyInstanceUID: p["study"]) } catch {
                throw s.problem(error)
            }
            // Another organisation's study is as absent as one never received.
            guard !entries.isEmpty else { throw Problem(status: 404, detail: "no study with this Study Instance UID was received") }
            return .json(StudyBody(entries, detailed: true), headers: [("Cache-Control", "no-store")])
        },
    ]
}
