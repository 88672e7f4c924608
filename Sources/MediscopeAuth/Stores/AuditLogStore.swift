import Foundation

/// The audit log: append-only, nothing is changed or removed. See `AccountStores` for what every store
/// promises; `append` in particular is durable before it returns, because a request whose trace cannot
/// be written is refused. Entries hold ids and fixed words only, never secrets or patient details.
public protocol AuditLogStore: Sendable {
    /// Appends `entry` (its `id` is ignored; fields arrive validated and bounded by `Accounts`) and
    /// returns the id it was given: positive, larger than every id given before by any process or host,
    /// never reused.
    func append(_ entry: AuditEntry) throws(AuthError) -> Int64

    /// The entries matching every set field of `filter`, at most `filter.limit` (1...1000):
    /// - `organizationId`, `actorUserId`, `recordId`, `outcome`: equal;
    /// - `action`: equal, or, when it ends in ".", every action that starts with it;
    /// - `since` <= time < `until`; id > `afterId`; id < `beforeId`;
    /// ordered by id, ascending, or descending when `newestFirst`. Each returned entry carries its id.
    func entries(_ filter: AuditFilter) throws(AuthError) -> [AuditEntry]

    /// Throws `.unavailable` unless the store can serve reads and writes now.
    func checkReady() throws(AuthError)
}
