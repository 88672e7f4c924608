import ArgumentParser
import Foundation
import MediscopeApp
import MediscopeFirestore
import MediscopeMigration

/// Moving a deployment from one store backend to another.
struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Move a deployment's records between store backends.",
        subcommands: [Migrate.self])

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
        static let stopped = ExitCode(2)

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
                Self.stderr("mediscope store migrate: \(error)")
                throw Self.stopped
            }
            print("copying the SQLite deployment in \(storeDirectory) to Firestore project \(projectId)"
                  + (dryRun ? " (dry run: nothing is written)" : ""))
            let migration = StoreMigration(storeDirectory: URL(fileURLWithPath: storeDirectory), firestore: client, dryRun: dryRun,
                                           log: { Self.stderr($0) })
            let report: MigrationReport
            do { report = try migration.run() } catch {
                print(error.report)
                Self.stderr("mediscope store migrate: \(error); what was copied stays, run the command again to continue")
                throw Self.stopped
            }
            print(report)
            print("not copied: sign-in failures (throttling state, forgotten within minutes)")
            if report.anyFailed {
                Self.stderr("mediscope store migrate: some records were not copied (listed above by id); fix them and run again")
                throw Self.recordsFailed
            }
            if !dryRun { print("done: set MEDISCOPE_STORE=firestore (\"store\": \"firestore\") and restart the server") }
        }

        static func stderr(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }
}
