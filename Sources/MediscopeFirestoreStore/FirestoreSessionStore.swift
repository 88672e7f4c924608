import Foundation
import MediscopeAuth
import MediscopeFirestore

/// `SessionStore` in Firestore, for several hosts sharing one database.
///
/// Data model (docs/firestore.md): `sessions/{tokenHash}` (the SHA-256 hex of the cookie token,
/// never the token) holds `id`, `userId`, `createdAt`, `lastSeenAt`, `expiresAt` (timestamps),
/// `csrfHash` and `writeId`; `sessionIds/{id}` -> `{tokenHash}` keeps ids unique (see
/// `FirestoreHashedRecords`). `touch` is an optimistic read-modify-write that never moves `lastSeenAt`
/// back; `deleteExpired` deletes only sessions unchanged since its query read them.
package final class FirestoreSessionStore: SessionStore {
    /// Session documents, by token hash.
    package static let sessions = "sessions"
    /// Guard documents, by session id: `{tokenHash}`.
    package static let sessionIds = "sessionIds"

    let records: FirestoreHashedRecords<Session>

    /// The sessions of the database `client` reaches.
    package init(client: FirestoreClient) {
        records = FirestoreHashedRecords(client: client, Self.sessions, ids: Self.sessionIds, decode: Self.session(from:))
    }

    package func insert(_ session: Session, tokenHash: String) throws(AuthError) {
        try records.insert(id: session.id, tokenHash: tokenHash, fields: [
            "id": .string(session.id), "userId": .string(session.userId), "createdAt": .timestamp(session.createdAt),
            "lastSeenAt": .timestamp(session.lastSeenAt), "expiresAt": .timestamp(session.expiresAt),
            "csrfHash": .string(session.csrfHash),
        ], "create session")
    }

    package func session(tokenHash: String) throws(AuthError) -> Session? {
        try records.find(tokenHash: tokenHash, "read session")
    }

    @discardableResult
    package func touch(sessionId: String, lastSeenAt: Date) throws(AuthError) -> Bool {
        try records.moveForward("lastSeenAt", id: sessionId, to: lastSeenAt, "touch session")
    }

    @discardableResult
    package func delete(sessionId: String) throws(AuthError) -> Bool {
        guard let doc = try records.document(id: sessionId, "delete session") else { return false }
        return try records.delete(doc, "delete session")
    }

    @discardableResult
    package func delete(tokenHash: String) throws(AuthError) -> Bool {
        guard let doc = try records.fs.get(records.fs.name(Self.sessions, tokenHash), "delete session") else { return false }
        return try records.delete(doc, "delete session")
    }

    @discardableResult
    package func deleteAll(userId: String) throws(AuthError) -> Int {
        let docs = try records.all(FirestoreQuery(collectionId: Self.sessions, equal: [("userId", .string(userId))]), "delete sessions")
        return try deleteEach(docs, unchanged: false, "delete sessions")
    }

    @discardableResult
    package func deleteExpired(now: Date, idleCutoff: Date) throws(AuthError) -> Int {
        var deleted = 0
        // Two single-field range queries (no composite index); the second misses what the first deleted.
        for (field, cutoff) in [("expiresAt", now), ("lastSeenAt", idleCutoff)] {
            var q = FirestoreQuery(collectionId: Self.sessions)
            q.range = [(field, .lessThanOrEqual, .timestamp(cutoff))]
            // Unchanged only: a session touched since the query read it may no longer be idle.
            deleted += try deleteEach(try records.all(q, orderedBy: field, "delete expired sessions"), unchanged: true,
                                      "delete expired sessions")
        }
        return deleted
    }

    package func checkReady() throws(AuthError) { try records.fs.checkReady(Self.sessions) }

    /// Deletes each session (one commit each, so one that changed or vanished meanwhile is skipped alone).
    private func deleteEach(_ docs: [FirestoreDocument], unchanged: Bool, _ what: String) throws(AuthError) -> Int {
        var deleted = 0
        for doc in docs where try records.delete(doc, unchanged: unchanged, what) { deleted += 1 }
        return deleted
    }

    @Sendable static func session(from doc: FirestoreDocument) throws(AuthError) -> Session {
        let f = StoredFields(doc, "session")
        return Session(id: try f.string("id"), userId: try f.string("userId"), createdAt: try f.date("createdAt"),
                       lastSeenAt: try f.date("lastSeenAt"), expiresAt: try f.date("expiresAt"), csrfHash: try f.string("csrfHash"))
    }
}
