import Foundation
import MediscopeAuth
import MediscopeEncoding
import MediscopeFirestore

extension AccountStores {
    /// All five account stores in the Firestore database `client` reaches, shared by every host that uses
    /// it (data model: docs/firestore.md). Wrap with `cachingReads()` to serve users and sessions
    /// from a short-lived cache. Queries need the composite indexes in deploy/firestore.indexes.json.
    package static func firestore(client: FirestoreClient) -> AccountStores {
        AccountStores(
            users: FirestoreUserStore(client: client), sessions: FirestoreSessionStore(client: client),
            apiTokens: FirestoreAPITokenStore(client: client), signInThrottle: FirestoreSignInThrottleStore(client: client),
            auditLog: FirestoreAuditLogStore(client: client))
    }
}

/// What the Firestore account stores share: document names, error mapping, guarded creates and
/// optimistic read-modify-write.
///
/// Read-modify-write is optimistic: read the documents, commit with an `updateTime` (or `exists`)
/// precondition on each one read, and start again from fresh reads when a precondition fails (another
/// host wrote first), at most `maxAttempts` times. A create carries a random `writeId` field, so that a
/// create whose commit landed but whose answer was lost (the client then retries and meets its own
/// document) is recognised as done rather than reported as a conflict.
struct FirestoreAccounts: Sendable {
    let client: FirestoreClient

    /// Attempts of one read-modify-write before giving up with `.unavailable`.
    static let maxAttempts = 8
    /// Writes per commit (Firestore's limit is 500).
    static let maxWrites = 400
    /// Firestore's limit on a document id.
    static let maxDocumentIDBytes = 1500

    /// The name of the document for `key` in `collection` (`key` escaped by `documentID`).
    func name(_ collection: String, _ key: String) -> String { client.name(collection, Self.documentID(key)) }

    /// `key` as a document id, unchanged when it is one already: bytes outside `A-Z a-z 0-9 - . _ @ ~`
    /// become `%XX` (so `/` and `%` never appear raw), and the ids Firestore reserves ("." "..",
    /// `__…__`) get an escaped first character. Injective: decoding `%XX` gives `key` back.
    static func documentID(_ key: String) -> String {
        var out = ""
        for byte in key.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "@"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        if out.isEmpty || out == "." || out == ".." || (out.count >= 4 && out.hasPrefix("__") && out.hasSuffix("__")) {
            let first = out.utf8.first.map { String(format: "%%%02X", $0) } ?? ""
            return first + out.dropFirst()
        }
        return out
    }

    // MARK: - Calls

    /// Runs one Firestore call, mapping its failure.
    @discardableResult
    func call<T>(_ what: String, _ body: () throws(FirestoreError) -> T) throws(AuthError) -> T {
        do { return try body() } catch { throw Self.authError(error, what) }
    }

    /// The document, or nil when none has this name (or the id is longer than any Firestore keeps).
    func get(_ name: String, _ what: String) throws(AuthError) -> FirestoreDocument? {
        // An id from a request (a URL's user id) may be too long to be a document id: no such record.
        guard (name.split(separator: "/").last?.utf8.count ?? 0) <= Self.maxDocumentIDBytes else { return nil }
        return try call(what) { () throws(FirestoreError) in try client.get(name) }
    }

    func batchGet(_ names: [String], _ what: String) throws(AuthError) -> [String: FirestoreDocument] {
        try call(what) { () throws(FirestoreError) in try client.batchGet(names) }
    }

    func query(_ query: FirestoreQuery, _ what: String) throws(AuthError) -> [FirestoreDocument] {
        try call(what) { () throws(FirestoreError) in try client.runQuery(query) }
    }

    /// Commits `writes`; false when one of their preconditions failed (another host wrote first).
    func commit(_ writes: [FirestoreWrite], _ what: String) throws(AuthError) -> Bool {
        do {
            try client.commit(writes)
            return true
        } catch {
            switch error.status {
            case .alreadyExists, .failedPrecondition, .notFound: return false
            default: throw Self.authError(error, what)
            }
        }
    }

    /// Runs `attempt` until it returns a value; nil means "a precondition failed: read again".
    func retrying<T>(_ what: String, _ attempt: () throws(AuthError) -> T?) throws(AuthError) -> T {
        var rng = SystemRandomNumberGenerator()
        for n in 0..<Self.maxAttempts {
            if let result = try attempt() { return result }
            // A short jittered pause, so two hosts that collided do not collide again in step.
            usleep(UInt32.random(in: 0...(2_000 << UInt32(min(n, 6))), using: &rng))
        }
        throw AuthError(.unavailable, "\(what): the record kept changing; try again")
    }

