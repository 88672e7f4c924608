import FirestoreTestKit
import Foundation
import MediscopeAuth
import MediscopeFirestore
import MediscopeFirestoreStore
import MediscopeStore
import Testing
import TestSupport
@testable import MediscopeMigration

/// `store migrate` from a SQLite deployment with records, audit entries and accounts, against the real
/// Firestore emulator: everything present once, a re-run changes nothing, an interrupted run continues.
@Suite(.firestoreEmulator) struct StoreMigrationTests {
    let emulator: FirestoreEmulator
    init() throws { emulator = try SharedEmulator.get() }

    /// A fresh, empty database.
    func project() -> (id: String, client: FirestoreClient) {
        let id = "migrate-\(UUID().uuidString.prefix(8).lowercased())"
        return (id, emulator.client(projectId: id))
    }

    /// Runs a migration of `deployment` with a small page size (so paging is exercised); returns its
    /// report and log lines.
    func migrate(_ deployment: Deployment, _ client: FirestoreClient, dryRun: Bool = false,
                 interruptAfterWrites: Int? = nil) throws(MigrationError) -> (MigrationReport, [String]) {
        let lines = LockedBox<[String]>([])
        let migration = StoreMigration(storeDirectory: deployment.storeDirectory, firestore: client, dryRun: dryRun, pageSize: 2,
                                       log: { lines.append($0) })
        migration.hooks.interruptAfterWrites = interruptAfterWrites
        return (try migration.run(), lines.value)
    }

    /// The counts a first run gives: everything copied.
    func allCopied(_ d: Deployment) -> [MigrationReport.Kind: Int] {
        [.organizations: d.organizations.count, .users: d.users.count, .sessions: d.sessions.count, .apiTokens: d.tokens.count,
         .auditEntries: d.audit.count, .analyses: d.records.count]
    }

