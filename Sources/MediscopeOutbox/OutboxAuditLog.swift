import Foundation
import MediscopeAuth
import MediscopeStore

/// `AuditLogStore` for a host that writes through its outbox: `append` is durable in the local outbox
/// when it returns (a request whose trace cannot be written is still refused, but Firestore being down
/// does not refuse it), and `OutboxDelivery` sends the entry to Firestore's `audit` collection in order.
///
/// Ids come from `AuditID` (time-ordered, given here, so the entry keeps its id in Firestore). Reads ask
/// `remote` and add the entries still waiting here that match the filter, in the filter's order.
package final class OutboxAuditLog: AuditLogStore {
    package let outbox: Outbox
    package let remote: any AuditLogStore
    let ids: AuditID.Generator

    package init(outbox: Outbox, remote: any AuditLogStore, ids: AuditID.Generator = .shared) {
        self.outbox = outbox
        self.remote = remote
        self.ids = ids
    }

    package func append(_ entry: AuditEntry) throws(AuthError) -> Int64 {
        var entry = entry
        let id = ids.next()
        entry.id = id
        do { try outbox.enqueueAudit(entry) } catch { throw Self.authError(error) }
        return id
    }

    package func entries(_ filter: AuditFilter) throws(AuthError) -> [AuditEntry] {
        let delivered = try remote.entries(filter)
        let waiting: [AuditEntry]
        do { waiting = try outbox.pendingAudit(organizationId: filter.organizationId).filter(filter.matches) } catch {
            throw Self.authError(error)
        }
        guard !waiting.isEmpty else { return delivered }
        // An entry may be in both for a moment (delivered, not yet removed here): one copy.
        var byId: [Int64: AuditEntry] = [:]
        for entry in delivered + waiting { if let id = entry.id { byId[id] = entry } }
        let sorted = byId.values.sorted { filter.newestFirst ? $0.id! > $1.id! : $0.id! < $1.id! }
        return Array(sorted.prefix(min(max(filter.limit, 1), 1000)))
    }

    package func checkReady() throws(AuthError) {
        do { try outbox.checkReady() } catch { throw Self.authError(error) }
    }

    static func authError(_ error: StoreError) -> AuthError {
        AuthError(.unavailable, "the outbox: \(error.kind.rawValue)")
    }
}
