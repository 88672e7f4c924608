import Foundation
import MediscopeStore

/// What writing an entry's object gave.
package enum WrittenObject: Sendable {
    /// The PS3.10 file to send.
    case object([UInt8])
    /// Its analysis or report version no longer exists (deleted, never made): nothing to send.
    case gone(String)
    /// It cannot be written (no patient data in the reason): parked for the operator.
    case failed(String)
}

/// Sends the DICOM outbox's entries to their destinations: the body of a "dicom-out" background process.
///
/// Each round takes, per destination, its oldest due entries and writes their objects (`write`, the
/// caller's: from the stores, as the analysis and report stand), at most `batchSize` objects and
/// `maxBatchBytes` in all, and never two SRs of one analysis (a refused SR is never overtaken by the one
/// that replaces it in the same exchange); then sends them in one exchange. Stored objects are settled at
/// once; at the first object the destination cannot take now, the round for that destination ends there
/// (order is kept). A refused object backs off and is parked after `maxAttempts`; an unreachable
/// destination backs off on its own, doubling from `initialBackoff` to `maxBackoff` seconds, its entries
/// kept as they are, never parked for it. An object that cannot be written (a record this build cannot
/// read) is parked at once, with its reason; a store out of reach ends the round untouched.
///
/// Delivery is at least once: the acknowledgements of an exchange are recorded when it ends, so an
/// exchange cut by a crash is sent again, with the same UIDs and bytes (a PACS keeps one).
package final class DicomDelivery {
    package let outbox: DicomOutbox
    package let destinations: [DicomDestination]
    let senders: [String: any DicomSender]
    let write: (DicomOutboxEntry) throws(StoreError) -> WrittenObject
    /// Refusals of one object before it is parked.
    package var maxAttempts = 10
    /// Seconds to wait after the first failure, doubled per failure up to `maxBackoff`.
    package var initialBackoff = 2.0
    package var maxBackoff = 300.0
    /// Objects sent in one exchange at most.
    package var batchSize = 16
    /// Bytes sent in one exchange at most (the first object goes whatever its size): a proxy's body limit
    /// and a slow link's time-out stay out of reach of a full round.
    package var maxBatchBytes = 8 << 20

    /// - Parameters:
    ///   - senders: one sender per destination name.
    ///   - write: writes an entry's object; a `StoreError` `.unavailable` (the store out of reach) ends the
    ///     round untouched, any other parks the entry.
    package init(outbox: DicomOutbox, destinations: [DicomDestination], senders: [String: any DicomSender],
                 write: @escaping (DicomOutboxEntry) throws(StoreError) -> WrittenObject) {
        self.outbox = outbox
        self.destinations = destinations
        self.senders = senders
        self.write = write
    }

    /// What one round did for one destination, for the log.
    package struct Round: Sendable, Equatable {
        package var destination: String
        package var delivered = 0
        package var refused = 0
        /// The entries parked this round (refused past the limit, or not writable).
        package var parked: [DicomOutboxEntry] = []
        package var gone = 0
        /// Whether the destination was called (false when every due entry was gone or parked first).
        package var contacted = false
        /// Set when the destination could not be reached or could not take the objects now.
        package var unreachable: String?

        package init(destination: String, delivered: Int = 0, refused: Int = 0, parked: [DicomOutboxEntry] = [], gone: Int = 0,
                     contacted: Bool = false, unreachable: String? = nil) {
            self.destination = destination; self.delivered = delivered; self.refused = refused; self.parked = parked
            self.gone = gone; self.contacted = contacted; self.unreachable = unreachable
        }
    }

    /// One round over every destination. Returns what each did (destinations with nothing due are left out)
    /// and the seconds to pause before the next round.
    package func runOnce(now: Date = Date()) throws(StoreError) -> (rounds: [Round], pause: Double) {
        var rounds: [Round] = []
        var busy = false
        for destination in destinations {
            guard let sender = senders[destination.name] else { continue }
            let due = try outbox.due(destination: destination.name, limit: batchSize, now: now)
            guard !due.isEmpty else { continue }
            let round = try deliver(due, to: destination.name, sender, now: now)
            // Something went through and more may be due: at once.
            if round.unreachable == nil && round.refused == 0 && (round.delivered + round.gone + round.parked.count) > 0 { busy = true }
            rounds.append(round)
        }
        return (rounds, busy ? 0 : 1)
    }

    private func deliver(_ due: [DicomOutboxEntry], to destination: String, _ sender: any DicomSender, now: Date) throws(StoreError) -> Round {
        var round = Round(destination: destination)
        var sending: [(DicomOutboxEntry, DicomObject)] = []
        var bytes = 0
        var reports: Set<String> = []
        collect: for entry in due {
            if entry.object == .sr && reports.contains(entry.analysisId) { break collect }
            let written: WrittenObject
            do { written = try write(entry) } catch where error.kind == .unavailable {
                if sending.isEmpty { throw error }
                break collect   // send what is written; the rest waits for the store
            } catch {
                written = .failed("the record cannot be read (\(error.kind.rawValue))")
            }
            switch written {
            case .object(let object):
                if !sending.isEmpty && bytes + object.count > maxBatchBytes { break collect }
                bytes += object.count
                if entry.object == .sr { reports.insert(entry.analysisId) }
                sending.append((entry, DicomObject(bytes: object, sopInstanceUID: entry.sopInstanceUID)))
            case .gone(let reason):
                try outbox.markGone(entry, reason: reason, now: now)
                round.gone += 1
            case .failed(let reason):
                try outbox.park(entry, error: reason, now: now)
                round.parked.append(entry)
            }
        }
        guard !sending.isEmpty else { return round }
        round.contacted = true
        let results: [SentObject]
        do { results = try sender.send(sending.map(\.1)) } catch {
            try unreachable(destination, error.message, now: now)
            round.unreachable = error.message
            return round
        }
        var delivered: [DicomOutboxEntry] = []
        for ((entry, _), result) in zip(sending, results + Array(repeating: .later("no answer for the object"), count: max(0, sending.count - results.count))) {
            switch result {
            case .stored:
                delivered.append(entry)
            case .refused(let reason):
                let backoff = delay(entry.attempts + 1)
                if try outbox.refused(entry, error: reason, maxAttempts: maxAttempts, retryAt: now.addingTimeInterval(backoff), now: now) {
                    round.parked.append(entry)
                } else {
                    round.refused += 1
                    // Later entries would overtake the one that backs off: they wait for it.
                    try outbox.markDelivered(delivered, now: now)
                    try outbox.destination(destination, reachable: true, now: now)
                    round.delivered = delivered.count
                    return round
                }
            case .later(let reason):
                try outbox.markDelivered(delivered, now: now)
                // Recorded only now: the destination's failures in a row count on, and its back-off grows.
                try unreachable(destination, reason, now: now)
                round.unreachable = reason
                round.delivered = delivered.count
                return round
            }
        }
        try outbox.markDelivered(delivered, now: now)
        try outbox.destination(destination, reachable: true, now: now)
        round.delivered = delivered.count
        return round
    }

    private func unreachable(_ destination: String, _ reason: String, now: Date) throws(StoreError) {
        try outbox.destination(destination, reachable: false, error: reason, now: now) { [self] failures in delay(failures) }
    }

    /// The back-off after `failures` failures in a row: doubling, capped, with jitter (so several hosts do
    /// not retry in step).
    func delay(_ failures: Int) -> Double {
        let full = min(initialBackoff * pow(2, Double(max(failures - 1, 0))), maxBackoff)
        return Double.random(in: full * 0.75...full)
    }
}
