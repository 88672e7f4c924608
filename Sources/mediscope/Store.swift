import ArgumentParser
import Foundation
import MediscopeApp
import MediscopeBackup
import MediscopeFirestore
import MediscopeMigration

/// A deployment's records: backed up, checked, restored, or moved to another store backend.
struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Back up, check and restore the embedded store, or move it to another backend.",
        subcommands: [Backup.self, Verify.self, Restore.self, Migrate.self])

    /// Exit statuses of backup, verify and restore.
    static let damaged = ExitCode(1)
    static let stopped = ExitCode(2)

    static func stderr(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }

    /// The embedded store's folder, or a refusal when the deployment keeps its records in Firestore.
    static func embeddedStore(_ config: String?, command: String) throws -> AppConfig {
        let settings: AppConfig
        do { settings = try AppConfig.load(file: config) } catch {
            stderr("mediscope store \(command): \(error)")
            throw stopped
        }
        guard settings.store == .sqlite else {
            stderr("mediscope store \(command): this deployment keeps its records in Firestore; back them up with Firestore's "
                   + "managed export (gcloud firestore export gs://BUCKET --project=PROJECT), which this command does not replace")
            throw stopped
        }
        return settings
    }

    static func fail(_ command: String, _ error: BackupError) -> ExitCode {
        stderr("mediscope store \(command): \(error.message)")
        for problem in error.problems { stderr("  \(problem)") }
        return error.kind == .damaged ? damaged : stopped
    }

    /// Runs `command` on the deployment of `storeDirectory`: a failure is reported as the command's (exit
    /// status as `fail` says); after a success, the stores a restore kept aside are named.
    static func onDeployment(_ storeDirectory: String, _ command: String, _ body: (DeploymentBackup) throws(BackupError) -> Void) throws {
        let deployment = DeploymentBackup(storeDirectory: URL(fileURLWithPath: storeDirectory))
        do { try body(deployment) } catch { throw fail(command, error) }
        warnRestored(deployment)
    }

    /// A warning on standard error for each previous store a restore kept beside the store folder.
    static func warnRestored(_ deployment: DeploymentBackup) {
        for (folder, since) in deployment.restoredStores() {
            let when = ISO8601DateFormatter().string(from: since)
            stderr("warning: \(folder.path) is the store a restore replaced (\(when)): a full copy of patient data. Remove it "
                   + "once the restored store is confirmed (deploy/backup.sh removes it after BACKUP_KEEP days: store backup --remove-restored-after DAYS)")
        }
    }

    /// The backup key of `--key FILE`, or nil for the deployment's own.
    static func key(_ file: String?, command: String) throws -> BackupKey? {
        guard let file else { return nil }
        do { return try BackupKey.load(from: URL(fileURLWithPath: file)) } catch { throw fail(command, error) }
    }

    static func summary(_ manifest: BackupManifest) -> String {
        let files = manifest.databases.map { "\($0.name) (\($0.bytes) bytes)" }.joined(separator: ", ")
        var text = "\(manifest.analyses) analyses, \(manifest.images) images; \(files); taken \(manifest.createdAt) on \(manifest.host)"
        if !manifest.missingImages.isEmpty {
            text += "\nwarning: \(manifest.missingImages.count) images records refer to were already missing in the live store: "
                + manifest.missingImages.joined(separator: ", ")
        }
        return text
    }

    struct Backup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy the embedded store (records, images, accounts, audit log, reports) to a new folder while the server runs.",
            discussion: """
                Writes a consistent copy of var/store (MEDISCOPE_VAR) to DESTINATION, which must not exist or be \
                empty: the images records use (hard links), then, under the analyses database's write lock (uploads \
                wait for it briefly), the analyses, report and job databases by SQLite's online backup; then the \
                accounts database. The copy is checked (sizes, SHA-256, integrity_check, every image's content) \
                before the command succeeds, and described in DESTINATION/BACKUP.json. On the store's own file system \
                the images are hard links to the live files (no extra space, no protection from a failed disk, and \
                chmod/chown/edits reach the live files): keep backups on another disk or host.

                BACKUP.json is authenticated (BACKUP.mac, HMAC-SHA256) with the deployment's backup key, \
                var/backup.key, which the first backup makes (0600) and no backup holds: keep a copy of it \
                elsewhere (a password safe), as a new machine restores only with it (--key).

                Exit status: 0 done and checked; 1 the copy did not pass its check; 2 nothing was copied.
                """)
        @Argument(help: "A new or empty folder.") var destination: String
        @Option(help: "JSON configuration file (as for serve).") var config: String?
        @Option(help: "After the backup, remove the previous stores restores kept (store.before-restore-*) older than this many days.")
        var removeRestoredAfter: Int?

        func run() throws {
            let settings = try StoreCommand.embeddedStore(config, command: "backup")
            try StoreCommand.onDeployment(settings.storeDirectory, "backup") { backup throws(BackupError) in
                let manifest = try backup.create(at: URL(fileURLWithPath: destination), host: settings.hostName)
                print("backed up \(settings.storeDirectory) to \(destination): \(StoreCommand.summary(manifest))")
                if let days = removeRestoredAfter {
                    for folder in try backup.removeRestoredStores(olderThanDays: max(days, 0)) {
                        print("removed \(folder.path), the store a restore replaced more than \(days) days ago")
                    }
                }
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a backup folder: its manifest's MAC, sizes, SHA-256, SQLite integrity, every image's content and presence.",
            discussion: """
                BACKUP.json must match BACKUP.mac under the deployment's backup key (var/backup.key of the \
                configuration), or the key given with --key; nothing else is trusted before it does.

                Exit status: 0 the backup passes; 1 it does not (each problem on standard error); 2 it is not a \
                backup, or the key cannot be read.
                """)
        @Argument(help: "A folder made by `mediscope store backup`.") var backup: String
        @Option(help: "JSON configuration file (as for serve): where the backup key is.") var config: String?
        @Option(help: "The backup key file of the deployment that made the backup (default: var/backup.key).") var key: String?

        func run() throws {
            let given = try StoreCommand.key(key, command: "verify")
            let settings = try? AppConfig.load(file: config)
            guard let settings else {
                guard let given else {
                    StoreCommand.stderr("mediscope store verify: the configuration cannot be read, so neither can the backup key: pass --key FILE")
                    throw StoreCommand.stopped
                }
                do { print("\(backup) passes its check: \(StoreCommand.summary(try DeploymentBackup.verify(URL(fileURLWithPath: backup), key: given)))") } catch {
                    throw StoreCommand.fail("verify", error)
                }
                return
            }
            try StoreCommand.onDeployment(settings.storeDirectory, "verify") { deployment throws(BackupError) in
                let manifest = try deployment.verify(URL(fileURLWithPath: backup), key: given)
                print("\(backup) passes its check: \(StoreCommand.summary(manifest))")
            }
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace the embedded store by a checked backup (the server must be stopped).",
            discussion: """
                Checks BACKUP (its manifest's MAC under var/backup.key, or --key), refuses a backup whose files \
                other users may change, assembles the store beside var/store, then moves the current var/store aside as \
                var/store.before-restore-<UTC time> (a full copy of patient data: remove it once satisfied; \
                `store backup --remove-restored-after DAYS` does) and puts the restored one in its place. \
                Run it as the service's user (or chown the folder afterwards), then start the server.

                Exit status: 0 restored; 1 the backup did not pass its check (nothing changed); 2 not restored.
                """)
        @Argument(help: "A folder made by `mediscope store backup`.") var backup: String
        @Option(help: "JSON configuration file (as for serve).") var config: String?
        @Option(help: "The backup key file of the deployment that made the backup (default: var/backup.key; kept as this deployment's when it has none).")
        var key: String?

        func run() throws {
            let given = try StoreCommand.key(key, command: "restore")
            let settings = try StoreCommand.embeddedStore(config, command: "restore")
            if let pid = Self.runningServer(pidFile: settings.pidFile) {
                StoreCommand.stderr("mediscope store restore: the server is running (pid \(pid), \(settings.pidFile)); stop it first")
                throw StoreCommand.stopped
            }
            let deployment = DeploymentBackup(storeDirectory: URL(fileURLWithPath: settings.storeDirectory))
            do {
                let aside = try deployment.restore(from: URL(fileURLWithPath: backup), key: given)
                print("restored \(settings.storeDirectory) from \(backup)"
                      + (aside.map { "; the previous store is kept in \($0.path)" } ?? ""))
            } catch {
                throw StoreCommand.fail("restore", error)
            }
            StoreCommand.warnRestored(deployment)
        }

        /// The pid in `pidFile` when that process is alive and is a mediscope.
        static func runningServer(pidFile: String) -> Int32? {
            guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
                  let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0,
                  kill(pid, 0) == 0 || errno == EPERM else { return nil }
            let command = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
            return command.contains("mediscope") ? pid : nil
        }
    }

    struct Migrate: ParsableCommand {
        /// The backends a deployment can be copied to.
        enum Target: String, ExpressibleByArgument, CaseIterable { case firestore }

        static let configuration = CommandConfiguration(
            abstract: "Copy the SQLite deployment under var/store into Firestore (idempotent: run again to continue).",
            discussion: """
                Copies organisations, users (password hashes and Firebase links included), sessions, API tokens \
                (revoked ones too), the audit log, and analyses with their images from the SQLite files under \
                var/store (MEDISCOPE_VAR) into the Firestore project of --project or firestore.project.id \
                (MEDISCOPE_FIRESTORE_PROJECT_ID), reached as serve reaches it (GOOGLE_APPLICATION_CREDENTIALS, \
                FIRESTORE_EMULATOR_HOST), whatever `store` is set to. Records already in Firestore are left as \
                they are: a second run writes nothing, an interrupted run continues. Sign-in failures are not \
                copied. Afterwards set MEDISCOPE_STORE=firestore.

                Exit status: 0 everything is in Firestore; 1 some records were not copied (listed by id on \
                standard error); 2 the migration could not start or stopped (run it again to continue).
                """)

        @Option(help: "Where to copy to.") var to: Target
        @Option(help: "JSON configuration file (as for serve).") var config: String?
        @Option(help: "Google Cloud project id (instead of firestore.project.id).") var project: String?
        @Flag(help: "Read both sides and count; write nothing.") var dryRun = false

        static let recordsFailed = ExitCode(1)

        func run() throws {
            let storeDirectory: String
            let projectId: String
            let client: FirestoreClient
            do {
                storeDirectory = try AppConfig.load(file: config).storeDirectory
                let firestore = try AppConfig.firestoreSettings(file: config, projectId: project)
                projectId = firestore.projectId
                client = try firestore.client(for: .tool)
            } catch {
                StoreCommand.stderr("mediscope store migrate: \(error)")
                throw StoreCommand.stopped
            }
            print("copying the SQLite deployment in \(storeDirectory) to Firestore project \(projectId)"
                  + (dryRun ? " (dry run: nothing is written)" : ""))
            let migration = StoreMigration(storeDirectory: URL(fileURLWithPath: storeDirectory), firestore: client, dryRun: dryRun,
                                           log: { StoreCommand.stderr($0) })
            let report: MigrationReport
            do { report = try migration.run() } catch {
                print(error.report)
                StoreCommand.stderr("mediscope store migrate: \(error); what was copied stays, run the command again to continue")
                throw StoreCommand.stopped
            }
            print(report)
            print("not copied: sign-in failures (throttling state, forgotten within minutes)")
            if report.anyFailed {
                StoreCommand.stderr("mediscope store migrate: some records were not copied (listed above by id); fix them and run again")
                throw Self.recordsFailed
            }
            if !dryRun { print("done: set MEDISCOPE_STORE=firestore (\"store\": \"firestore\") and restart the server") }
        }
    }
}