    /// Creates `primary` and `guards` in one commit, each only if absent.
    /// - Throws: `.conflict` when any of them exists already (and is not this call's own earlier commit).
    func create(_ primary: FirestoreDocument, guards: [FirestoreDocument], _ what: String) throws(AuthError) {
        let (doc, writeId) = Self.withWriteId(primary)
        if try commit(([doc] + guards).map { .set($0, precondition: .exists(false)) }, what) { return }
        if try isOwnWrite(get(primary.name, what), writeId) { return }
        throw AuthError(.conflict, "\(what): already taken")
    }

    /// `doc` with a fresh random `writeId` field, and that id.
    static func withWriteId(_ doc: FirestoreDocument) -> (FirestoreDocument, String) {
        var rng = SystemRandomNumberGenerator()
        let writeId = Hex.encode((0..<8).map { _ in UInt8.random(in: 0...UInt8.max, using: &rng) })
        var copy = doc
        copy.fields["writeId"] = .string(writeId)
        return (copy, writeId)
    }

    /// Whether `stored` is the document a create with `writeId` wrote.
    func isOwnWrite(_ stored: FirestoreDocument?, _ writeId: String) -> Bool {
        stored?.fields["writeId"] == .string(writeId)
    }

    /// Deletes the documents `names` in commits of at most `maxWrites` (absent ones are no error).
    func deleteAll(_ names: [String], _ what: String) throws(AuthError) {
        var start = 0
        while start < names.count {
            let chunk = names[start..<min(start + Self.maxWrites, names.count)]
            _ = try commit(chunk.map { .delete(name: $0) }, what)
            start += chunk.count
        }
    }

    /// Throws `.unavailable` unless Firestore answers a read now.
    func checkReady(_ collection: String) throws(AuthError) {
        _ = try get(client.name(collection, "readiness-probe"), "check \(collection)")
    }

    /// Firestore's status as an `AuthError`: transient and credential failures are `.unavailable` (the
    /// caller answers 503), ALREADY_EXISTS on a guarded create `.conflict`, a refused request `.invalid`.
    static func authError(_ error: FirestoreError, _ what: String) -> AuthError {
        switch error.status {
        case .unavailable, .deadlineExceeded, .resourceExhausted, .aborted, .unauthenticated, .internalError:
            AuthError(.unavailable, "\(what): Firestore \(error.status.rawValue)")
        case .alreadyExists:
            AuthError(.conflict, "\(what): already taken")
        case .notFound:
            // A document read or written by id is handled before this; NOT_FOUND here means the database
            // or project itself is wrong or gone: the backend is unusable, not the caller's request.
            AuthError(.unavailable, "\(what): Firestore \(error.status.rawValue)")
        case .invalidArgument, .outOfRange:
            AuthError(.invalid, "\(what): Firestore refused the request: \(error.status.rawValue)")
        default:
            AuthError(.unavailable, "\(what): Firestore \(error.status.rawValue)")
        }
    }
}

/// A stored document's fields, read with a typed error naming the document and field.
struct StoredFields {
    let doc: FirestoreDocument
    let kind: String

    init(_ doc: FirestoreDocument, _ kind: String) { self.doc = doc; self.kind = kind }

    private func corrupt(_ field: String) -> AuthError {
        AuthError(.unavailable, "stored \(kind) \(doc.id) has no readable \(field)")
    }

    func string(_ field: String) throws(AuthError) -> String {
        guard case .string(let v)? = doc.fields[field] else { throw corrupt(field) }
        return v
    }

    /// nil when absent or null.
    func optionalString(_ field: String) throws(AuthError) -> String? {
        switch doc.fields[field] {
        case nil, .null?: return nil
        case .string(let v)?: return v
        default: throw corrupt(field)
        }
    }

    func bool(_ field: String) throws(AuthError) -> Bool {
        guard case .boolean(let v)? = doc.fields[field] else { throw corrupt(field) }
        return v
    }

    func integer(_ field: String) throws(AuthError) -> Int64 {
        guard case .integer(let v)? = doc.fields[field] else { throw corrupt(field) }
        return v
    }

    /// A timestamp, rounded to the millisecond as the stores promise.
    func date(_ field: String) throws(AuthError) -> Date {
        guard case .timestamp(let v)? = doc.fields[field] else { throw corrupt(field) }
        return v.roundedToMilliseconds
    }

    /// nil when absent or null.
    func optionalDate(_ field: String) throws(AuthError) -> Date? {
        switch doc.fields[field] {
        case nil, .null?: return nil
        case .timestamp(let v)?: return v.roundedToMilliseconds
        default: throw corrupt(field)
        }
    }
}

extension Dictionary where Key == String, Value == FirestoreValue {
    /// Sets `key` to `value` when it is non-nil (absent fields are how the stores write nil).
    mutating func set(_ key: String, _ value: FirestoreValue?) {
        if let value { self[key] = value }
    }
}
