import Foundation
import MediscopeAuth
import MediscopeEncoding
import MediscopeFirestore
import MediscopeFirestoreStore
import MediscopeImaging
import MediscopeSQLite
import MediscopeStore
import TestSupport

/// A SQLite deployment as `mediscope serve` leaves it, in a temp `var/` (removed with the value): two
/// organisations; an admin, a disabled clinician and a Firebase-linked clinician without a password;
/// a session; a revoked and an active API token; an audit log whose times repeat and step back; three
/// analyses, two of them sharing their scan, one with a DICOM source.
final class Deployment: @unchecked Sendable {
    private let folder = TemporaryFolder("mediscope-migrate")
    var root: URL { folder.url }
    var varDirectory: URL { root.appendingPathComponent("var") }
    var storeDirectory: URL { varDirectory.appendingPathComponent("store") }

    let organizations = [(id: "org-a", name: "Clinic A"), (id: "org-b", name: "Clinic B")]
    let users: [(user: User, passwordHash: String?)]
    let sessions: [(session: Session, tokenHash: String)]
    let tokens: [(token: APIToken, tokenHash: String)]
    /// As SQLite holds them, ids 1, 2, 3...
    let audit: [AuditEntry]
    let records: [AnalysisRecord]
    /// Patient details and secrets: none may appear in the migration's output.
    let sensitive: [String]

    static let t0 = Date(millisecondsSince1970: 1_700_000_000_000)
    static func at(_ ms: Int64) -> Date { Date(millisecondsSince1970: t0.millisecondsSince1970 + ms) }

    init() throws {
        let root = folder.url
        let stores = try AccountStores.sqlite(directory: root.appendingPathComponent("var/store"))
        for org in organizations { try stores.users.saveOrganization(id: org.id, name: org.name) }

        let ids = (0..<8).map { SortableID.next(now: Self.at(Int64($0))) }
        users = [
            (User(id: ids[0], username: "alice", displayName: "Alice Admin", role: .admin, organizationId: "org-a", disabled: false,
                  createdAt: Self.at(0), firebaseUID: nil), "$argon2id$v=19$m=19456,t=2,p=1$c2FsdC1hbGljZQ$aGFzaC1hbGljZQ"),
            (User(id: ids[1], username: "bob", displayName: nil, role: .clinician, organizationId: "org-a", disabled: true,
                  createdAt: Self.at(1), firebaseUID: nil), "$argon2id$v=19$m=19456,t=2,p=1$c2FsdC1ib2I$aGFzaC1ib2I"),
            (User(id: ids[2], username: "carol@b.example", displayName: "Carol", role: .clinician, organizationId: "org-b",
                  disabled: false, createdAt: Self.at(2), firebaseUID: "firebase-uid-carol"), nil),
        ]
        for (user, hash) in users { try stores.users.insert(user, passwordHash: hash) }

        sessions = [(Session(id: ids[3], userId: ids[0], createdAt: Self.at(100), lastSeenAt: Self.at(200),
                             expiresAt: Self.at(12 * 3_600_000), csrfHash: SHA256Hex.digest("csrf-of-alice")),
                     SHA256Hex.digest("session-cookie-of-alice"))]
        for (session, hash) in sessions { try stores.sessions.insert(session, tokenHash: hash) }

        tokens = [
            (APIToken(id: ids[4], userId: ids[0], name: "laptop", createdAt: Self.at(300), lastUsedAt: Self.at(400), revokedAt: Self.at(500)),
             SHA256Hex.digest("msk_revoked-token-of-alice")),
            (APIToken(id: ids[5], userId: ids[2], name: "ci", createdAt: Self.at(600), lastUsedAt: nil, revokedAt: nil),
             SHA256Hex.digest("msk_active-token-of-carol")),
        ]
        for (token, hash) in tokens { try stores.apiTokens.insert(token, tokenHash: hash) }

        // Two entries in one millisecond, then one whose clock stepped back: SQLite's order must survive.
        let times: [Int64] = [1000, 1000, 990, 2000, 2001, 2001, 2001]
        for (n, ms) in times.enumerated() {
            _ = try stores.auditLog.append(AuditEntry(
                time: Self.at(ms), actorUserId: n.isMultiple(of: 2) ? ids[0] : nil, actorUsername: n == 1 ? "mallory" : nil,
                organizationId: n == 3 ? nil : "org-a", action: n.isMultiple(of: 3) ? "analysis.view" : "session.create",
                recordId: n == 4 ? ids[6] : nil, address: "192.0.2.\(n)", outcome: n == 1 ? "denied" : "success"))
        }
        var all = AuditFilter()
        all.limit = 1000
        audit = try stores.auditLog.entries(all)

        let analyses = try SQLiteAnalysisStore(directory: root.appendingPathComponent("var/store"))
        let sharedScan = randomBytes(3000)
        var dicom = Self.analysis(org: "org-b", patientId: "P-200", scan: randomBytes(2500))
        dicom.source = ScanSource(format: "dicom", dicom: nil,
                                  study: DicomStudy(studyInstanceUID: "1.2.3.4", studyDate: "20240102", seriesDescription: "T1 axial"))
        records = try [Self.analysis(org: "org-a", patientId: "P-100", scan: sharedScan),
                       Self.analysis(org: "org-a", patientId: "P-101", scan: sharedScan), dicom].map(analyses.create)
        sensitive = ["Jane Roe", "P-100", "P-101", "P-200", "follow-up", "T1 axial", "1.2.3.4"]
            + users.compactMap(\.passwordHash) + sessions.map(\.tokenHash) + sessions.map(\.session.csrfHash) + tokens.map(\.tokenHash)
    }

