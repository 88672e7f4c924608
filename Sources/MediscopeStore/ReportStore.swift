import Foundation

/// One version of an analysis's plain-language report. Versions are never changed; they are removed
/// only with their analysis, which cannot be deleted once a version is signed (`ReportStore.close`).
/// The newest one is the report. Holds patient-related text: same access
/// rules as the analysis, never logged, never sent anywhere.
package struct ReportVersion: Codable, Sendable, Equatable {
    /// A draft may be edited and signed; a signed version is final (an amendment is a new signed version).
    package enum Status: String, Codable, Sendable { case draft, signed }
    /// Who wrote the text: the LLM, the template fallback, or a clinician (an edit, a signature, an amendment).
    package enum Origin: String, Codable, Sendable { case llm, template, clinician }

    package var analysisId: String
    package var organizationId: String
    /// 1 for the first draft, then one more per version.
    package var number: Int
    package var status: Status
    package var text: String
    package var origin: Origin
    /// `llm`: the model id the server reported.
    package var model: String?
    /// `template`: why no LLM text was used ("no LLM is configured", "the LLM failed: timeout").
    package var reason: String?
    /// `clinician`: the user's id and name as shown when they wrote or signed it.
    package var authorId: String?
    package var authorName: String?
    /// When this version was stored (millisecond precision).
    package var createdAt: Date

    package init(analysisId: String, organizationId: String, number: Int, status: Status, text: String, origin: Origin,
                model: String? = nil, reason: String? = nil, authorId: String? = nil, authorName: String? = nil, createdAt: Date) {
        self.analysisId = analysisId; self.organizationId = organizationId; self.number = number; self.status = status
        self.text = text; self.origin = origin; self.model = model; self.reason = reason; self.authorId = authorId
        self.authorName = authorName; self.createdAt = createdAt
    }
}

/// What `ReportStore.close` did.
package enum ReportClosing: Sendable, Equatable {
    /// The report is closed (now or before): no version can be appended until it is reopened.
    case closed
    /// A version is signed: nothing changed. A signed report is kept, and its analysis with it.
    case signed
}

/// The versions of every analysis's report: append-only, numbered per analysis.
///
/// The contract, checked for every backend by Tests/MediscopeStoreTests/ReportStoreContractTests.swift:
/// - `append` stores a version whose `number` is one more than the newest stored (1 for the first);
///   a version with that number stored already (another worker or host wrote first) is `.conflict`, a
///   gap is `.invalidRecord`, and nothing is written. Durable when it returns. A closed report takes
///   no version (`.conflict`).
/// - `versions` returns the analysis's versions oldest first, only to its organisation (another
///   organisation's id reads as none).
/// - `close` is the first step of deleting an analysis: atomically with every `append`, it refuses
///   (`.signed`, nothing changes) when a version is signed, else closes the report, so that no draft,
///   edit or signature can land between the check and the deletion. Idempotent. The caller has checked
///   that the analysis is `organizationId`'s. `reopen` undoes it (the analysis could not be deleted).
/// - `deleteAll` removes every version of the analysis (with the analysis itself); the report stays
///   closed, so a draft written late (an LLM still answering) is refused.
package protocol ReportStore: Sendable {
    /// Appends `version` (see the contract above).
    func append(_ version: ReportVersion) throws(StoreError)
    /// The analysis's versions, oldest first; none for another organisation.
    func versions(analysisId: String, organizationId: String) throws(StoreError) -> [ReportVersion]
    /// Closes the report before its analysis is deleted, unless a version is signed (see above).
    func close(analysisId: String, organizationId: String) throws(StoreError) -> ReportClosing
    /// Lifts `close` (the analysis was not deleted after all); nothing when the report is not closed.
    func reopen(analysisId: String, organizationId: String) throws(StoreError)
    /// Removes every version of the analysis; a closed report stays closed.
    func deleteAll(analysisId: String, organizationId: String) throws(StoreError)
}
