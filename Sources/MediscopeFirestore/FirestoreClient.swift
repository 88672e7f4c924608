import Foundation
import MediscopeNet

/// One write of a `:commit`: set a whole document or delete one, with an optional precondition.
package enum FirestoreWrite: Sendable, Equatable {
    /// Replaces the document's fields (no update mask).
    case set(FirestoreDocument, precondition: FirestorePrecondition? = nil)
    case delete(name: String, precondition: FirestorePrecondition? = nil)
}

/// `currentDocument` of a write: the write fails (ALREADY_EXISTS, NOT_FOUND or FAILED_PRECONDITION)
/// unless it holds.
package enum FirestorePrecondition: Sendable, Equatable {
    /// `exists: false` makes a create that a retry after an unknown outcome cannot repeat.
    case exists(Bool)
    /// The document's `updateTime` must still be this (RFC 3339).
    case updateTime(String)
}

/// A structured query on one collection: equality, array-contains and range filters, an order, a limit,
/// a start-after cursor.
package struct FirestoreQuery: Sendable, Equatable {
    /// A range comparison of a `FieldFilter` (google.firestore.v1 `FieldFilter.Operator` names).
    package enum Comparison: String, Sendable {
        case lessThan = "LESS_THAN", lessThanOrEqual = "LESS_THAN_OR_EQUAL"
        case greaterThan = "GREATER_THAN", greaterThanOrEqual = "GREATER_THAN_OR_EQUAL"
    }

    package var collectionId: String
    /// Field path -> value; all must be equal (AND).
    package var equal: [(String, FirestoreValue)]
    /// Field path -> value an array field must contain (ARRAY_CONTAINS), ANDed with `equal`.
    package var arrayContains: [(String, FirestoreValue)] = []
    /// Field path, comparison, value; ANDed with the rest. Firestore wants the first `orderBy` on the
    /// compared field, and a range on a second field needs a composite index.
    package var range: [(field: String, comparison: Comparison, value: FirestoreValue)] = []
    /// Field paths with their direction; `__name__` breaks ties when listed last.
    package var orderBy: [(field: String, descending: Bool)]
    package var limit: Int?
    /// Values of the `orderBy` fields of the last document seen; results start after it.
    package var startAfter: [FirestoreValue]?

    package init(collectionId: String, equal: [(String, FirestoreValue)] = [], orderBy: [(field: String, descending: Bool)] = [],
                limit: Int? = nil, startAfter: [FirestoreValue]? = nil) {
        self.collectionId = collectionId; self.equal = equal; self.orderBy = orderBy; self.limit = limit
        self.startAfter = startAfter
    }

    package static func == (a: FirestoreQuery, b: FirestoreQuery) -> Bool {
        a.collectionId == b.collectionId && a.limit == b.limit && a.startAfter == b.startAfter
            && a.equal.map(\.0) == b.equal.map(\.0) && a.equal.map(\.1) == b.equal.map(\.1)
            && a.arrayContains.map(\.0) == b.arrayContains.map(\.0) && a.arrayContains.map(\.1) == b.arrayContains.map(\.1)
            && a.range.map(\.field) == b.range.map(\.field) && a.range.map(\.comparison) == b.range.map(\.comparison)
            && a.range.map(\.value) == b.range.map(\.value)
            && a.orderBy.map(\.field) == b.orderBy.map(\.field) && a.orderBy.map(\.descending) == b.orderBy.map(\.descending)
    }
}

/// Where and how to reach Firestore.
package struct FirestoreConfiguration: Sendable {
    package var projectId: String
    package var databaseId = "(default)"
    /// `https://firestore.googleapis.com/v1/`, or `http://HOST:PORT/v1/` for the emulator.
    package var baseURL: URL
    /// Per attempt: connect and whole-call timeouts, seconds.
    package var connectTimeout = 3.0
    package var callTimeout = 15.0
    /// Attempts of one call (first try included) and the back-off between them (seconds, doubled,
    /// capped, with full jitter).
    package var maxAttempts = 5
    package var initialBackoff = 0.2
    package var maxBackoff = 5.0
    /// Largest response accepted (a batchGet of image documents is several MiB).
    package var maxResponseBytes = 32 << 20

    package init(projectId: String, baseURL: URL) { self.projectId = projectId; self.baseURL = baseURL }

    /// Google's endpoint, or the emulator when `FIRESTORE_EMULATOR_HOST` (host:port) is set, exactly
    /// as Google's client libraries read it (plain HTTP).
    package static func fromEnvironment(projectId: String, environment: [String: String] = ProcessInfo.processInfo.environment)
        -> (FirestoreConfiguration, emulator: Bool) {
        if let host = environment["FIRESTORE_EMULATOR_HOST"], !host.isEmpty, let url = URL(string: "http://\(host)/v1/") {
            return (FirestoreConfiguration(projectId: projectId, baseURL: url), true)
        }
        return (FirestoreConfiguration(projectId: projectId, baseURL: URL(string: "https://firestore.googleapis.com/v1/")!), false)
    }
}

