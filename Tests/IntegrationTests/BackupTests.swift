import Crypto
import Foundation
import Testing
import TestSupport

/// `mediscope store backup | verify | restore`, the real commands, on a real stack's store while it serves.
@Suite(.serialized) struct BackupTests {
    static func mediscope(_ arguments: [String], environment: [String: String]) throws -> ProcessResult {
        try runProcess(Repository.executable, arguments, environment: environment)
    }

    static func mode(_ path: String) -> mode_t? {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o777 : nil
    }

    static let patient = ["patient_id": "P-BACKUP-77121", "patient_name": "Ottoline Backupworth", "note": "kept in the backup, ward 3C"]

    /// BACKUP.mac for `manifest` under the key in `keyFile`, as the command writes it: HMAC-SHA256 over a
    /// fixed context and the manifest's bytes, with the key's id (its SHA-256's first 16 hex digits).
    static func mac(_ manifest: Data, keyFile: URL) throws -> Data {
        let hex = Array(try String(contentsOf: keyFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines).utf8)
        let bytes = stride(from: 0, to: hex.count, by: 2).map { UInt8(String(decoding: hex[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
        let code = HMAC<SHA256>.authenticationCode(for: Data("mediscope backup manifest\n".utf8) + manifest, using: SymmetricKey(data: bytes))
        func hexText(_ d: some Sequence<UInt8>) -> String { d.map { String(format: "%02x", $0) }.joined() }
        return try JSONSerialization.data(withJSONObject: ["algorithm": "HMAC-SHA256", "keyId": String(hexText(SHA256.hash(data: bytes)).prefix(16)),
                                                           "mac": hexText(code)])
    }

    /// `sqlite3 FILE SQL`; its standard output, trimmed.
    static func sqlite(_ file: URL, _ sql: String) throws -> String {
        let run = try runProcess(URL(fileURLWithPath: "/usr/bin/sqlite3"), [file.path, sql])
        #expect(run.status == 0, "\(run.stderr)")
        return run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func upload(_ stack: Stack, _ patientId: String) async throws -> String {
        var fields = Self.patient
        fields["patient_id"] = patientId
        let r = try await stack.upload(image: try Scans.jpeg, fields: fields)
        #expect(r.status == 201)
        return try #require(r.json?["id"] as? String)
    }

    /// A stack of its own (stopped by the caller) with one analysis of `patientId`, whose details the
    /// stack's log check looks for; returns the analysis id.
    func stackWithARecord(_ patientId: String) async throws -> (Stack, String) {
        let stack = try await Stack.start()
        stack.remember(Self.patient.values)
        do { return (stack, try await upload(stack, patientId)) } catch {
            stack.stop()
            throw error
        }
    }

    /// The record's images by URL, and its input check as JSON.
    func images(_ stack: Stack, _ id: String) async throws -> [String: Data] {
        let record = try #require(try await stack.request("GET", "/api/analyses/\(id)").json)
        var urls = [try #require((record["scan"] as? [String: Any])?["url"] as? String)]
        for result in try #require(record["results"] as? [[String: Any]]) {
            urls.append(try #require((result["heatmap"] as? [String: Any])?["url"] as? String))
        }
        var bodies: [String: Data] = [:]
        // The input check (issue 22) is part of the record a backup must bring back.
        bodies["inputCheck"] = try JSONSerialization.data(withJSONObject: try #require(record["inputCheck"] as? [String: Any]),
                                                          options: .sortedKeys)
        for url in urls {
            let r = try await stack.request("GET", url)
            #expect(r.status == 200, "\(url)")
            bodies[url] = r.body
        }
        return bodies
    }

    @Test func aBackupTakenWhileServingRestoresWhatItHeldAndNothingElse() async throws {
        let stack = try await Stack.start()
        defer { stack.stop() }
        stack.remember(Self.patient.values)
        let adminToken = try stack.token(forNewUser: "backup-admin", role: "admin")

        let kept = [try await upload(stack, "P-BACKUP-1"), try await upload(stack, "P-BACKUP-2")]
        let deleted = try await upload(stack, "P-BACKUP-3")
        #expect(try await stack.request("DELETE", "/api/analyses/\(deleted)").status == 204)
        let draft = try await stack.draft(kept[0])
        let signedText = "Signed before the backup: no change against the prior study."
        let signed = try await stack.request("POST", "/api/analyses/\(kept[0])/report/sign", body: try JSONSerialization.data(
            withJSONObject: ["text": signedText, "baseVersion": try #require(draft["version"] as? Int)]), contentType: "application/json")
        #expect(signed.status == 200, "\(signed.json ?? [:])")
        var before: [String: [String: Data]] = [:]
        for id in kept { before[id] = try await images(stack, id) }

        // The backup, with uploads going on.
        let during = (0..<2).map { _ in Task { try await stack.upload(image: try Scans.jpeg, fields: ["patient_id": "P-BACKUP-DURING"]) } }
        let destination = stack.dir.appendingPathComponent("backups/first")
        try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
        let backup = try Self.mediscope(["store", "backup", destination.path], environment: stack.environment)
        #expect(backup.status == 0, "stdout: \(backup.stdout) stderr: \(backup.stderr)")
        #expect(backup.stdout.contains("analyses") && backup.stdout.contains("images"), "\(backup.stdout)")
        for upload in during { #expect(try await upload.value.status == 201, "uploads go on while a backup is taken") }

        let manifestURL = destination.appendingPathComponent("BACKUP.json")
        let manifestText = try String(contentsOf: manifestURL, encoding: .utf8)
        let manifest = try #require(try JSONSerialization.jsonObject(with: Data(manifestText.utf8)) as? [String: Any])
        #expect(manifest["host"] as? String == Stack.hostName)
        let files = try #require(manifest["databases"] as? [[String: Any]]).compactMap { $0["name"] as? String }
        #expect(files == ["mediscope.sqlite", "reports.sqlite", "jobs.sqlite", "accounts.sqlite"], "\(files)")
        for secret in Self.patient.values + [signedText] { #expect(!manifestText.contains(secret), "the manifest holds patient data") }
        for name in files + ["BACKUP.json"] {
            #expect(Self.mode(destination.appendingPathComponent(name).path) == 0o600, "\(name) is the owner's alone")
        }

        // Never over an existing backup; the check passes.
        let again = try Self.mediscope(["store", "backup", destination.path], environment: stack.environment)
        #expect(again.status == 2 && again.stderr.contains("not an empty folder"), "\(again.stderr)")
        #expect(try String(contentsOf: manifestURL, encoding: .utf8) == manifestText, "the refused backup changed nothing")
        let verify = try Self.mediscope(["store", "verify", destination.path], environment: stack.environment)
        #expect(verify.status == 0 && verify.stdout.contains("passes its check"), "\(verify.stdout) \(verify.stderr)")

        // Not while the server runs.
        let early = try Self.mediscope(["store", "restore", destination.path], environment: stack.environment)
        #expect(early.status == 2 && early.stderr.contains("stop it first"), "\(early.stderr)")

        // After the backup: an upload and a new user, which the restore takes back.
        let after = try await upload(stack, "P-BACKUP-AFTER")
        try stack.addUser("after-backup", role: "clinician")
        stack.signalServer(SIGTERM)
        #expect(stack.waitForServerExit() == 0)
        let restore = try Self.mediscope(["store", "restore", destination.path], environment: stack.environment)
        #expect(restore.status == 0, "stdout: \(restore.stdout) stderr: \(restore.stderr)")
        let store = stack.varDir.appendingPathComponent("store")
        let aside = try FileManager.default.contentsOfDirectory(atPath: stack.varDir.path).filter { $0.hasPrefix("store.before-restore-") }
        #expect(aside.count == 1 && restore.stdout.contains(aside.first ?? "?"), "the previous store is kept aside: \(aside)")
        #expect(Self.mode(store.appendingPathComponent("blobs").path) == 0o711, "nginx reads images; nobody lists them")
        try await stack.startServer()

        for id in kept {
            #expect(try await images(stack, id) == before[id], "record \(id) and its images are back, byte for byte")
        }
        let report = try #require(try await stack.request("GET", "/api/analyses/\(kept[0])/report").json)
        #expect(report["status"] as? String == "signed" && report["text"] as? String == signedText, "\(report)")
        #expect(try await stack.request("GET", "/api/analyses/\(deleted)").status == 404, "deleted before the backup")
        #expect(try await stack.request("GET", "/api/analyses/\(after)").status == 404, "made after the backup")
        // Uploads that met the backup are in it whole or not at all.
        let caught = try #require(try await stack.request("GET", "/api/analyses?patient_id=P-BACKUP-DURING&limit=10").json?["items"] as? [[String: Any]])
        #expect(caught.count <= 2)
        for item in caught { _ = try await images(stack, try #require(item["id"] as? String)) }

        // Accounts and the audit log are the backup's too.
        let gone = try await stack.request("POST", "/api/session", body: Data(#"{"username":"after-backup","password":"\#(Stack.password)"}"#.utf8),
                                           contentType: "application/json", auth: Stack.Auth.none)
        #expect(gone.status == 401, "a user added after the backup is gone with it")
        _ = try stack.syncSignIn("backup-admin")
        let audit = try #require(try await stack.request("GET", "/api/audit?limit=1000", auth: .bearer(adminToken)).json?["entries"] as? [[String: Any]])
        #expect(audit.contains { $0["action"] as? String == "analysis.delete" && $0["recordId"] as? String == deleted })
        #expect(audit.contains { $0["action"] as? String == "report.sign" && $0["recordId"] as? String == kept[0] })
        #expect(!audit.contains { $0["action"] as? String == "analysis.create" && $0["recordId"] as? String == after },
                "the audit entries after the backup are gone with it")
    }

    @Test func aFirestoreDeploymentIsSentToFirestoresOwnExport() throws {
        let folder = TemporaryFolder("mediscope-backup")
        var environment = ProcessInfo.processInfo.environment
        environment["MEDISCOPE_VAR"] = folder.appending("var").path
        environment["MEDISCOPE_STORE"] = "firestore"
        environment["MEDISCOPE_FIRESTORE_PROJECT_ID"] = "demo-backup"
        environment["FIRESTORE_EMULATOR_HOST"] = "127.0.0.1:9"
        let run = try Self.mediscope(["store", "backup", folder.appending("out").path], environment: environment)
        #expect(run.status == 2 && run.stderr.contains("gcloud firestore export"), "\(run.stderr)")
        #expect(!FileManager.default.fileExists(atPath: folder.appending("out").path))
    }
}
