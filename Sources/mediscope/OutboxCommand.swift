import ArgumentParser
import Foundation
import MediscopeApp
import MediscopeOutbox

/// `mediscope outbox status|requeue`: what this host still owes Firestore, and parked entries back
/// into the queue once their cause is fixed (store = firestore).
struct OutboxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "This host's outbox of writes bound for Firestore (store = firestore).",
        subcommands: [Status.self, Requeue.self])

    static func open(_ config: String?) throws -> Outbox {
        let settings = try AppConfig.load(file: config)
        guard settings.store == .firestore else {
            throw ValidationError("the store is \(settings.store.rawValue); the outbox exists only with MEDISCOPE_STORE=firestore")
        }
        return try Outbox(directory: URL(fileURLWithPath: settings.storeDirectory))
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Waiting and parked entries, deliveries and retries, and whether Firestore answered last (JSON).")
        @Option(help: "JSON configuration file.") var config: String?

        func run() throws {
            let outbox = try OutboxCommand.open(config)
            struct Parked: Encodable {
                var seq: Int64, kind: String, id: String, enqueuedAt: Date, attempts: Int, parkedAt: Date?, error: String?
            }
            struct Body: Encodable { var stats: OutboxStats; var parked: [Parked] }
            let parked = try outbox.parkedEntries().map {
                Parked(seq: $0.seq, kind: $0.kind.rawValue, id: $0.key, enqueuedAt: $0.enqueuedAt, attempts: $0.attempts,
                       parkedAt: $0.parkedAt, error: $0.lastError)
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            print(String(decoding: try encoder.encode(Body(stats: try outbox.stats(), parked: parked)), as: UTF8.self))
        }
    }

    struct Requeue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Puts every parked entry back in the queue, in its original order (after fixing what Firestore refused).")
        @Option(help: "JSON configuration file.") var config: String?

        func run() throws {
            let count = try OutboxCommand.open(config).requeueParked()
            print("requeued \(count) parked \(count == 1 ? "entry" : "entries"); the running server delivers them next")
        }
    }
}
