import Foundation
import MediscopeAuth
import MediscopeEncoding
import MediscopeFirestore
import MediscopeFirestoreStore
import MediscopeStore

/// What a delivery attempt found, as the outbox acts on it.
package enum DeliveryOutcome: Sendable, Equatable {
    /// The shared store has the entry now (or had it already: a retried create that found its own write).
    case delivered
    /// Not now (unreachable, overloaded, timed out): try again after a back-off.
    case retry(String)
    /// Refused for good (invalid, permission, conflicting id): park it.
    case park(String)
}

/// Sends outbox entries to Firestore, one at a time, in order: the body of the delivery process.
///
/// - Each entry's attempt is counted durably before it is sent. A create is one commit with
///   `currentDocument.exists = false` on the record (ids are ours), so a repeated attempt cannot write
///   twice; on ALREADY_EXISTS the stored record is read: this one (an earlier attempt landed and its
///   answer was lost) counts as delivered, another record under the id parks the entry.
/// - UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNAUTHENTICATED and
///   transport failures retry with capped, jittered exponential back-off; the head entry waits and
///   nothing behind it overtakes it (order is kept). Anything else parks the entry and the queue moves on.
/// - Audit entries go the same way (`audit/{id}` with exists = false).
package final class OutboxDelivery {
    package let outbox: Outbox
    let analyses: FirestoreAnalysisStore
    let audit: FirestoreAuditLogStore
    /// Back-off after the first failed attempt of an entry, doubled per attempt up to `maxBackoff` (s).
    package var initialBackoff = 0.5
    package var maxBackoff = 30.0
    /// While idle, how often the shared store is probed so /api/ready can tell it is down (s).
    package var probeInterval = 5.0
    private var lastProbe = Date.distantPast

    /// - Parameters:
    ///   - analyses: the Firestore analysis store the creates and deletes go to.
    ///   - audit: the Firestore audit log the entries go to (under the ids they were given here).
    package init(outbox: Outbox, analyses: FirestoreAnalysisStore, audit: FirestoreAuditLogStore) {
        self.outbox = outbox
        self.analyses = analyses
        self.audit = audit
    }

    /// Delivers what is due, until the outbox is empty, the head entry must wait, or `deadline` passes.
    /// Returns how long to wait before calling again (s). Outbox (local disk) errors are thrown.
    package func runOnce(deadline: Date = .distantFuture) throws(StoreError) -> Double {
        while Date() < deadline {
            guard let head = try outbox.head() else {
                probeIfIdle()
                return 0.1
            }
            let wait = head.nextAttemptAt.timeIntervalSinceNow
            // Backing off: but once a probe finds Firestore back, deliver at once, not when the back-off ends.
            if wait > 0, !probeDue() { return min(wait, 1) }
            let entry = try outbox.beginAttempt(head)
            switch attempt(entry) {
            case .delivered:
                try outbox.markDelivered(entry)
                try outbox.setRemote(reachable: true, error: nil)
            case .retry(let reason):
                let backoff = min(initialBackoff * pow(2, Double(max(entry.attempts - 1, 0))), maxBackoff)
                try outbox.scheduleRetry(entry, at: Date().addingTimeInterval(Double.random(in: backoff / 2...backoff)), error: reason)
                try outbox.setRemote(reachable: false, error: reason)
                return 0.05
            case .park(let reason):
                try outbox.park(entry, error: reason)
                try outbox.setRemote(reachable: true, error: nil)
            }
        }
        return 0
    }

    /// Delivers until nothing is due or `timeout` passes (tests, `mediscope outbox drain`).
    /// Returns true when the outbox holds no waiting entry at the end.
    @discardableResult
    package func drain(timeout: Double) throws(StoreError) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let pause = try runOnce(deadline: deadline)
            if try outbox.head() == nil { return true }
            Thread.sleep(forTimeInterval: min(pause, max(0, deadline.timeIntervalSinceNow)))
        }
        return try outbox.head() == nil
    }

    /// One attempt at `entry` (its attempt already counted).
    func attempt(_ entry: OutboxEntry) -> DeliveryOutcome {
        do throws(FirestoreError) {
            switch entry.kind {
            case .analysisCreate:
                let record: AnalysisRecord
                let images: [ImageBlob]
                do {
                    record = try Outbox.decodeRecord(Data(entry.body))
                    images = try outbox.images(of: entry)
                } catch {
                    return .retry("the outbox could not be read: \(error.kind)")
                }
                do throws(FirestoreError) { try analyses.insert(record, images: images) } catch {
                    guard error.status == .alreadyExists else { throw error }
                    return sameRecordStored(record)
                }
            case .analysisDelete:
                guard let organizationId = entry.organizationId else { return .park("a delete without its organisation") }
                do { _ = try analyses.delete(id: entry.key, organizationId: organizationId) } catch {
                    return error.kind == .unavailable ? .retry("Firestore: \(error.message)") : .park("Firestore: \(error.message)")
                }
            case .auditAppend:
                let auditEntry: AuditEntry
                do { auditEntry = try JSONDecoder.outbox.decode(AuditEntry.self, from: Data(entry.body)) } catch {
                    return .park("the audit entry in the outbox is unreadable")
                }
                return deliver(auditEntry)
            }
            return .delivered
        } catch {
            return Self.outcome(error)
        }
    }

    /// Inserts the audit entry under its id. A taken id is this entry's own earlier delivery (its answer
    /// lost) when the stored entry is this one; else another process drew the same id, and the entry
    /// is appended under a fresh one: an audit entry is never dropped and never overwrites another.
    func deliver(_ entry: AuditEntry) -> DeliveryOutcome {
        do throws(FirestoreError) {
            try audit.write(entry)
            return .delivered
        } catch {
            guard error.status == .alreadyExists else { return Self.outcome(error) }
        }
        do throws(AuthError) {
            var stored = AuditFilter()
            stored.afterId = entry.id! - 1
            stored.limit = 1
            if let found = try audit.entries(stored).first, found.id == entry.id, Self.sameEntry(found, entry) { return .delivered }
            _ = try audit.append(entry)
            return .delivered
        } catch {
            return error.kind == .unavailable ? .retry("Firestore: \(error.message)") : .park("Firestore: \(error.message)")
        }
    }

    /// A create met ALREADY_EXISTS: delivered when the stored record is this one (an earlier attempt
    /// landed and its answer was lost, however many attempts ago or requeues since), or another host's
    /// copy of the same request under one Idempotency-Key (same derived id and fingerprint, and the same
    /// results: the record delivered first stands, and this copy, the same analysis, is dropped); parked
    /// when another record holds the id, or a copy whose results differ (hosts on other model versions).
    func sameRecordStored(_ record: AnalysisRecord) -> DeliveryOutcome {
        do {
            let stored = try analyses.get(id: record.id, organizationId: record.organizationId)
            if stored == record { return .delivered }
            if let fingerprint = record.idempotencyFingerprint, let stored, stored.idempotencyFingerprint == fingerprint {
                if Self.sameFindings(stored, record) { return .delivered }
                return .park("Firestore ALREADY_EXISTS: another host's copy of this Idempotency-Key's request has other results")
            }
            if record.idempotencyFingerprint != nil, stored?.idempotencyFingerprint != nil {
                return .park("Firestore ALREADY_EXISTS: another request under the same Idempotency-Key made record \(record.id)")
            }
            return .park("Firestore ALREADY_EXISTS: another record holds the id \(record.id)")
        } catch {
            return error.kind == .unavailable ? .retry("Firestore: \(error.message)") : .park("Firestore: \(error.message)")
        }
    }

    /// Two analyses of one request that say the same: the patient, the input check's verdict, and per
    /// result the prediction and probabilities to 1e-4 (hosts on other CPUs round the last bits apart).
    static func sameFindings(_ a: AnalysisRecord, _ b: AnalysisRecord) -> Bool {
        guard a.patient == b.patient, a.inputCheck.verdict == b.inputCheck.verdict, a.results.count == b.results.count else { return false }
        return zip(a.results, b.results).allSatisfy { x, y in
            x.id == y.id && x.model == y.model && x.prediction == y.prediction && x.probabilities.count == y.probabilities.count
                && zip(x.probabilities, y.probabilities).allSatisfy { $0.label == $1.label && abs($0.probability - $1.probability) < 1e-4 }
        }
    }

    /// Equal in every field, times compared to the millisecond (what Firestore keeps).
    static func sameEntry(_ a: AuditEntry, _ b: AuditEntry) -> Bool {
        var a = a, b = b
        a.time = a.time.roundedToMilliseconds
        b.time = b.time.roundedToMilliseconds
        return a == b
    }

    /// How a Firestore failure decides an attempt (ALREADY_EXISTS is compared by the caller first).
    static func outcome(_ error: FirestoreError) -> DeliveryOutcome {
        let reason = "Firestore \(error.status.rawValue) (HTTP \(error.httpStatus)): \(error.message.prefix(200))"
        switch error.status {
        case .unavailable, .deadlineExceeded, .resourceExhausted, .aborted, .internalError, .unauthenticated, .cancelled, .unknown:
            return .retry(reason)
        default:
            return .park(reason)
        }
    }

    private func probeIfIdle() { _ = probeDue() }

    /// Probes Firestore when `probeInterval` has passed since the last probe; true when it answered.
    private func probeDue() -> Bool {
        guard Date().timeIntervalSince(lastProbe) >= probeInterval else { return false }
        lastProbe = Date()
        do {
            try analyses.checkReady()
            try outbox.setRemote(reachable: true, error: nil)
            return true
        } catch {
            try? outbox.setRemote(reachable: error.kind != .unavailable, error: error.kind == .unavailable ? error.message : nil)
            return false
        }
    }
}