    /// Every image key the records use (the shared scan once).
    var imageKeys: Set<String> { Set(records.flatMap { [$0.scan.key] + $0.results.map(\.heatmap.key) }) }

    /// The image file of `key` in the SQLite store.
    func imagePath(_ key: String) throws -> String {
        guard let path = try SQLiteAnalysisStore(directory: storeDirectory).imagePath(key: key) else { throw FixtureError("no image \(key)") }
        return path
    }

    /// An analysis with a jpeg scan and two results whose heatmaps are webp and png.
    static func analysis(org: String, patientId: String, scan: [UInt8]) -> NewAnalysis {
        let scan = ImageBlob.make(bytes: scan, contentType: "image/jpeg", width: 512, height: 384)
        let heat1 = ImageBlob.make(bytes: randomBytes(2000), contentType: "image/webp", width: 512, height: 384)
        let heat2 = ImageBlob.make(bytes: randomBytes(2000), contentType: "image/png", width: 512, height: 384)
        let results = [
            StoredResult(id: "tumor", model: "tumor-vgg16", title: "Brain tumour", task: "multiclass",
                         probabilities: [StoredProbability(label: "glioma", title: "Glioma", probability: 0.8125),
                                         StoredProbability(label: "notumor", probability: 0.1875)],
                         prediction: "glioma", confidence: 0.8125, explainedLabel: "glioma", heatmap: heat1.ref),
            StoredResult(id: "present", model: "tumor-vgg16", title: "Tumour present", task: "binary",
                         probabilities: [StoredProbability(label: "present", probability: 0.9), StoredProbability(label: "absent", probability: 0.1)],
                         prediction: "present", confidence: 0.9, explainedLabel: "present", heatmap: heat2.ref),
        ]
        return NewAnalysis(
            organizationId: org, createdBy: "user-1",
            patient: PatientInfo(patientId: patientId, name: "Jane Roe", age: 54, sex: "female", modality: "MRI", bodyPart: "brain",
                                 note: "follow-up, ünïcode ✓"),
            imageWidth: 1024, imageHeight: 768, scan: scan.ref, results: results,
            timingsMs: ["decode": 1.5, "inference": 123.456, "gradcam": 0.1 + 0.2], images: [scan, heat1, heat2],
            inputCheck: InputCheck(verdict: .outOfScope, reasons: [InputCheck.Reason(code: "colour", message: "in colour")],
                                   score: 98.5, threshold: 74.25, method: "image-checks+mahalanobis-sqrt"))
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension FirestoreClient {
    /// Every document the stores write (name -> updateTime), to see that a run changed nothing.
    func snapshot() throws -> [String: String] {
        let collections = [FirestoreUserStore.organizations, FirestoreUserStore.users, FirestoreUserStore.usernames,
                           FirestoreUserStore.firebaseUids, FirestoreSessionStore.sessions, FirestoreSessionStore.sessionIds,
                           FirestoreAPITokenStore.apiTokens, FirestoreAPITokenStore.apiTokenIds, FirestoreAuditLogStore.audit,
                           FirestoreAnalysisStore.analyses, FirestoreAnalysisStore.images]
        var times: [String: String] = [:]
        for collection in collections {
            for doc in try runQuery(FirestoreQuery(collectionId: collection)) { times[doc.name] = doc.updateTime ?? "" }
        }
        return times
    }

    /// How many documents `collection` holds.
    func count(_ collection: String) throws -> Int { try count(FirestoreQuery(collectionId: collection)) }
}
