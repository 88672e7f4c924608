import Foundation
import MediscopeAuth
import MediscopeFirestore

/// Records found by the SHA-256 of a secret (sessions, API tokens), what both stores share:
/// `{collection}/{tokenHash}` holds the record with its `id`, so the per-request lookup is one read;
/// `{idCollection}/{id}` -> `{tokenHash}` is created in the same commit with `exists: false`, which
/// keeps ids unique and finds a record by id. Both are deleted together.
struct FirestoreHashedRecords<Record>: Sendable {
    let fs: FirestoreAccounts
    let collection: String
    let idCollection: String
    let decode: @Sendable (FirestoreDocument) throws(AuthError) -> Record

    /// Records in `collection` of the database `client` reaches, with id guards in `idCollection`.
    init(client: FirestoreClient, _ collection: String, ids idCollection: String,
         decode: @escaping @Sendable (FirestoreDocument) throws(AuthError) -> Record) {
        fs = FirestoreAccounts(client: client)
        self.collection = collection
        self.idCollection = idCollection
        self.decode = decode
    }

    /// Stores the record `fields` (which hold its `id`) under `tokenHash`.
    /// - Throws: `.conflict` when a record has this id or hash already.
    func insert(id: String, tokenHash: String, fields: [String: FirestoreValue], _ what: String) throws(AuthError) {
        let idGuard = FirestoreDocument(name: fs.name(idCollection, id), fields: ["tokenHash": .string(tokenHash)])
        try fs.create(FirestoreDocument(name: fs.name(collection, tokenHash), fields: fields), guards: [idGuard], what)
    }

    /// The record stored under `tokenHash`, or nil.
    func find(tokenHash: String, _ what: String) throws(AuthError) -> Record? {
        try fs.get(fs.name(collection, tokenHash), what).map(decode)
    }

    /// The document of the record with `id`, or nil.
    func document(id: String, _ what: String) throws(AuthError) -> FirestoreDocument? {
        guard let idGuard = try fs.get(fs.name(idCollection, id), what),
              case .string(let hash)? = idGuard.fields["tokenHash"],
              let doc = try fs.get(fs.name(collection, hash), what), doc.fields["id"] == .string(id) else { return nil }
        return doc
    }

    /// Replaces the fields of the record with `id` by `change`'s answer (nil: leave it) when nothing
    /// wrote it since it was read, reading again otherwise. True when it was written.
    func update(id: String, _ what: String,
                _ change: (FirestoreDocument) throws(AuthError) -> [String: FirestoreValue]?) throws(AuthError) -> Bool {
        try fs.retrying(what) { () throws(AuthError) -> Bool? in
            guard let doc = try document(id: id, what), let fields = try change(doc) else { return false }
            guard let updateTime = doc.updateTime else { throw AuthError(.unavailable, "Firestore gave no update time") }
            return try fs.commit([.set(FirestoreDocument(name: doc.name, fields: fields), precondition: .updateTime(updateTime))], what)
                ? true : nil
        }
    }

    /// Sets the timestamp `field` of record `id` to `date` when it is unset or earlier. True when it changed.
    func moveForward(_ field: String, id: String, to date: Date, _ what: String) throws(AuthError) -> Bool {
        try update(id: id, what) { doc throws(AuthError) in
            if let current = try StoredFields(doc, collection).optionalDate(field), current >= date { return nil }
            var fields = doc.fields
            fields[field] = .timestamp(date)
            return fields
        }
    }

    /// Deletes the record `doc` and its id guard; with `unchanged`, only if nothing wrote it since it was
    /// read. True when this call deleted it.
    func delete(_ doc: FirestoreDocument, unchanged: Bool = false, _ what: String) throws(AuthError) -> Bool {
        let precondition: FirestorePrecondition = unchanged ? doc.updateTime.map { .updateTime($0) } ?? .exists(true) : .exists(true)
        var writes: [FirestoreWrite] = [.delete(name: doc.name, precondition: precondition)]
        if case .string(let id)? = doc.fields["id"] { writes.append(.delete(name: fs.name(idCollection, id))) }
        return try fs.commit(writes, what)
    }

    /// Every record document `query` finds, in pages ordered by `field` (when set: a range filter's
    /// field must come first) then by name; `query` holds the filter, its order, limit and cursor are set here.
    func all(_ query: FirestoreQuery, orderedBy field: String? = nil, _ what: String) throws(AuthError) -> [FirestoreDocument] {
        var q = query
        q.orderBy = (field.map { [($0, false)] } ?? []) + [("__name__", false)]
        q.limit = FirestoreAccounts.maxWrites
        var docs: [FirestoreDocument] = []
        while true {
            let page = try fs.query(q, what)
            docs += page
            guard page.count == q.limit, let last = page.last else { return docs }
            let value = field.map { last.fields[$0] ?? .null }
            q.startAfter = (value.map { [$0] } ?? []) + [.reference(last.name)]
        }
    }
}
