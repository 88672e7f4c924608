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
            // The cursor: the previous page's last study, "<Unix seconds>_<Study Instance UID>".
            var cursor: StudyIndex.StudyCursor?
            if let text = req.query["cursor"] {
                let parts = text.split(separator: "_", maxSplits: 1).map(String.init)
                guard parts.count == 2, let t = Double(parts[0]), t.isFinite, t > 0, DicomWebAPI.isUID(parts[1]) else {
                    throw Problem.badRequest("`cursor` must be the `next` link's own value")
                }
                cursor = StudyIndex.StudyCursor(lastReceivedAt: t, studyInstanceUID: parts[1])
            }
            let index = try s.studies()
            let org = c.user.organizationId
            let found: [StudyIndex.StudyCursor]
            let studies: [StudyBody]
            do {
                found = try index.recentStudies(organizationId: org, limit: limit, after: cursor)
                studies = try found.map { study throws(StoreError) in
                    StudyBody(try index.instances(organizationId: org, studyInstanceUID: study.studyInstanceUID), detailed: false)
                }
            } catch { throw s.problem(error) }
            struct Body: Encodable { var studies: [StudyBody]; var next: String? }
            let next = found.count == limit
                ? found.last.map { "\(APILinks.studies)?limit=\(limit)&cursor=\(String($0.lastReceivedAt))_\($0.studyInstanceUID)" } : nil
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
