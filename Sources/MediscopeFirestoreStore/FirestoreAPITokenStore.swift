import Foundation
import MediscopeAuth
import MediscopeFirestore

/// `APITokenStore` in Firestore, for several hosts sharing one database.
///
/// Data model (docs/firestore.md): `apiTokens/{tokenHash}` (the SHA-256 hex of the whole "msk_..."
/// token, never the token) holds `id`, `userId`, `name`, `createdAt`, `lastUsedAt`, `revokedAt`
/// (timestamps; absent while unset) and `writeId`; `apiTokenIds/{id}` -> `{tokenHash}` keeps ids
/// unique (see `FirestoreHashedRecords`). `revoke`, `revokeAll` (one token at a time) and `touch` are
/// optimistic read-modify-writes.
package final class FirestoreAPITokenStore: APITokenStore {
    /// Token documents, by token hash.
    package static let apiTokens = "apiTokens"
    /// Guard documents, by token id: `{tokenHash}`.
    package static let apiTokenIds = "apiTokenIds"

    let records: FirestoreHashedRecords<APIToken>

    /// The API tokens of the database `client` reaches.
    package init(client: FirestoreClient) {
        records = FirestoreHashedRecords(client: client, Self.apiTokens, ids: Self.apiTokenIds, decode: Self.token(from:))
    }

    package func insert(_ token: APIToken, tokenHash: String) throws(AuthError) {
        var fields: [String: FirestoreValue] = [
            "id": .string(token.id), "userId": .string(token.userId), "name": .string(token.name),
            "createdAt": .timestamp(token.createdAt),
        ]
        fields.set("lastUsedAt", token.lastUsedAt.map(FirestoreValue.timestamp))
        fields.set("revokedAt", token.revokedAt.map(FirestoreValue.timestamp))
        try records.insert(id: token.id, tokenHash: tokenHash, fields: fields, "create token")
    }

    package func token(tokenHash: String) throws(AuthError) -> APIToken? {
        try records.find(tokenHash: tokenHash, "read token")
    }

    package func tokens(userId: String) throws(AuthError) -> [APIToken] {
        let docs = try records.all(FirestoreQuery(collectionId: Self.apiTokens, equal: [("userId", .string(userId))]), "list tokens")
        var keyed: [(token: APIToken, created: String)] = []
        for doc in docs { keyed.append((try Self.token(from: doc), Self.sortableTime(doc.createTime))) }
        // Insertion order breaks ties: the document's createTime, Firestore's own commit time.
        return keyed.sorted { ($0.token.createdAt, $0.created) < ($1.token.createdAt, $1.created) }.map(\.token)
    }

    @discardableResult
    package func revoke(tokenId: String, userId: String, at: Date) throws(AuthError) -> Bool {
        try records.update(id: tokenId, "revoke token") { doc throws(AuthError) in
            let token = try Self.token(from: doc)
            guard token.userId == userId, token.revokedAt == nil else { return nil }
            var fields = doc.fields
            fields["revokedAt"] = .timestamp(at)
            return fields
        }
    }

    /// Revokes each token of the user found by one query, one optimistic commit each (a token touched
    /// meanwhile is read again; one revoked meanwhile keeps its first time and is not counted).
    @discardableResult
    package func revokeAll(userId: String, at: Date) throws(AuthError) -> Int {
        let docs = try records.all(FirestoreQuery(collectionId: Self.apiTokens, equal: [("userId", .string(userId))]), "revoke tokens")
        var revoked = 0
        for doc in docs {
            let token = try Self.token(from: doc)
            guard token.revokedAt == nil else { continue }
            if try revoke(tokenId: token.id, userId: userId, at: at) { revoked += 1 }
        }
        return revoked
    }

    @discardableResult
    package func touch(tokenId: String, lastUsedAt: Date) throws(AuthError) -> Bool {
        try records.moveForward("lastUsedAt", id: tokenId, to: lastUsedAt, "touch token")
    }

    package func checkReady() throws(AuthError) { try records.fs.checkReady(Self.apiTokens) }

    /// An RFC 3339 time as Firestore writes it ("…:SS[.fraction]Z", 0 to 9 fraction digits) with the
    /// fraction padded to 9 digits, so that the texts sort as the times do.
    static func sortableTime(_ time: String?) -> String {
        guard let time, time.utf8.count >= 20 else { return "" }
        let seconds = time.prefix(19)
        var fraction = time.dropFirst(19).filter(\.isNumber)
        fraction += String(repeating: "0", count: max(0, 9 - fraction.count))
        return seconds + "." + fraction + "Z"
    }

    @Sendable static func token(from doc: FirestoreDocument) throws(AuthError) -> APIToken {
        let f = StoredFields(doc, "token")
        return APIToken(id: try f.string("id"), userId: try f.string("userId"), name: try f.string("name"),
                        createdAt: try f.date("createdAt"), lastUsedAt: try f.optionalDate("lastUsedAt"),
                        revokedAt: try f.optionalDate("revokedAt"))
    }
}
