import Foundation
import MediscopeFirestore
import MediscopeFirestoreStore
import MediscopeOutbox
import MediscopeServer
import MediscopeStore

/// The "outbox" background process (store = firestore): delivers this host's outbox to Firestore, so
/// no inference or io worker ever waits on Firestore for a write. Logs when Firestore stops or starts
/// answering and when an entry is parked (kind and id only: never the record).
final class OutboxDeliveryWork: BackgroundWork {
    static let processName = "outbox"
    let config: AppConfig
    let log: ServerLog
    private var delivery: OutboxDelivery?
    private var reachable: Bool?
    private var parkedTotal: Int64?

    init(config: AppConfig, log: ServerLog) {
        self.config = config
        self.log = log
    }

    func runOnce(_ context: BackgroundContext) -> Double {
        do {
            let delivery = try opened()
            let pause = try delivery.runOnce(deadline: Date().addingTimeInterval(5))
            report(try delivery.outbox.stats(), delivery.outbox)
            return pause
        } catch {
            log.error("outbox_error", ["kind": .token(.init(Self.kind(of: error)))])
            return 2
        }
    }

    /// The depth it leaves behind: what waits until this host runs again (same var/), for the operator
    /// who stops a host.
    func stopped(_ context: BackgroundContext) {
        guard let delivery, let stats = try? delivery.outbox.stats() else { return }
        log.info("outbox_stopped", ["outbox_depth": .int(stats.depth), "parked": .int(stats.parked)])
    }

    /// What failed, in words that hold no data: the error's kind or status, else its type.
    static func kind(of error: any Error) -> String {
        switch error {
        case let e as StoreError: "store_\(e.kind.rawValue)"
        case let e as FirestoreError: "firestore_\(e.status.rawValue)"
        default: String(describing: type(of: error))
        }
    }

    private func opened() throws -> OutboxDelivery {
        if let delivery { return delivery }
        guard let settings = config.firestore else { throw ServerError("store is not firestore") }
        let client = try settings.client(for: .delivery)
        let outbox = try Outbox(directory: URL(fileURLWithPath: config.storeDirectory))
        let delivery = OutboxDelivery(outbox: outbox, analyses: FirestoreAnalysisStore(client: client),
                                      audit: FirestoreAuditLogStore(client: client))
        self.delivery = delivery
        return delivery
    }

    private func report(_ stats: OutboxStats, _ outbox: Outbox) {
        if let now = stats.remoteReachable, now != reachable {
            if now {
                if reachable != nil { log.info("firestore_reachable", ["outbox_depth": .int(stats.depth)]) }
            } else {
                log.warning("firestore_unreachable", ["outbox_depth": .int(stats.depth)])
            }
            reachable = now
        }
        if let seen = parkedTotal, stats.parkedTotal > seen, let entry = try? outbox.parkedEntries().last {
            log.error("outbox_parked", ["kind": .token(.init(entry.kind.rawValue)), "id": .token(.init(entry.key)),
                                        "parked": .int(stats.parked)])
        }
        parkedTotal = stats.parkedTotal
    }
}
