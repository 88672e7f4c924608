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
        let stack = try Stack()
        stack.remember(Self.patient.values)
        do { return (stack, try await upload(stack, patientId)) } catch {
            stack.stop()
            throw error
        }
    }


    /// Every address a client reads of a record: its JSON's images, fetched, by URL.
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
        let stack = try Stack()
        defer { stack.stop() }
        stack.remember(Self.patient.values)
        try stack.addUser("backup-admin", role: "admin")
        let adminToken = try stack.syncCreateToken(try stack.syncSignIn("backup-admin"))

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
        try stack.startServer()

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

    @Test func aDamagedBackupFailsItsCheckAndIsNeverRestored() async throws {
        let (stack, id) = try await stackWithARecord("P-BACKUP-DAMAGE")
        defer { stack.stop() }
        let destination = stack.dir.appendingPathComponent("backup")
        #expect(try Self.mediscope(["store", "backup", destination.path], environment: stack.environment).status == 0)

        // An image replaced by other bytes (a new file: on one file system the backup's images are links
        // to the live ones, so editing one in place would damage the store as well).
        let blobs = destination.appendingPathComponent("blobs")
        let image = try #require(FileManager.default.enumerator(atPath: blobs.path)?.allObjects.compactMap { $0 as? String }
            .first { $0.hasSuffix(".jpg") })
        let imagePath = blobs.appendingPathComponent(image).path
        try FileManager.default.removeItem(atPath: imagePath)
        try Data("not the scan".utf8).write(to: URL(fileURLWithPath: imagePath))
        // And the accounts database cut short.
        let accounts = destination.appendingPathComponent("accounts.sqlite")
        let bytes = try Data(contentsOf: accounts)
        try bytes.prefix(bytes.count / 2).write(to: accounts)

        let verify = try Self.mediscope(["store", "verify", destination.path], environment: stack.environment)
        #expect(verify.status == 1, "\(verify.stdout) \(verify.stderr)")
        let key = ((image as NSString).lastPathComponent as NSString).deletingPathExtension
        #expect(verify.stderr.contains("image \(key): its content does not match its name"), "\(verify.stderr)")
        #expect(verify.stderr.contains("accounts.sqlite: \(bytes.count / 2) bytes"), "\(verify.stderr)")
        for secret in Self.patient.values { #expect(!verify.stderr.contains(secret) && !verify.stdout.contains(secret)) }

        stack.signalServer(SIGTERM)
        #expect(stack.waitForServerExit() == 0)
        let restore = try Self.mediscope(["store", "restore", destination.path], environment: stack.environment)
        #expect(restore.status == 1 && restore.stderr.contains("did not pass its check"), "\(restore.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: stack.varDir.path).allSatisfy { !$0.hasPrefix("store.before-restore-") },
                "nothing was moved")
        try stack.startServer()
        #expect(try await stack.request("GET", "/api/analyses/\(id)").status == 200, "the live store is untouched")
        #expect(try await images(stack, id).count >= 2)

        // A folder that is not a backup.
        let empty = stack.dir.appendingPathComponent("not-a-backup")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let stranger = try Self.mediscope(["store", "verify", empty.path], environment: stack.environment)
        #expect(stranger.status == 2 && stranger.stderr.contains("not a Mediscope backup"), "\(stranger.stderr)")
    }

    /// The manifest is a file anyone may edit: a name that is a path never leads a restore outside the
    /// store, a stray file is reported, and a restore under a tight umask still gives nginx its images.
    @Test func aDoctoredManifestOrAStrayFileFailsTheCheckAndModesIgnoreTheUmask() async throws {
        let (stack, id) = try await stackWithARecord("P-BACKUP-MANIFEST")
        defer { stack.stop() }
        let destination = stack.dir.appendingPathComponent("backup")
        #expect(try Self.mediscope(["store", "backup", destination.path], environment: stack.environment).status == 0)
        stack.signalServer(SIGTERM)
        #expect(stack.waitForServerExit() == 0)

        // A well-formed entry whose name climbs out: the file it names is there, with the right digest;
        // even authenticated with the deployment's key (so past the MAC), the name is refused.
        let manifestURL = destination.appendingPathComponent("BACKUP.json")
        let originalMAC = try Data(contentsOf: destination.appendingPathComponent("BACKUP.mac"))
        let original = try Data(contentsOf: manifestURL)
        let outside = stack.dir.appendingPathComponent("outside.sqlite")
        try FileManager.default.copyItem(at: destination.appendingPathComponent("accounts.sqlite"), to: outside)
        let digest = try runProcess(URL(fileURLWithPath: "/usr/bin/sha256sum"), [outside.path]).stdout.prefix(64)
        var manifest = try #require(try JSONSerialization.jsonObject(with: original) as? [String: Any])
        var databases = try #require(manifest["databases"] as? [[String: Any]])
        let size = try #require(try FileManager.default.attributesOfItem(atPath: outside.path)[.size] as? Int)
        databases.append(["name": "../outside.sqlite", "bytes": size, "sha256": String(digest)])
        manifest["databases"] = databases
        let doctoredManifest = try JSONSerialization.data(withJSONObject: manifest)
        try doctoredManifest.write(to: manifestURL)
        try Self.mac(doctoredManifest, keyFile: stack.varDir.appendingPathComponent("backup.key"))
            .write(to: destination.appendingPathComponent("BACKUP.mac"))
        let doctored = try Self.mediscope(["store", "verify", destination.path], environment: stack.environment)
        #expect(doctored.status == 1 && doctored.stderr.contains("\"../outside.sqlite\", which is not a database of a Mediscope store"), "\(doctored.stderr)")
        let refused = try Self.mediscope(["store", "restore", destination.path], environment: stack.environment)
        #expect(refused.status == 1, "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: stack.varDir.appendingPathComponent("outside.sqlite").path), "nothing written outside the store")

        // A stray file among the images.
        try original.write(to: manifestURL)
        try originalMAC.write(to: destination.appendingPathComponent("BACKUP.mac"))
        let stray = destination.appendingPathComponent("blobs/notes.txt")
        try Data("notes".utf8).write(to: stray)
        let strayed = try Self.mediscope(["store", "verify", destination.path], environment: stack.environment)
        #expect(strayed.status == 1 && strayed.stderr.contains("blobs/notes.txt: not an image file"), "\(strayed.stderr)")
        try FileManager.default.removeItem(at: stray)

        // Restored under umask 027: databases 0600, images 0644 in 0711 folders, as the store makes them.
        let restore = try runProcess(URL(fileURLWithPath: "/bin/sh"), ["-c", "umask 027; exec \"$0\" \"$@\"", Repository.executable.path,
                                                                          "store", "restore", destination.path], environment: stack.environment)
        #expect(restore.status == 0, "\(restore.stderr)")
        let store = stack.varDir.appendingPathComponent("store")
        #expect(Self.mode(store.appendingPathComponent("mediscope.sqlite").path) == 0o600)
        let entries = try #require(FileManager.default.enumerator(atPath: store.appendingPathComponent("blobs").path))
            .allObjects.compactMap { $0 as? String }
        #expect(!entries.isEmpty)
        for relative in entries {
            let path = store.appendingPathComponent("blobs/\(relative)").path
            let want: mode_t = relative.contains(".") ? 0o644 : 0o711
            #expect(Self.mode(path) == want, "\(relative): \(String(Self.mode(path) ?? 0, radix: 8))")
        }
        try stack.startServer()
        #expect(try await images(stack, id).count >= 2, "nginx reads the restored images")
    }

    /// What killed runs leave is cleared by the next, unless a running one holds it (flock, whatever
    /// PID namespace it runs in); a killed restore's old store is never deleted. A restore onto a new
    /// machine (no var/) under a tight umask makes a store nginx can read.
    @Test func leftoversOfKilledRunsAndARestoreOntoANewMachine() async throws {
        let (stack, _) = try await stackWithARecord("P-BACKUP-LEFTOVERS")
        defer { stack.stop() }
        let store = stack.varDir.appendingPathComponent("store")
        let abandoned = store.appendingPathComponent(".backup-staging-1-abandoned")
        let held = store.appendingPathComponent(".backup-staging-1-held")
        for folder in [abandoned, held] { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
        let holder = open(held.path, O_RDONLY | O_DIRECTORY)
        #expect(holder >= 0 && flock(holder, LOCK_EX) == 0)
        let destination = stack.dir.appendingPathComponent("backup")
        let backup = try Self.mediscope(["store", "backup", destination.path], environment: stack.environment)
        #expect(backup.status == 0, "\(backup.stderr)")
        #expect(!FileManager.default.fileExists(atPath: abandoned.path), "a killed backup's staging is removed")
        #expect(FileManager.default.fileExists(atPath: held.path), "a running backup's staging is left alone")
        close(holder)   // else the restore below rightly finds the store in use (by this process)

        // A blobs/ that is a link is refused by verify.
        let linked = stack.dir.appendingPathComponent("linked-backup")
        try FileManager.default.createDirectory(at: linked, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: destination.path) where name != "blobs" {
            try FileManager.default.copyItem(at: destination.appendingPathComponent(name), to: linked.appendingPathComponent(name))
        }
        try FileManager.default.createSymbolicLink(at: linked.appendingPathComponent("blobs"), withDestinationURL: destination.appendingPathComponent("blobs"))
        let viaLink = try Self.mediscope(["store", "verify", linked.path], environment: stack.environment)
        #expect(viaLink.status == 1 && viaLink.stderr.contains("blobs: a link, not a folder"), "\(viaLink.stderr)")

        // A killed restore's leftovers: an assembly (marked) goes, an old store (unmarked) is kept.
        stack.signalServer(SIGTERM)
        #expect(stack.waitForServerExit() == 0)
        let assembly = stack.varDir.appendingPathComponent(".restore-1-assembly")
        let oldStore = stack.varDir.appendingPathComponent(".restore-1-oldstore")
        for folder in [assembly, oldStore] { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
        _ = FileManager.default.createFile(atPath: assembly.appendingPathComponent(".assembling").path, contents: nil)
        _ = FileManager.default.createFile(atPath: oldStore.appendingPathComponent("mediscope.sqlite").path, contents: Data("old".utf8))
        let restore = try Self.mediscope(["store", "restore", destination.path], environment: stack.environment)
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(!FileManager.default.fileExists(atPath: assembly.path))
        let recovered = stack.varDir.appendingPathComponent("store.before-restore-recovered-1-oldstore/mediscope.sqlite")
        #expect(FileManager.default.contents(atPath: recovered.path) == Data("old".utf8), "the old store of a killed restore is kept")

        // A new machine: no var/ at all, umask 077.
        let fresh = stack.dir.appendingPathComponent("new-machine/var")
        var environment = stack.environment
        environment["MEDISCOPE_VAR"] = fresh.path
        environment["MEDISCOPE_PID_FILE"] = fresh.appendingPathComponent("run/mediscope.pid").path
        let keyless = try Self.mediscope(["store", "restore", destination.path], environment: environment)
        #expect(keyless.status == 2 && keyless.stderr.contains("no backup key") && keyless.stderr.contains("--key"), "\(keyless.stderr)")
        let key = stack.varDir.appendingPathComponent("backup.key")
        let onto = try runProcess(URL(fileURLWithPath: "/bin/sh"), ["-c", "umask 077; exec \"$0\" \"$@\"", Repository.executable.path,
                                                                       "store", "restore", "--key", key.path, destination.path], environment: environment)
        #expect(onto.status == 0, "\(onto.stderr)")
        #expect(FileManager.default.contents(atPath: fresh.appendingPathComponent("backup.key").path) == FileManager.default.contents(atPath: key.path)
                && Self.mode(fresh.appendingPathComponent("backup.key").path) == 0o600, "the key it was restored with is the new machine's")
        #expect(Self.mode(fresh.path) == 0o755 && Self.mode(fresh.appendingPathComponent("store").path) == 0o755)
        #expect(Self.mode(fresh.appendingPathComponent("store/blobs").path) == 0o711)
        let verifyRestored = DeploymentBackupCheck.sameDatabases(destination, fresh.appendingPathComponent("store"))
        #expect(verifyRestored, "the new machine's store holds the backup's databases")
    }

    /// deploy/backup.sh, what the nightly timer runs: a dated backup each time, the oldest complete ones
    /// beyond BACKUP_KEEP removed, nothing else in the folder touched; bad settings change nothing.
    @Test func theScheduledBackupKeepsTheNewestAndTouchesNothingElse() async throws {
        let (stack, _) = try await stackWithARecord("P-BACKUP-SCHEDULED")
        defer { stack.stop() }
        let folder = stack.dir.appendingPathComponent("nightly")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("mediscope-notes"), withIntermediateDirectories: true)
        var environment = stack.environment
        environment["MEDISCOPE_BIN"] = Repository.executable.path
        environment["BACKUP_DIR"] = folder.path
        environment["BACKUP_KEEP"] = "2"
        let script = URL(fileURLWithPath: "/bin/bash")
        let arguments = [Repository.root.appendingPathComponent("deploy/backup.sh").path]
        var made: [String] = []
        for run in 0..<3 {
            let before = Set(try FileManager.default.contentsOfDirectory(atPath: folder.path))
            let result = try runProcess(script, arguments, environment: environment)
            #expect(result.status == 0, "run \(run): \(result.stderr)")
            made += Set(try FileManager.default.contentsOfDirectory(atPath: folder.path)).subtracting(before)
        }
        #expect(made.count == 3, "one new backup per run: \(made)")
        let left = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        #expect(left == (Array(made.sorted().suffix(2)) + ["mediscope-notes"]).sorted(), "the newest two and the folder that is not a backup: \(left)")
        for name in made.sorted().suffix(2) {
            #expect(try Self.mediscope(["store", "verify", folder.appendingPathComponent(name).path], environment: stack.environment).status == 0)
        }

        for (key, value) in [("BACKUP_KEEP", "0"), ("BACKUP_KEEP", "many"), ("BACKUP_DIR", "")] {
            var bad = environment
            bad[key] = value
            let result = try runProcess(script, arguments, environment: bad)
            #expect(result.status == 2 && result.stderr.contains("backup.sh:"), "\(key)=\(value): \(result.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() == left, "bad settings made or removed nothing")
    }

    /// Issue 20, item 9: whoever can write to the backup share can change a backup but not make it pass.
    /// The accounts database edited (the audit trigger dropped, the audit log emptied, a clinician made
    /// admin) and BACKUP.json re-hashed to match: verify and restore refuse it, naming the MAC, and
    /// nothing is restored. The key that decides is beside the store, 0600, in no backup.
    @Test func aBackupEditedAndRehashedIsNotAuthenticAndNeverRestored() async throws {
        let (stack, id) = try await stackWithARecord("P-BACKUP-FORGED")
        defer { stack.stop() }
        let destination = stack.dir.appendingPathComponent("backup")
        let made = try Self.mediscope(["store", "backup", destination.path], environment: stack.environment)
        #expect(made.status == 0, "\(made.stderr)")
        let keyFile = stack.varDir.appendingPathComponent("backup.key")
        #expect(Self.mode(keyFile.path) == 0o600, "the first backup made the key, the owner's alone")
        let keyHex = (try? String(contentsOf: keyFile, encoding: .utf8)).map { Data($0.trimmingCharacters(in: .whitespacesAndNewlines).utf8) }
        for name in try FileManager.default.contentsOfDirectory(atPath: destination.path) where name != "blobs" {
            let bytes = try Data(contentsOf: destination.appendingPathComponent(name))
            if let keyHex { #expect(bytes.range(of: keyHex) == nil, "\(name) holds the key") }
        }

        let accounts = destination.appendingPathComponent("accounts.sqlite")
        let entries = Int(try Self.sqlite(accounts, "SELECT count(*) FROM audit_log")) ?? 0
        #expect(entries > 3)
        _ = try Self.sqlite(accounts, "PRAGMA journal_mode=DELETE; DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log; "
                            + "UPDATE users SET role = 'admin' WHERE username = 'clinician';")
        let manifestURL = destination.appendingPathComponent("BACKUP.json")
        var manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: manifestURL)) as? [String: Any])
        let digest = String(try runProcess(URL(fileURLWithPath: "/usr/bin/sha256sum"), [accounts.path]).stdout.prefix(64))
        let size = try #require(try FileManager.default.attributesOfItem(atPath: accounts.path)[.size] as? Int)
        manifest["databases"] = try #require(manifest["databases"] as? [[String: Any]]).map { file in
            guard file["name"] as? String == "accounts.sqlite" else { return file }
            return ["name": "accounts.sqlite", "bytes": size, "sha256": digest]
        }
        try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys]).write(to: manifestURL)

        let verify = try Self.mediscope(["store", "verify", destination.path], environment: stack.environment)
        #expect(verify.status == 1 && verify.stderr.contains("not authentic") && verify.stderr.contains("changed after the backup was made"),
                "\(verify.stdout) \(verify.stderr)")
        stack.signalServer(SIGTERM)
        #expect(stack.waitForServerExit() == 0)
        let restore = try Self.mediscope(["store", "restore", destination.path], environment: stack.environment)
        #expect(restore.status == 1 && restore.stderr.contains("not authentic"), "\(restore.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: stack.varDir.path).allSatisfy { !$0.hasPrefix("store.before-restore-") })
        let live = stack.varDir.appendingPathComponent("store/accounts.sqlite")
        #expect(try Self.sqlite(live, "SELECT role FROM users WHERE username = 'clinician'") == "clinician")
        #expect(try Self.sqlite(live, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = 'audit_log_no_delete'") == "1")

        // Another deployment's key, and a key file others may read: refused, each saying why.
        let otherKey = stack.dir.appendingPathComponent("other.key")
        try Data((String(repeating: "ab", count: 32) + "\n").utf8).write(to: otherKey)
        chmod(otherKey.path, 0o600)
        let foreign = try Self.mediscope(["store", "verify", "--key", otherKey.path, destination.path], environment: stack.environment)
        #expect(foreign.status == 1 && foreign.stderr.contains("another backup key"), "\(foreign.stderr)")
        chmod(otherKey.path, 0o644)
        let open = try Self.mediscope(["store", "verify", "--key", otherKey.path, destination.path], environment: stack.environment)
        #expect(open.status == 2 && open.stderr.contains("chmod 600"), "\(open.stderr)")
        let linkedKey = stack.dir.appendingPathComponent("linked.key")
        try FileManager.default.createSymbolicLink(at: linkedKey, withDestinationURL: keyFile)
        let viaLink = try Self.mediscope(["store", "verify", "--key", linkedKey.path, destination.path], environment: stack.environment)
        #expect(viaLink.status == 2 && viaLink.stderr.contains("symbolic link"), "\(viaLink.stderr)")

        try stack.startServer()
        #expect(try await stack.request("GET", "/api/analyses/\(id)").status == 200, "the live store is untouched")
    }

    /// Issue 20, items 9 and 13: a restore refuses a backup whose files other users may change; the
    /// store it replaces (a full copy of patient data) is named in a warning by restore and verify, and
    /// the nightly backup removes it BACKUP_KEEP days after the restore.
    @Test func aBackupOthersMayChangeIsRefusedAndAReplacedStoreIsWarnedAboutThenRemoved() async throws {
        let (stack, _) = try await stackWithARecord("P-BACKUP-OWNERS")
        defer { stack.stop() }
        let destination = stack.dir.appendingPathComponent("backup")
        #expect(try Self.mediscope(["store", "backup", destination.path], environment: stack.environment).status == 0)
        stack.signalServer(SIGTERM)
        #expect(stack.waitForServerExit() == 0)

        let accounts = destination.appendingPathComponent("accounts.sqlite").path
        chmod(accounts, 0o664)
        let writable = try Self.mediscope(["store", "restore", destination.path], environment: stack.environment)
        #expect(writable.status == 2 && writable.stderr.contains("accounts.sqlite: group or others may change it"), "\(writable.stderr)")
        chmod(accounts, 0o600)
        #expect(lchown(accounts, 65534, 65534) == 0)
        let foreign = try Self.mediscope(["store", "restore", destination.path], environment: stack.environment)
        #expect(foreign.status == 2 && foreign.stderr.contains("accounts.sqlite: owned by user 65534"), "\(foreign.stderr)")
        #expect(lchown(accounts, geteuid(), getegid()) == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: stack.varDir.path).allSatisfy { !$0.hasPrefix("store.before-restore-") },
                "nothing was restored")

        let restore = try Self.mediscope(["store", "restore", destination.path], environment: stack.environment)
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(restore.stderr.contains("warning:") && restore.stderr.contains("a full copy of patient data"), "\(restore.stderr)")
        let verify = try Self.mediscope(["store", "verify", destination.path], environment: stack.environment)
        #expect(verify.status == 0 && verify.stderr.contains("store.before-restore-") && verify.stderr.contains("patient data"), "\(verify.stderr)")

        // Set aside long ago (by its name) and just now: the nightly backup removes the first only.
        let recent = try #require(try FileManager.default.contentsOfDirectory(atPath: stack.varDir.path).first { $0.hasPrefix("store.before-restore-") })
        let old = "store.before-restore-20200101T000000Z"
        try FileManager.default.copyItem(at: stack.varDir.appendingPathComponent(recent), to: stack.varDir.appendingPathComponent(old))
        var environment = stack.environment
        environment["MEDISCOPE_BIN"] = Repository.executable.path
        environment["BACKUP_DIR"] = stack.dir.appendingPathComponent("nightly").path
        environment["BACKUP_KEEP"] = "2"
        let nightly = try runProcess(URL(fileURLWithPath: "/bin/bash"), [Repository.root.appendingPathComponent("deploy/backup.sh").path],
                                        environment: environment)
        #expect(nightly.status == 0, "\(nightly.stderr)")
        let left = try FileManager.default.contentsOfDirectory(atPath: stack.varDir.path).filter { $0.hasPrefix("store.before-restore-") }
        #expect(left == [recent], "the old copy is gone, the recent one kept: \(left)")
        #expect(nightly.stdout.contains(old), "\(nightly.stdout)")
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

/// Compares a backup's databases with a restored store's, byte for byte.
enum DeploymentBackupCheck {
    static func sameDatabases(_ backup: URL, _ store: URL) -> Bool {
        for name in ["mediscope.sqlite", "reports.sqlite", "jobs.sqlite", "accounts.sqlite"] {
            let a = FileManager.default.contents(atPath: backup.appendingPathComponent(name).path)
            let b = FileManager.default.contents(atPath: store.appendingPathComponent(name).path)
            if a != b { return false }
        }
        return true
    }
}
