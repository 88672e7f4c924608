import Foundation
import MediscopeEncoding

/// The audit log: append-only, nothing is changed or removed. See `AccountStores` for what every store
/// promises; `append` in particular is durable before it returns, because a request whose trace cannot
/// be written is refused. Entries hold ids and fixed words only, never secrets or patient details.
package protocol AuditLogStore: Sendable {
    /// Appends `entry` (its `id` is ignored; fields arrive validated and bounded by `Accounts`) and
    /// returns the id it was given: positive and never reused; strictly larger than every id this
    /// process was given before; across processes and hosts, ordered by time to the millisecond within
    /// the hosts' clock skew (SQLite's AUTOINCREMENT orders strictly across processes too; the shared
    /// stores use `AuditID`, which any process can assign on its own).
    func append(_ entry: AuditEntry) throws(AuthError) -> Int64

    /// The entries matching `filter` (exactly as `AuditFilter.matches` decides), at most `filter.limit`
    /// (1...1000), ordered by id, ascending, or descending when `newestFirst`:
    /// - `organizationId`, `actorUserId`, `recordId`, `outcome`: equal;
    /// - `action`: equal, or, when it ends in ".", every action that starts with it;
    /// - `since` <= time < `until`; id > `afterId`; id < `beforeId`.
    /// Each returned entry carries its id.
    func entries(_ filter: AuditFilter) throws(AuthError) -> [AuditEntry]

    /// Throws `.unavailable` unless the store can serve reads and writes now.
    func checkReady() throws(AuthError)
}

extension AuditFilter {
    /// Whether `entry` passes every set field of this filter, as `AuditLogStore.entries` selects
    /// (`limit` and the order are not conditions). Strings compare byte for byte (UTF-8), as the stores
    /// do; times compare in milliseconds; an entry without an id fails an `afterId` or `beforeId` bound.
    package func matches(_ entry: AuditEntry) -> Bool {
        func equal(_ wanted: String?, _ actual: String?) -> Bool {
            guard let wanted else { return true }
            guard let actual else { return false }
            return wanted.utf8.elementsEqual(actual.utf8)
        }
        guard equal(organizationId, entry.organizationId), equal(actorUserId, entry.actorUserId),
              equal(recordId, entry.recordId), equal(outcome, entry.outcome) else { return false }
        if let action {
            let matched = action.hasSuffix(".") ? entry.action.utf8.starts(with: action.utf8) : equal(action, entry.action)
            guard matched else { return false }
        }
        let ms = entry.time.millisecondsSince1970
        if let since, ms < since.millisecondsSince1970 { return false }
        if let until, ms >= until.millisecondsSince1970 { return false }
        if let afterId { guard let id = entry.id, id > afterId else { return false } }
        if let beforeId { guard let id = entry.id, id < beforeId else { return false } }
        return true
    }
}