/// Google Cloud Firestore's REST API v1 over libcurl: `:commit`, `:batchGet`, `:runQuery`.
///
/// Every call retries what `FirestoreError.isRetryable` allows, with capped, jittered back-off; an
/// UNAUTHENTICATED answer refreshes the access token once. Blocking: call it from the jobs or
/// delivery side, never from an inference worker's request path.
package final class FirestoreClient: Sendable {
    package let configuration: FirestoreConfiguration
    let credentials: AccessTokenProvider
    /// Test seam: how to wait between attempts.
    let sleep: @Sendable (Double) -> Void

    package init(configuration: FirestoreConfiguration, credentials: AccessTokenProvider,
                sleep: @escaping @Sendable (Double) -> Void = { Thread.sleep(forTimeInterval: $0) }) {
        self.configuration = configuration
        self.credentials = credentials
        self.sleep = sleep
    }

    /// `projects/P/databases/D/documents`: the parent of top-level collections.
    package var documentsRoot: String { "projects/\(configuration.projectId)/databases/\(configuration.databaseId)/documents" }

    /// The resource name of document `id` in top-level `collection`.
    package func name(_ collection: String, _ id: String) -> String { "\(documentsRoot)/\(collection)/\(id)" }

    /// Applies `writes` atomically. Returns the commit time (RFC 3339).
    @discardableResult
    package func commit(_ writes: [FirestoreWrite]) throws(FirestoreError) -> String {
        struct Body: Encodable { var writes: [WriteBody] }
        struct Response: Decodable { var commitTime: String? }
        let response: Response = try call("\(documentsRoot):commit", Body(writes: writes.map(WriteBody.init)))
        return response.commitTime ?? ""
    }

    /// The documents that exist among `names`, by name (missing ones are absent from the result).
    package func batchGet(_ names: [String]) throws(FirestoreError) -> [String: FirestoreDocument] {
        guard !names.isEmpty else { return [:] }
        struct Body: Encodable { var documents: [String] }
        struct Item: Decodable { var found: FirestoreDocument?; var missing: String? }
        let items: [Item] = try call("\(documentsRoot):batchGet", Body(documents: names))
        var found: [String: FirestoreDocument] = [:]
        for item in items { if let doc = item.found { found[doc.name] = doc } }
        return found
    }

    /// One document, or nil when it does not exist.
    package func get(_ name: String) throws(FirestoreError) -> FirestoreDocument? { try batchGet([name])[name] }

    /// The query's documents, in its order.
    package func runQuery(_ query: FirestoreQuery) throws(FirestoreError) -> [FirestoreDocument] {
        struct Item: Decodable { var document: FirestoreDocument? }
        let items: [Item] = try call("\(documentsRoot):runQuery", ["structuredQuery": QueryBody(query)])
        return items.compactMap(\.document)
    }

    /// How many documents match `query` (its order, limit and cursor apply), counted by Firestore with a
    /// COUNT aggregation (`:runAggregationQuery`) so no document is sent.
    package func count(_ query: FirestoreQuery) throws(FirestoreError) -> Int {
        struct Count: Encodable {}
        struct Aggregation: Encodable { var alias = "n"; var count = Count() }
        struct Aggregate: Encodable { var structuredQuery: QueryBody; var aggregations = [Aggregation()] }
        struct Item: Decodable { struct Result: Decodable { var aggregateFields: [String: FirestoreValue]? }; var result: Result? }
        let items: [Item] = try call("\(documentsRoot):runAggregationQuery",
                                     ["structuredAggregationQuery": Aggregate(structuredQuery: QueryBody(query))])
        guard case .integer(let n)? = items.lazy.compactMap({ $0.result?.aggregateFields?["n"] }).first, n >= 0 else {
            throw FirestoreError(.internalError, httpStatus: 200, "the count aggregation answered no count")
        }
        return Int(n)
    }

    // MARK: - Transport

    func call<Body: Encodable, Result: Decodable>(_ path: String, _ body: Body) throws(FirestoreError) -> Result {
        let encoded: [UInt8]
        do { encoded = Array(try JSONEncoder().encode(body)) } catch {
            throw FirestoreError(.invalidArgument, "the request cannot be encoded: \(error)")
        }
        var refreshed = false, refreshNow = false
        var attempt = 0
        var backoff = configuration.initialBackoff
        while true {
            attempt += 1
            do throws(FirestoreError) {
                defer { refreshNow = false }
                let bytes = try once(path, encoded, forceRefresh: refreshNow)
                do { return try JSONDecoder().decode(Result.self, from: Data(bytes)) } catch {
                    throw FirestoreError(.internalError, httpStatus: 200, "the response cannot be read: \(error)")
                }
            } catch {
                if error.status == .unauthenticated, !refreshed {
                    refreshed = true
                    refreshNow = true
                    continue
                }
                guard error.isRetryable, attempt < configuration.maxAttempts else { throw error }
                sleep(Double.random(in: 0...min(backoff, configuration.maxBackoff)))
                backoff = min(backoff * 2, configuration.maxBackoff)
            }
        }
    }

    private func once(_ path: String, _ body: [UInt8], forceRefresh: Bool) throws(FirestoreError) -> [UInt8] {
        let token = try credentials.accessToken(forceRefresh: forceRefresh)
        guard let url = URL(string: path, relativeTo: configuration.baseURL) else {
            throw FirestoreError(.invalidArgument, "bad resource path")
        }
        let request = HTTPClientRequest(
            method: "POST", url: url,
            headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")],
            body: body, timeout: configuration.callTimeout, connectTimeout: configuration.connectTimeout,
            maxResponseBytes: configuration.maxResponseBytes)
        let response: HTTPClientResponse
        do { response = try CurlHTTP.perform(request) } catch {
            if error.isTooLarge { throw FirestoreError(.resourceExhausted, "the response is larger than \(configuration.maxResponseBytes) bytes") }
            let timedOut = error.message.lowercased().contains("timed out")
            throw FirestoreError(timedOut ? .deadlineExceeded : .unavailable, error.message)
        }
        guard (200..<300).contains(response.status) else { throw Self.error(from: response) }
        return response.body
    }

    static func error(from response: HTTPClientResponse) -> FirestoreError {
        struct Body: Decodable { struct Detail: Decodable { var message: String?; var status: String? }; var error: Detail? }
        // The emulator and Google answer `[{"error": ...}]` for streamed methods, `{"error": ...}` otherwise.
        let data = Data(response.body)
        let detail = (try? JSONDecoder().decode(Body.self, from: data))?.error
            ?? (try? JSONDecoder().decode([Body].self, from: data))?.first?.error
        let status = detail?.status.flatMap(FirestoreError.Status.init(rawValue:)) ?? FirestoreError.status(forHTTP: response.status)
        let message = detail?.message ?? String(decoding: response.body.prefix(200), as: UTF8.self)
        return FirestoreError(status, httpStatus: response.status, message)
    }
}

