import Foundation

/// One version of an analysis's plain-language report. Versions are never changed or removed (until
/// the analysis is deleted); the newest one is the report. Holds patient-related text: same access
/// rules as the analysis, never logged, never sent anywhere.
public struct ReportVersion: Codable, Sendable, Equatable {
    /// A draft may be edited and signed; a signed version is final (an amendment is a new signed version).
    public enum Status: String, Codable, Sendable { case draft, signed }
    /// Who wrote the text: the LLM, the template fallback, or a clinician (an edit, a signature, an amendment).
    public enum Origin: String, Codable, Sendable { case llm, template, clinician }

    public var analysisId: String
    public var organizationId: String
    /// 1 for the first draft, then one more per version.
    public var number: Int
    public var status: Status
    public var text: String
    public var origin: Origin
    /// `llm`: the model id the server reported.
    public var model: String?
    /// `template`: why no LLM text was used ("no LLM is configured", "the LLM failed: timeout").
    public var reason: String?
    /// `clinician`: the user's id and name as shown when they wrote or signed it.
    public var authorId: String?
    public var authorName: String?
    /// When this version was stored (millisecond precision).
    public var createdAt: Date

    public init(analysisId: String, organizationId: String, number: Int, status: Status, text: String, origin: Origin,
                model: String? = nil, reason: String? = nil, authorId: String? = nil, authorName: String? = nil, createdAt: Date) {
        self.analysisId = analysisId; self.organizationId = organizationId; self.number = number; self.status = status
        self.text = text; self.origin = origin; self.model = model; self.reason = reason; self.authorId = authorId
        self.authorName = authorName; self.createdAt = createdAt
    }
}

/// The versions of every analysis's report: append-only, numbered per analysis.
///
/// The contract, checked for every backend by Tests/MediscopeStoreTests/ReportStoreContractTests.swift:
/// - `append` stores a version whose `number` is one more than the newest stored (1 for the first);
///   a version with that number stored already (another worker or host wrote first) is `.conflict`, a
///   gap is `.invalidRecord`, and nothing is written. Durable when it returns.
/// - `versions` returns the analysis's versions oldest first, only to its organisation (another
///   organisation's id reads as none).
/// - `deleteAll` removes every version of the analysis (with the analysis itself).
public protocol ReportStore: Sendable {
    func append(_ version: ReportVersion) throws(StoreError)
    func versions(analysisId: String, organizationId: String) throws(StoreError) -> [ReportVersion]
    func deleteAll(analysisId: String, organizationId: String) throws(StoreError)
}
