import Foundation
import Testing
import TestSupport

// What a backup's check finds: damage, a doctored manifest or a stray file, an edit re-hashed to match;
// none of them is restored.
extension BackupTests {
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
        try await stack.startServer()
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
        let digest = try await runProcess(URL(fileURLWithPath: "/usr/bin/sha256sum"), [outside.path]).stdout.prefix(64)
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
        let restore = try await runProcess(URL(fileURLWithPath: "/bin/sh"), ["-c", "umask 027; exec \"$0\" \"$@\"", Repository.executable.path,
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
        try await stack.startServer()
        #expect(try await images(stack, id).count >= 2, "nginx reads the restored images")
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
        let digest = String(try await runProcess(URL(fileURLWithPath: "/usr/bin/sha256sum"), [accounts.path]).stdout.prefix(64))
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

        try await stack.startServer()
        #expect(try await stack.request("GET", "/api/analyses/\(id)").status == 200, "the live store is untouched")
    }
}