// MARK: - Wire bodies

struct WriteBody: Encodable {
    struct Precondition: Encodable { var exists: Bool?; var updateTime: String? }
    var update: FirestoreDocument?
    var delete: String?
    var currentDocument: Precondition?

    init(_ write: FirestoreWrite) {
        let precondition: FirestorePrecondition?
        switch write {
        case .set(let doc, let p):
            update = FirestoreDocument(name: doc.name, fields: doc.fields)
            precondition = p
        case .delete(let name, let p):
            delete = name
            precondition = p
        }
        switch precondition {
        case .exists(let e)?: currentDocument = Precondition(exists: e)
        case .updateTime(let t)?: currentDocument = Precondition(updateTime: t)
        case nil: currentDocument = nil
        }
    }
}

struct QueryBody: Encodable {
    struct FieldReference: Encodable { var fieldPath: String }
    struct FieldFilter: Encodable { var field: FieldReference; var op = "EQUAL"; var value: FirestoreValue }
    struct Filter: Encodable {
        struct Composite: Encodable { var op = "AND"; var filters: [Filter] }
        var fieldFilter: FieldFilter?
        var compositeFilter: Composite?
    }
    struct Order: Encodable { var field: FieldReference; var direction: String }
    struct Cursor: Encodable { var values: [FirestoreValue]; var before: Bool }
    struct Collection: Encodable { var collectionId: String }

    var from: [Collection]
    var `where`: Filter?
    var orderBy: [Order]?
    var startAt: Cursor?
    var limit: Int?

    init(_ q: FirestoreQuery) {
        from = [Collection(collectionId: q.collectionId)]
        let filters = q.equal.map { Filter(fieldFilter: FieldFilter(field: FieldReference(fieldPath: $0.0), value: $0.1)) }
            + q.arrayContains.map { Filter(fieldFilter: FieldFilter(field: FieldReference(fieldPath: $0.0), op: "ARRAY_CONTAINS", value: $0.1)) }
            + q.range.map { Filter(fieldFilter: FieldFilter(field: FieldReference(fieldPath: $0.field), op: $0.comparison.rawValue, value: $0.value)) }
        `where` = filters.count > 1 ? Filter(compositeFilter: .init(filters: filters)) : filters.first
        orderBy = q.orderBy.isEmpty ? nil : q.orderBy.map { Order(field: FieldReference(fieldPath: $0.field), direction: $0.descending ? "DESCENDING" : "ASCENDING") }
        startAt = q.startAfter.map { Cursor(values: $0, before: false) }
        limit = q.limit
    }
}
