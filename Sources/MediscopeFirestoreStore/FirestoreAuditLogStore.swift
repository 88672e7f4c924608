import Foundation
import MediscopeAuth
import MediscopeFirestore

/// `AuditLogStore` in Firestore, for several hosts sharing one database. Append-only: this type never
/// updates or deletes an entry (Firestore has no trigger to refuse it; IAM and rules may).
///
/// Data model (docs/firestore.md): `audit/{id}`, the id in decimal zero-padded to 19 digits so
/// that names sort as ids, holds `id` (integer), `time` (timestamp), `actorUserId`, `actorUsername`,
/// `organizationId`, `action`, `actionPrefixes` (every prefix of `action` that ends in ".", for the
/// prefix filter), `recordId`, `address`, `outcome`; nil fields are absent. Ids are `AuditID`s, so any
/// process can assign one before Firestore sees the entry; `insert` writes an entry whose id is set.
package final class FirestoreAuditLogStore: AuditLogStore {
    /// Audit entry documents, by zero-padded id.
    package static let audit = "audit"

    let fs: FirestoreAccounts
    let ids: AuditID.Generator

    /// The audit log of the database `client` reaches, with ids from `ids` (the process-wide generator
    /// unless a test gives its own).
    package init(client: FirestoreClient, ids: AuditID.Generator = .shared) {
        fs = FirestoreAccounts(client: client)
        self.ids = ids
    }

    /// Gives `entry` the next `AuditID` and inserts it. Should another process hold that id already, the
    /// entry takes the next one (never overwrites).
    package func append(_ entry: AuditEntry) throws(AuthError) -> Int64 {
        for _ in 0..<FirestoreAccounts.maxAttempts {
            var numbered = entry
            let id = ids.next()
            numbered.id = id
            let (doc, writeId) = FirestoreAccounts.withWriteId(document(numbered))
            if try fs.commit([.set(doc, precondition: .exists(false))], "append audit entry") { return id }
            if fs.isOwnWrite(try fs.get(doc.name, "append audit entry"), writeId) { return id }
        }
        throw AuthError(.unavailable, "append audit entry: no free id")
    }

    /// Writes `entry` under the id it carries already (assigned by `AuditID` elsewhere, e.g. by a local
    /// outbox that delivers later), durable when this returns.
    /// - Throws: `.invalid` when `entry.id` is nil or not positive; `.conflict` when an entry with this id
    ///   is stored already (this entry's own earlier delivery, or, rarely, another process's entry with
    ///   the same id: compare before treating it as delivered); `.unavailable` when Firestore cannot answer.
    package func insert(_ entry: AuditEntry) throws(AuthError) {
        guard (entry.id ?? 0) > 0 else { throw AuthError(.invalid, "an inserted audit entry needs its positive id") }
        try fs.call("insert audit entry") { () throws(FirestoreError) in try write(entry) }
    }

    /// `insert` with Firestore's own error (ALREADY_EXISTS when the id is taken, PERMISSION_DENIED...),
    /// for the outbox's delivery, which parks or retries by Firestore's status. `entry.id` must be set.
    package func write(_ entry: AuditEntry) throws(FirestoreError) {
        guard (entry.id ?? 0) > 0 else { throw FirestoreError(.invalidArgument, "an inserted audit entry needs its positive id") }
        try fs.client.commit([.set(document(entry), precondition: .exists(false))])
    }

    package func entries(_ filter: AuditFilter) throws(AuthError) -> [AuditEntry] {
        let limit = min(max(filter.limit, 1), 1000)
        var q = FirestoreQuery(collectionId: Self.audit, orderBy: [("id", filter.newestFirst)])
        for (field, value) in [("organizationId", filter.organizationId), ("actorUserId", filter.actorUserId),
                               ("recordId", filter.recordId), ("outcome", filter.outcome)] {
            if let value { q.equal.append((field, .string(value))) }
        }
        if let action = filter.action {
            if action.hasSuffix(".") { q.arrayContains = [("actionPrefixes", .string(action))] } else { q.equal.append(("action", .string(action))) }
        }
        // The time range is a second range field: checked here while paging by id, not by Firestore.
        let timeFiltered = filter.since != nil || filter.until != nil
        q.limit = timeFiltered ? max(limit, 200) : limit
        var after = filter.afterId, before = filter.beforeId
        var found: [AuditEntry] = []
        while true {
            q.range = []
            if let after { q.range.append(("id", .greaterThan, .integer(after))) }
            if let before { q.range.append(("id", .lessThan, .integer(before))) }
            let page = try fs.query(q, "read audit log")
            for doc in page {
                let entry = try Self.entry(from: doc)
                if filter.matches(entry) { found.append(entry) }
                if found.count == limit { return found }
            }
            guard page.count == q.limit, let last = page.last else { return found }
            let lastId = try StoredFields(last, "audit entry").integer("id")
            if filter.newestFirst { before = lastId } else { after = lastId }
        }
    }

    package func checkReady() throws(AuthError) { try fs.checkReady(Self.audit) }

    // MARK: - Mapping

    /// The document name of entry `id`: 19 digits, so names sort as ids.
    func name(_ id: Int64) -> String { fs.client.name(Self.audit, String(format: "%019lld", id)) }

    /// Every prefix of `action` that ends in "." ("a.b.c" -> "a.", "a.b."; "a.b." -> "a.", "a.b.").
    static func actionPrefixes(_ action: String) -> [String] {
        let bytes = Array(action.utf8)
        return bytes.indices.filter { bytes[$0] == UInt8(ascii: ".") }.map { String(decoding: bytes[...$0], as: UTF8.self) }
    }

    func document(_ entry: AuditEntry) -> FirestoreDocument {
        let id = entry.id ?? 0
        var fields: [String: FirestoreValue] = [
            "id": .integer(id), "time": .timestamp(entry.time), "action": .string(entry.action),
            "actionPrefixes": .array(Self.actionPrefixes(entry.action).map(FirestoreValue.string)),
            "address": .string(entry.address), "outcome": .string(entry.outcome),
        ]
        fields.set("actorUserId", entry.actorUserId.map(FirestoreValue.string))
        fields.set("actorUsername", entry.actorUsername.map(FirestoreValue.string))
        fields.set("organizationId", entry.organizationId.map(FirestoreValue.string))
        fields.set("recordId", entry.recordId.map(FirestoreValue.string))
        return FirestoreDocument(name: name(id), fields: fields)
    }

    static func entry(from doc: FirestoreDocument) throws(AuthError) -> AuditEntry {
        let f = StoredFields(doc, "audit entry")
        var entry = AuditEntry(
            time: try f.date("time"), actorUserId: try f.optionalString("actorUserId"),
            actorUsername: try f.optionalString("actorUsername"), organizationId: try f.optionalString("organizationId"),
            action: try f.string("action"), recordId: try f.optionalString("recordId"), address: try f.string("address"),
            outcome: try f.string("outcome"))
        entry.id = try f.integer("id")
        return entry
    }
}
