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

/// Sends the DICOM outbox's entries to their destinations: the body of the "dicom-out" background process.
///
/// Each round takes, per destination, its oldest due entries (at most `batchSize`), writes their objects
/// (`write`, the caller's: from the stores, as the analysis and report stand) and sends them in one
/// exchange. Stored objects are settled at once; at the first object the destination cannot take now, the
/// round for that destination ends there (order is kept). A refused object backs off and is parked after
/// `maxAttempts`; an unreachable destination backs off on its own, doubling from `initialBackoff` to
/// `maxBackoff` seconds, its entries kept as they are, never parked for it.
package final class DicomDelivery {
    package let outbox: DicomOutbox
    package let destinations: [DicomDestination]
    let senders: [String: any DicomSender]
    let write: (DicomOutboxEntry) throws(StoreError) -> WrittenObject
    /// Refusals of one object before it is parked.
    package var maxAttempts = 5
    /// Seconds to wait after the first failure, doubled per failure up to `maxBackoff`.
    package var initialBackoff = 2.0
    package var maxBackoff = 300.0
    /// Objects sent in one exchange at most.
    package var batchSize = 16

    /// - Parameters:
    ///   - senders: one sender per destination name.
    ///   - write: writes an entry's object; a `StoreError` (the store out of reach) ends the round untouched.
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
        package var parked = 0
        package var gone = 0
        /// Set when the destination could not be reached or could not take the objects now.
        package var unreachable: String?
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
            // A full batch that went through: more may be due at once.
            if round.unreachable == nil && due.count == batchSize { busy = true }
            rounds.append(round)
        }
        return (rounds, busy ? 0 : 1)
    }

    private func deliver(_ due: [DicomOutboxEntry], to destination: String, _ sender: any DicomSender, now: Date) throws(StoreError) -> Round {
        var round = Round(destination: destination)
        var sending: [(DicomOutboxEntry, DicomObject)] = []
        for entry in due {
            switch try write(entry) {
            case .object(let bytes): sending.append((entry, DicomObject(bytes: bytes, sopInstanceUID: entry.sopInstanceUID)))
            case .gone(let reason):
                try outbox.markGone(entry, reason: reason, now: now)
                round.gone += 1
            case .failed(let reason):
                try outbox.park(entry, error: reason, now: now)
                round.parked += 1
            }
        }
        guard !sending.isEmpty else { return round }
        let results: [SentObject]
        do { results = try sender.send(sending.map(\.1)) } catch {
            try unreachable(destination, error.message, now: now)
            round.unreachable = error.message
            return round
        }
        try outbox.destination(destination, reachable: true, now: now)
        var delivered: [DicomOutboxEntry] = []
        for ((entry, _), result) in zip(sending, results + Array(repeating: .later("no answer for the object"), count: max(0, sending.count - results.count))) {
            switch result {
            case .stored:
                delivered.append(entry)
            case .refused(let reason):
                let backoff = delay(entry.attempts + 1)
                if try outbox.refused(entry, error: reason, maxAttempts: maxAttempts, retryAt: now.addingTimeInterval(backoff), now: now) {
                    round.parked += 1
                } else {
                    round.refused += 1
                    // Later entries would overtake the one that backs off: they wait for it.
                    try outbox.markDelivered(delivered, now: now)
                    round.delivered += delivered.count
                    return round
                }
            case .later(let reason):
                try outbox.markDelivered(delivered, now: now)
                round.delivered += delivered.count
                try unreachable(destination, reason, now: now)
                round.unreachable = reason
                return round
            }
        }
        try outbox.markDelivered(delivered, now: now)
        round.delivered += delivered.count
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
