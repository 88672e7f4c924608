import Foundation
import Testing
import TestSupport

// Restores and the nightly backup around them: what killed runs leave, a new machine, backups others
// may change, the replaced store's warning and removal.
extension BackupTests {
    /// Whether a backup's databases and a restored store's are the same, byte for byte.
    static func sameDatabases(_ backup: URL, _ store: URL) -> Bool {
        ["mediscope.sqlite", "reports.sqlite", "jobs.sqlite", "accounts.sqlite"].allSatisfy { name in
            FileManager.default.contents(atPath: backup.appendingPathComponent(name).path)
                == FileManager.default.contents(atPath: store.appendingPathComponent(name).path)
        }
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
        let onto = try await runProcess(URL(fileURLWithPath: "/bin/sh"), ["-c", "umask 077; exec \"$0\" \"$@\"", Repository.executable.path,
                                                                       "store", "restore", "--key", key.path, destination.path], environment: environment)
        #expect(onto.status == 0, "\(onto.stderr)")
        #expect(FileManager.default.contents(atPath: fresh.appendingPathComponent("backup.key").path) == FileManager.default.contents(atPath: key.path)
                && Self.mode(fresh.appendingPathComponent("backup.key").path) == 0o600, "the key it was restored with is the new machine's")
        #expect(Self.mode(fresh.path) == 0o755 && Self.mode(fresh.appendingPathComponent("store").path) == 0o755)
        #expect(Self.mode(fresh.appendingPathComponent("store/blobs").path) == 0o711)
        let verifyRestored = Self.sameDatabases(destination, fresh.appendingPathComponent("store"))
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
            let result = try await runProcess(script, arguments, environment: environment)
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
            let result = try await runProcess(script, arguments, environment: bad)
            #expect(result.status == 2 && result.stderr.contains("backup.sh:"), "\(key)=\(value): \(result.stderr)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() == left, "bad settings made or removed nothing")
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
        let nightly = try await runProcess(URL(fileURLWithPath: "/bin/bash"), [Repository.root.appendingPathComponent("deploy/backup.sh").path],
                                        environment: environment)
        #expect(nightly.status == 0, "\(nightly.stderr)")
        let left = try FileManager.default.contentsOfDirectory(atPath: stack.varDir.path).filter { $0.hasPrefix("store.before-restore-") }
        #expect(left == [recent], "the old copy is gone, the recent one kept: \(left)")
        #expect(nightly.stdout.contains(old), "\(nightly.stdout)")
    }
}
