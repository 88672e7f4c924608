import ArgumentParser
import Foundation
import MediscopeApp
import MediscopeDicomOut

/// `mediscope dicom-out status|requeue|echo`: what this host still has to send to the PACS
/// (`dicom.destinations`), parked objects back into the queue once their cause is fixed, and a check
/// that a destination answers.
struct DicomOutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dicom-out",
        abstract: "This host's queue of DICOM results bound for the PACS (dicom.destinations).",
        subcommands: [Status.self, Requeue.self, Echo.self])

    static func open(_ config: String?) throws -> (AppConfig, DicomOutbox) {
        let settings = try AppConfig.load(file: config)
        guard !settings.dicomSending.destinations.isEmpty else {
            throw ValidationError("no dicom.destinations are configured: nothing is sent to a PACS")
        }
        // Never made here: a command run with another MEDISCOPE_VAR or --config would show an empty queue
        // as all clear.
        let path = URL(fileURLWithPath: settings.storeDirectory).appendingPathComponent(DicomOutbox.fileName).path
        guard FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("no DICOM outbox at \(path): nothing was queued on this host yet, or MEDISCOPE_VAR or --config "
                                  + "point elsewhere than the server's")
        }
        return (settings, try DicomOutbox(directory: URL(fileURLWithPath: settings.storeDirectory)))
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per destination: waiting, parked and delivered objects, whether it answered last, the parked entries, "
                + "and entries waiting for a destination no longer configured (JSON).")
        @Option(help: "JSON configuration file.") var config: String?

        func run() throws {
            let (settings, outbox) = try DicomOutCommand.open(config)
            struct Entry: Encodable {
                var seq: Int64, analysisId: String, object: String, part: String, sopInstanceUID: String, state: String
                var attempts: Int, enqueuedAt: Date, settledAt: Date?, error: String?
            }
            struct Destination: Encodable {
                var kind: String, sendsResults: Bool, stats: DicomDestinationStats, parked: [Entry], waiting: [Entry]
            }
            func entry(_ e: DicomOutboxEntry) -> Entry {
                Entry(seq: e.seq, analysisId: e.analysisId, object: e.object.rawValue, part: e.part, sopInstanceUID: e.sopInstanceUID,
                      state: e.state.rawValue, attempts: e.attempts, enqueuedAt: e.enqueuedAt, settledAt: e.settledAt, error: e.lastError)
            }
            struct Body: Encodable {
                /// The queue's file, so an operator sees which host's queue this is.
                var queue: String
                var destinations: [String: Destination]
                /// Entries waiting for a destination the configuration no longer names.
                var orphaned: [String: Int]
            }
            let names = settings.dicomSending.destinations.map(\.name)
            var body: [String: Destination] = [:]
            for (destination, stats) in zip(settings.dicomSending.destinations, try outbox.stats(destinations: names)) {
                body[destination.name] = Destination(
                    kind: destination.kind, sendsResults: settings.dicomSending.sendResults.contains(destination.name), stats: stats,
                    parked: try outbox.entries(destination: destination.name, state: .parked, limit: 100).map(entry),
                    waiting: try outbox.entries(destination: destination.name, state: .waiting, limit: 20).map(entry))
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            let orphaned = try outbox.destinationsWithEntries().filter { !names.contains($0.key) }
            let path = URL(fileURLWithPath: settings.storeDirectory).appendingPathComponent(DicomOutbox.fileName).path
            print(String(decoding: try encoder.encode(Body(queue: path, destinations: body, orphaned: orphaned)), as: UTF8.self))
        }
    }

    struct Requeue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Puts parked objects back in the queue, in their original order, and ends the destinations' back-off "
                + "(after fixing what the PACS refused).")
        @Option(help: "JSON configuration file.") var config: String?
        @Option(help: "Only this destination's parked objects.") var destination: String?

        func run() throws {
            let (settings, outbox) = try DicomOutCommand.open(config)
            if let destination, !settings.dicomSending.destinations.contains(where: { $0.name == destination }) {
                throw ValidationError("dicom.destinations has no destination named \(destination)")
            }
            let count = try outbox.requeue(destination: destination)
            print("requeued \(count) parked \(count == 1 ? "object" : "objects"); the running server sends them next")
        }
    }

    struct Echo: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Checks that a destination answers: C-ECHO for c-store (it does not prove the PACS accepts stores from "
                + "this AE title), an authorised QIDO-RS query for stow-rs.")
        @Option(help: "JSON configuration file.") var config: String?
        @Argument(help: "The destination's name in dicom.destinations.") var destination: String

        func run() throws {
            let (settings, _) = try DicomOutCommand.open(config)
            guard let target = settings.dicomSending.destinations.first(where: { $0.name == destination }) else {
                throw ValidationError("dicom.destinations has no destination named \(destination)")
            }
            do {
                try DicomDestinationCheck.verify(target, callingAETitle: settings.dicomSending.callingAETitle,
                                                 timeout: settings.dicomSending.timeoutSeconds)
            } catch {
                FileHandle.standardError.write(Data("\(destination): \(error.message)\n".utf8))
                throw ExitCode.failure
            }
            print("\(destination) answered")
        }
    }
}
