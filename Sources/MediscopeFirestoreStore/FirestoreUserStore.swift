import Foundation
import MediscopeAuth
import MediscopeFirestore

/// `UserStore` in Firestore, for several hosts sharing one database.
///
/// Data model (docs/firestore.md; keys escaped by `FirestoreAccounts.documentID`):
/// - `users/{id}`: `id`, `username`, `displayName`, `role`, `organizationId`, `disabled`, `createdAt`
///   (timestamp), `firebaseUID`, `passwordHash` (argon2id PHC string), `writeId`; nil fields are absent.
/// - `usernames/{username}` and `firebaseUids/{uid}`: `{userId}`, uniqueness guards created with
///   `exists: false` in the same commit as the user (or the link), so two hosts can never both take a
///   name or a uid.
/// - `organizations/{id}`: `{name}`.
///
/// `insert` and `update` are optimistic read-modify-writes (see `FirestoreAccounts`): an organisation
/// that `insert` finds missing is created with `exists: false`, so a name saved meanwhile is kept.
package final class FirestoreUserStore: UserStore {
    /// Collection of user documents, by user id.
    package static let users = "users"
    /// Guard documents, by username: `{userId}`.
    package static let usernames = "usernames"
    /// Guard documents, by Firebase uid: `{userId}`.
    package static let firebaseUids = "firebaseUids"
    /// Organisation documents, by id: `{name}`.
    package static let organizations = "organizations"

    let fs: FirestoreAccounts

    /// The users of the database `client` reaches.
    package init(client: FirestoreClient) { fs = FirestoreAccounts(client: client) }

    package func saveOrganization(id: String, name: String) throws(AuthError) {
        // A plain set: the last rename wins, as with SQLite's upsert.
        let doc = FirestoreDocument(name: fs.name(Self.organizations, id), fields: ["name": .string(name)])
        try fs.call("save organisation") { () throws(FirestoreError) in try fs.client.commit([.set(doc)]) }
    }

    /// Creates the organisation only when none has this id (`exists: false`), never renaming one:
    /// true when this call created it, false when it existed. For copying a deployment
    /// (`mediscope store migrate`), which must not overwrite what Firestore holds.
    package func insertOrganization(id: String, name: String) throws(AuthError) -> Bool {
        let doc = FirestoreDocument(name: fs.name(Self.organizations, id), fields: ["name": .string(name)])
        return try fs.commit([.set(doc, precondition: .exists(false))], "add organisation")
    }

    package func organizationName(id: String) throws(AuthError) -> String? {
        guard let doc = try fs.get(fs.name(Self.organizations, id), "read organisation") else { return nil }
        return try StoredFields(doc, "organisation").string("name")
    }

    package func insert(_ user: User, passwordHash: String?) throws(AuthError) {
        let userName = fs.name(Self.users, user.id), orgName = fs.name(Self.organizations, user.organizationId)
        var guards = [guardDocument(Self.usernames, user.username, userId: user.id)]
        if let uid = user.firebaseUID { guards.append(guardDocument(Self.firebaseUids, uid, userId: user.id)) }
        let (doc, writeId) = FirestoreAccounts.withWriteId(document(user, passwordHash: passwordHash))
        try fs.retrying("add user") { () throws(AuthError) -> Void? in
            let found = try fs.batchGet([userName, orgName] + guards.map(\.name), "add user")
            if let stored = found[userName] {
                if fs.isOwnWrite(stored, writeId) { return () }
                throw AuthError(.conflict, "user id is taken")
            }
            if found[guards[0].name] != nil { throw AuthError(.conflict, "username is taken") }
            if guards.count > 1, found[guards[1].name] != nil { throw AuthError(.conflict, "Firebase account is linked to another user") }
            var writes: [FirestoreWrite] = ([doc] + guards).map { .set($0, precondition: .exists(false)) }
            if found[orgName] == nil {
                // Never overwrites: a name saved by another host in the meantime fails this and we read again.
                writes.append(.set(FirestoreDocument(name: orgName, fields: ["name": .string(user.organizationId)]),
                                   precondition: .exists(false)))
            }
            return try fs.commit(writes, "add user") ? () : nil
        }
    }

    package func user(id: String) throws(AuthError) -> User? {
        try fs.get(fs.name(Self.users, id), "read user").map(Self.user(from:))
    }

    package func user(username: String) throws(AuthError) -> User? {
        try findOne("username", username).map(Self.user(from:))
    }

    package func user(firebaseUID: String) throws(AuthError) -> User? {
        try findOne("firebaseUID", firebaseUID).map(Self.user(from:))
    }

    package func credentials(username: String) throws(AuthError) -> (user: User, passwordHash: String?)? {
        guard let doc = try findOne("username", username) else { return nil }
        return (try Self.user(from: doc), try StoredFields(doc, "user").optionalString("passwordHash"))
    }

    package func users(organizationId: String?) throws(AuthError) -> [User] {
        var q = FirestoreQuery(collectionId: Self.users, orderBy: [("username", false)])
        if let organizationId { q.equal = [("organizationId", .string(organizationId))] }
        return try fs.query(q, "list users").map { doc throws(AuthError) in try Self.user(from: doc) }
    }

    package func userCount() throws(AuthError) -> Int {
        try fs.call("count users") { () throws(FirestoreError) in try fs.client.count(FirestoreQuery(collectionId: Self.users)) }
    }

    @discardableResult
    package func update(userId: String, _ change: UserChange) throws(AuthError) -> User {
        let name = fs.name(Self.users, userId)
        return try fs.retrying("update user") { () throws(AuthError) -> User? in
            guard let doc = try fs.get(name, "update user") else { throw AuthError(.notFound, "no such user") }
            guard let updateTime = doc.updateTime else { throw AuthError(.unavailable, "Firestore gave no update time") }
            let current = try Self.user(from: doc)
            var fields = doc.fields
            var guardDoc: FirestoreDocument?
            switch change {
            case .passwordHash(let hash): fields["passwordHash"] = .string(hash)
            case .disabled(let disabled): fields["disabled"] = .boolean(disabled)
            case .role(let role): fields["role"] = .string(role.rawValue)
            case .firebaseUID(let uid):
                if current.firebaseUID == uid { return current }
                if current.firebaseUID != nil { throw AuthError(.conflict, "user is linked to another Firebase account") }
                let link = guardDocument(Self.firebaseUids, uid, userId: userId)
                if try fs.get(link.name, "update user") != nil { throw AuthError(.conflict, "Firebase account is linked to another user") }
                fields["firebaseUID"] = .string(uid)
                guardDoc = link
            }
            if fields == doc.fields { return current }
            let updated = FirestoreDocument(name: name, fields: fields)
            var writes: [FirestoreWrite] = [.set(updated, precondition: .updateTime(updateTime))]
            if let guardDoc { writes.append(.set(guardDoc, precondition: .exists(false))) }
            return try fs.commit(writes, "update user") ? try Self.user(from: updated) : nil
        }
    }

    package func checkReady() throws(AuthError) { try fs.checkReady(Self.users) }

    // MARK: - Mapping

    private func findOne(_ field: String, _ value: String) throws(AuthError) -> FirestoreDocument? {
        try fs.query(FirestoreQuery(collectionId: Self.users, equal: [(field, .string(value))], limit: 1), "read user").first
    }

    private func guardDocument(_ collection: String, _ key: String, userId: String) -> FirestoreDocument {
        FirestoreDocument(name: fs.name(collection, key), fields: ["userId": .string(userId)])
    }

    func document(_ user: User, passwordHash: String?) -> FirestoreDocument {
        var fields: [String: FirestoreValue] = [
            "id": .string(user.id), "username": .string(user.username), "role": .string(user.role.rawValue),
            "organizationId": .string(user.organizationId), "disabled": .boolean(user.disabled),
            "createdAt": .timestamp(user.createdAt),
        ]
        fields.set("displayName", user.displayName.map(FirestoreValue.string))
        fields.set("firebaseUID", user.firebaseUID.map(FirestoreValue.string))
        fields.set("passwordHash", passwordHash.map(FirestoreValue.string))
        return FirestoreDocument(name: fs.name(Self.users, user.id), fields: fields)
    }

    static func user(from doc: FirestoreDocument) throws(AuthError) -> User {
        let f = StoredFields(doc, "user")
        guard let role = Role(rawValue: try f.string("role")) else { throw AuthError(.unavailable, "stored user has an unknown role") }
        return User(id: try f.string("id"), username: try f.string("username"), displayName: try f.optionalString("displayName"), role: role,
                    organizationId: try f.string("organizationId"), disabled: try f.bool("disabled"),
                    createdAt: try f.date("createdAt"), firebaseUID: try f.optionalString("firebaseUID"))
    }
}