    /// Everything of `d` is in Firestore, equal field by field, once.
    func expectEverything(of d: Deployment, in client: FirestoreClient) throws {
        let users = FirestoreUserStore(client: client)
        for org in d.organizations { #expect(try users.organizationName(id: org.id) == org.name) }
        for (user, hash) in d.users {
            let found = try #require(try users.credentials(username: user.username))
            #expect(found.user == user)
            #expect(found.passwordHash == hash)
        }
        #expect(try users.user(firebaseUID: "firebase-uid-carol")?.username == "carol@b.example")
        #expect(try users.userCount() == d.users.count)

        let sessions = FirestoreSessionStore(client: client)
        for (session, hash) in d.sessions { #expect(try sessions.session(tokenHash: hash) == session) }
        let tokens = FirestoreAPITokenStore(client: client)
        for (token, hash) in d.tokens { #expect(try tokens.token(tokenHash: hash) == token) }
        #expect(try tokens.token(tokenHash: d.tokens[0].tokenHash)?.revokedAt != nil)

        // Same entries in the same order; ids are AuditIDs now.
        var all = AuditFilter()
        all.limit = 1000
        let entries = try FirestoreAuditLogStore(client: client).entries(all)
        func withoutId(_ e: AuditEntry) -> AuditEntry { var e = e; e.id = nil; return e }
        #expect(entries.map(withoutId) == d.audit.map(withoutId))
        #expect(entries.compactMap(\.id) == entries.compactMap(\.id).sorted() && Set(entries.compactMap(\.id)).count == entries.count)

        let analyses = FirestoreAnalysisStore(client: client)
        let sqlite = try SQLiteAnalysisStore(directory: d.storeDirectory)
        for record in d.records {
            #expect(try analyses.get(id: record.id, organizationId: record.organizationId) == record)
            for key in [record.scan.key] + record.results.map(\.heatmap.key) {
                #expect(try analyses.imageBytes(key: key) == sqlite.imageBytes(key: key))
            }
        }
        #expect(try client.count(FirestoreAnalysisStore.analyses) == d.records.count)
        #expect(try client.count(FirestoreAnalysisStore.images) == d.imageKeys.count)
    }

    @Test func copiesEverythingOnceAndARerunChangesNothing() throws {
        let d = try Deployment()
        let (_, client) = project()
        let (first, log) = try migrate(d, client)
        for (kind, n) in allCopied(d) {
            #expect(first[kind].copied == n, "\(kind)")
            #expect(first[kind].alreadyThere == 0 && first[kind].failed == 0, "\(kind)")
        }
        #expect(!first.anyFailed)
        try expectEverything(of: d, in: client)
        for line in log + [first.description] { for secret in d.sensitive { #expect(!line.contains(secret)) } }

        let before = try client.snapshot()
        #expect(before.count > d.records.count && before.values.allSatisfy { !$0.isEmpty })
        let (second, _) = try migrate(d, client)
        for (kind, n) in allCopied(d) {
            #expect(second[kind].alreadyThere == n, "\(kind)")
            #expect(second[kind].copied == 0 && second[kind].differing == 0 && second[kind].failed == 0, "\(kind)")
        }
        #expect(try client.snapshot() == before)
        try expectEverything(of: d, in: client)
    }

    /// SQLite decides until the switch: a user disabled or given a new password and a token revoked there
    /// after the first run are brought to that state in Firestore by the second; signed reports travel too.
    @Test func changesInSQLiteSinceAnEarlierRunWinAndReportsAreCopied() throws {
        let d = try Deployment()
        let (_, client) = project()
        _ = try migrate(d, client)

        let stores = try AccountStores.sqlite(directory: d.storeDirectory)
        let alice = d.users[0].user, carol = d.users[2].user
        try stores.users.update(userId: carol.id, .disabled(true))
        let newHash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3LXNhbHQ$bmV3LWhhc2g"
        try stores.users.update(userId: alice.id, .passwordHash(newHash))
        let active = d.tokens[1].token
        try stores.apiTokens.revoke(tokenId: active.id, userId: active.userId, at: Deployment.at(9_000))
        let reports = try SQLiteReportStore(directory: d.storeDirectory)
        let record = d.records[0]
        let draft = ReportVersion(analysisId: record.id, organizationId: record.organizationId, number: 1, status: .draft,
                                  text: "Draft.", origin: .template, reason: "no LLM is configured", createdAt: Deployment.at(10_000))
        let signed = ReportVersion(analysisId: record.id, organizationId: record.organizationId, number: 2, status: .signed,
                                   text: "Signed.", origin: .clinician, authorId: alice.id, authorName: "Alice Admin",
                                   createdAt: Deployment.at(11_000))
        try reports.append(draft)
        try reports.append(signed)

        let (second, _) = try migrate(d, client)
        #expect(second[.users].updated == 2 && second[.apiTokens].updated == 1, "\(second)")
        #expect(second[.reportVersions].copied == 2)
        #expect(!second.anyFailed)
        let users = FirestoreUserStore(client: client)
        #expect(try users.user(id: carol.id)?.disabled == true, "a user disabled in SQLite stays disabled")
        #expect(try users.credentials(username: alice.username)?.passwordHash == newHash, "the new password, not the old one")
        #expect(try FirestoreAPITokenStore(client: client).token(tokenHash: d.tokens[1].tokenHash)?.revokedAt == Deployment.at(9_000))
        #expect(try FirestoreReportStore(client: client).versions(analysisId: record.id, organizationId: record.organizationId)
                == [draft, signed])

        let (third, _) = try migrate(d, client)
        #expect(third[.users].updated == 0 && third[.apiTokens].updated == 0 && third[.reportVersions].alreadyThere == 2)
    }

    @Test func anInterruptedRunContinuesWhenRunAgain() throws {
        let d = try Deployment()
        let (_, client) = project()
        let accountRecords = allCopied(d).filter { $0.key != .analyses }.values.reduce(0, +)
        // Stops in the middle of the analyses, after the first one.
        var stoppedAt: MigrationReport?
        do { _ = try migrate(d, client, interruptAfterWrites: accountRecords + 1) } catch { stoppedAt = error.report }
        let partial = try #require(stoppedAt)
        #expect(partial[.analyses].copied == 1)
        #expect(try client.count(FirestoreAnalysisStore.analyses) == 1)

        let (rest, _) = try migrate(d, client)
        #expect(rest[.analyses].copied == d.records.count - 1)
        #expect(rest[.analyses].alreadyThere == 1)
        #expect(rest[.auditEntries].alreadyThere == d.audit.count && rest[.auditEntries].copied == 0)
        #expect(!rest.anyFailed)
        try expectEverything(of: d, in: client)
    }

    @Test func aDryRunWritesNothing() throws {
        let d = try Deployment()
        let (_, client) = project()
        let (report, _) = try migrate(d, client, dryRun: true)
        #expect(report.dryRun)
        for (kind, n) in allCopied(d) { #expect(report[kind].copied == n, "\(kind)") }
        #expect(try client.snapshot().isEmpty)
    }

    @Test func aRecordThatCannotBeCopiedFailsAloneAndIsNamedByIdOnly() throws {
        let d = try Deployment()
        let (_, client) = project()
        // The DICOM record's scan is its own: without the file it cannot be copied.
        let broken = d.records[2]
        try FileManager.default.removeItem(atPath: try d.imagePath(broken.scan.key))
        let (report, log) = try migrate(d, client)
        #expect(report[.analyses].failed == 1)
        #expect(report[.analyses].copied == d.records.count - 1)
        #expect(report.anyFailed)
        #expect(log.contains { $0.contains(broken.id) && $0.contains("missing") })
        for line in log { for secret in d.sensitive { #expect(!line.contains(secret)) } }
        #expect(try FirestoreAnalysisStore(client: client).get(id: broken.id, organizationId: broken.organizationId) == nil)
    }

    @Test func aUsernameTakenInFirestoreFailsThatUserAndItsSessionsAndTokens() throws {
        let d = try Deployment()
        let (_, client) = project()
        let alice = d.users[0].user
        var impostor = alice
        impostor.id = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
        try FirestoreUserStore(client: client).insert(impostor, passwordHash: nil)
        let (report, _) = try migrate(d, client)
        #expect(report[.users].failed == 1 && report[.users].copied == d.users.count - 1)
        // Alice's session and revoked token fail with her; Carol's token is copied.
        #expect(report[.sessions].failed == 1)
        #expect(report[.apiTokens].failed == 1 && report[.apiTokens].copied == 1)
        #expect(try FirestoreUserStore(client: client).user(username: alice.username)?.id == impostor.id)
        // The impostor's insert named org-a after its id; the migration reports it and keeps it.
        #expect(report[.organizations].differing == 1)
        #expect(try FirestoreUserStore(client: client).organizationName(id: "org-a") == "org-a")
    }

    @Test func theCommandCopiesAndARerunFindsEverythingThere() throws {
        let d = try Deployment()
        let (projectId, client) = project()
        let environment = ["MEDISCOPE_VAR": d.varDirectory.path, "MEDISCOPE_FIRESTORE_PROJECT_ID": projectId,
                           "FIRESTORE_EMULATOR_HOST": emulator.host]

        let dry = try Command.run(["store", "migrate", "--to", "firestore", "--dry-run"], environment: environment)
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("analyses: 3 to copy"))
        #expect(try client.snapshot().isEmpty)

        let first = try Command.run(["store", "migrate", "--to", "firestore"], environment: environment)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("analyses: 3 copied, 0 already there, 0 failed"))
        #expect(first.stdout.contains("audit entries: \(d.audit.count) copied"))
        #expect(first.stdout.contains("sign-in failures"))
        try expectEverything(of: d, in: client)
        let before = try client.snapshot()

        // --project names the same project when the settings name none.
        var noProject = environment
        noProject["MEDISCOPE_FIRESTORE_PROJECT_ID"] = nil
        let second = try Command.run(["store", "migrate", "--to", "firestore", "--project", projectId], environment: noProject)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout.contains("analyses: 0 copied, 3 already there, 0 failed"))
        #expect(try client.snapshot() == before)
        for text in [dry.stdout, dry.stderr, first.stdout, first.stderr, second.stdout, second.stderr] {
            for secret in d.sensitive { #expect(!text.contains(secret)) }
        }
    }

    @Test func theCommandExitsNonZeroWhenARecordFailedOrNothingCanRun() throws {
        let d = try Deployment()
        let (projectId, _) = project()
        try FileManager.default.removeItem(atPath: try d.imagePath(d.records[2].scan.key))
        var environment = ["MEDISCOPE_VAR": d.varDirectory.path, "MEDISCOPE_FIRESTORE_PROJECT_ID": projectId,
                           "FIRESTORE_EMULATOR_HOST": emulator.host]
        let failed = try Command.run(["store", "migrate", "--to", "firestore"], environment: environment)
        #expect(failed.status == 1)
        #expect(failed.stderr.contains(d.records[2].id))
        #expect(failed.stdout.contains("analyses: 2 copied, 0 already there, 1 failed"))

        environment["MEDISCOPE_FIRESTORE_PROJECT_ID"] = nil
        let noProject = try Command.run(["store", "migrate", "--to", "firestore"], environment: environment)
        #expect(noProject.status == 2)
        #expect(noProject.stderr.contains("--project"))

        environment["MEDISCOPE_VAR"] = d.root.appendingPathComponent("nothing-here").path
        let noDeployment = try Command.run(["store", "migrate", "--to", "firestore", "--project", projectId], environment: environment)
        #expect(noDeployment.status == 2)
        #expect(noDeployment.stderr.contains("no SQLite deployment"))
    }
}

/// The real `mediscope` binary as a subprocess.
enum Command {
    /// Runs `mediscope arguments` from the repository's root with `environment` over a minimal one
    /// (PATH, HOME, TMPDIR, LANG), so that no setting of the machine running the tests leaks in.
    static func run(_ arguments: [String], environment: [String: String]) throws -> ProcessResult {
        var env = ProcessInfo.processInfo.environment.filter { ["PATH", "HOME", "TMPDIR", "LANG"].contains($0.key) }
        env.merge(environment) { $1 }
        return try runProcess(Repository.executable, arguments, environment: env, directory: Repository.root)
    }
}

extension StoreMigrationTests {
    /// An analysis whose heatmaps are drawn when first looked at moves with its lossless scan; on
    /// Firestore it is drawn on first look with the bytes an analysis drawing it at once made.
    @Test func heatmapsDrawnWhenLookedAtAreDrawnInFirestore() throws {
        let folder = TemporaryFolder("mediscope-migrate-drawn")
        let store = folder.url.appendingPathComponent("var/store")
        try FileManager.default.createDirectory(at: store, withIntermediateDirectories: true)
        try AccountStores.sqlite(directory: store).users.saveOrganization(id: "org-a", name: "Clinic A")
        let drawn = try DrawnAnalysis()
        let sqlite = try SQLiteAnalysisStore(directory: store)
        let record = try sqlite.create(drawn.new)
        _ = try sqlite.bytes(of: record.results[0].heatmap)   // one drawn here already, one not

        let (_, client) = project()
        let migration = StoreMigration(storeDirectory: store, firestore: client, dryRun: false, pageSize: 2, log: { _ in })
        let report = try migration.run()
        #expect(report[.analyses].copied == 1 && !report.anyFailed)
        let firestore = FirestoreAnalysisStore(client: client)
        #expect(try firestore.get(id: record.id, organizationId: "org-a") == record)
        #expect(try firestore.imageBytes(key: drawn.lossless.ref.key) == drawn.lossless.bytes)
        for result in record.results {
            #expect(try firestore.bytes(of: result.heatmap) == drawn.eager[result.id])
        }
    }
}
