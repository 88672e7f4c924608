import Foundation
import MediscopeAuth
import MediscopeEncoding
import MediscopeJobs
import MediscopeLLM
import MediscopeServer
import MediscopeStore

/// A "reports-N" background process: takes report jobs from this host's queue and writes each draft
/// (version 1) from the LLM, or from the template when no LLM is configured or it keeps failing. An
/// LLM that takes 30 s, hangs or fails holds this process only, never an inference or io worker.
///
/// A job is claimed with a lease (the LLM's timeout plus a margin); a process that dies leaves it to
/// be claimed again. The draft is appended as version 1, which can exist only once, so a job run twice
/// completes once. 429 waits for `Retry-After`, 5xx and timeouts back off; after `maxAttempts` the
/// template is used and the reason kept with the draft.
final class ReportDraftWork: BackgroundWork {
    static let namePrefix = "reports-"
    let config: AppConfig
    let log: ServerLog
    private var opened: (queue: JobQueue, analyses: AnalysisStore, reports: ReportStore, audit: AuditLogStore, writing: ReportWriting)?

    init(config: AppConfig, log: ServerLog) {
        self.config = config
        self.log = log
    }

    func runOnce(_ context: BackgroundContext) -> Double {
        do {
            let parts = try open()
            let settings = config.reports
            let lease = (settings.llm?.timeout ?? 5) + 30
            guard let job = try parts.queue.claim(kind: ReportAPI.kind, owner: getpid(), lease: lease,
                                                  maxRunningPerOrganization: settings.maxRunningPerOrganization,
                                                  minSecondsBetweenStarts: settings.minSecondsBetweenStarts) else { return 0.25 }
            try draft(job, parts)
            return 0
        } catch {
            log.error("report_job_error", ["kind": .token(.init(OutboxDeliveryWork.kind(of: error)))])
            return 2
        }
    }

    private func open() throws -> (queue: JobQueue, analyses: AnalysisStore, reports: ReportStore, audit: AuditLogStore, writing: ReportWriting) {
        if let opened { return opened }
        let outbox = try config.openOutbox()
        let parts = (queue: try JobQueue(directory: URL(fileURLWithPath: config.storeDirectory)),
                     analyses: try config.analysisStore(outbox: outbox, .requests),
                     reports: try config.reportStore(.requests),
                     audit: try config.accountStores(.requests, outbox: outbox).auditLog,
                     writing: try ReportWriting(directory: URL(fileURLWithPath: config.templatesDirectory)))
        opened = parts
        return parts
    }

    private func draft(_ job: Job, _ parts: (queue: JobQueue, analyses: AnalysisStore, reports: ReportStore, audit: AuditLogStore,
                                             writing: ReportWriting)) throws {
        guard let record = try parts.analyses.get(id: job.key, organizationId: job.organizationId) else {
            // Deleted before its draft was written, or while an earlier run wrote it (that run's version goes).
            try parts.reports.deleteAll(analysisId: job.key, organizationId: job.organizationId)
            try parts.queue.finish(job, outcome: "gone")
            return
        }
        guard try parts.reports.versions(analysisId: record.id, organizationId: record.organizationId).isEmpty else {
            try parts.queue.finish(job, outcome: "exists")
            return
        }
        let facts = ReportFacts(record)
        var text: String, origin = ReportVersion.Origin.template, model: String?, reason: String?
        var tokens = (0, 0)
        if let llm = config.reports.llm {
            let started = Date()
            do {
                let completion = try ChatCompletionsClient(settings: llm).complete(parts.writing.messages(facts))
                text = Self.clean(completion.text)
                origin = .llm
                model = completion.model
                tokens = (completion.promptTokens, completion.completionTokens)
                log.info("report_drafted", ["analysis": .token(.init(record.id)), "source": .word("llm"),
                                            "seconds": .double(Date().timeIntervalSince(started)),
                                            "prompt_tokens": .int(tokens.0), "completion_tokens": .int(tokens.1)])
            } catch {
                log.warning("llm_failed", ["analysis": .token(.init(record.id)), "kind": .token(.init(error.kind.rawValue)),
                                           "status": .int(error.status), "attempt": .int(job.attempts)])
                if error.isRetryable, job.attempts < config.reports.maxAttempts {
                    let backoff = min(pow(2, Double(job.attempts)), 60)
                    try parts.queue.retry(job, at: Date().addingTimeInterval(error.retryAfter ?? backoff), error: error.description)
                    return
                }
                try parts.queue.countFailedAttempt()
                text = parts.writing.fallback(facts)
                reason = "the LLM failed (\(error.kind.rawValue)\(error.status > 0 ? ", HTTP \(error.status)" : ""))"
            }
        } else {
            text = parts.writing.fallback(facts)
            reason = "no LLM is configured"
        }
        if text.isEmpty {
            text = parts.writing.fallback(facts)
            origin = .template
            reason = "the LLM's reply had no usable text"
        }
        let version = ReportVersion(analysisId: record.id, organizationId: record.organizationId, number: 1, status: .draft,
                                    text: text, origin: origin, model: model, reason: reason, createdAt: Date().roundedToMilliseconds)
        try Self.appendOnce(version, to: parts.reports)
        // The analysis may have been deleted while the text was written (an LLM takes seconds, a retry
        // minutes): a draft of a deleted analysis is not kept. (A delete closes the report first, so a draft
        // arriving after it is refused; this catches one appended just before.)
        guard try parts.analyses.get(id: record.id, organizationId: record.organizationId) != nil else {
            try parts.reports.deleteAll(analysisId: record.id, organizationId: record.organizationId)
            try parts.queue.finish(job, outcome: "gone")
            return
        }
        try parts.queue.finish(job, outcome: origin.rawValue, promptTokens: tokens.0, completionTokens: tokens.1)
        _ = try? parts.audit.append(AuditEntry(actorUserId: nil, actorUsername: "system:reports", organizationId: record.organizationId,
                                               action: "report.draft", recordId: record.id, address: "local", outcome: "success"))
    }

    /// Appends the draft; a version 1 stored already was written by an earlier run of this job whose
    /// process died before finishing it, and counts as written.
    static func appendOnce(_ version: ReportVersion, to reports: ReportStore) throws(StoreError) {
        do {
            try reports.append(version)
        } catch {
            if error.kind != .conflict { throw error }
        }
    }

    /// The LLM's text as a report may hold it: the same characters a clinician may type (no controls,
    /// no bidi overrides), within the report's length; never interpreted as markup anywhere.
    static func clean(_ text: String) -> String {
        var scalars = String.UnicodeScalarView()
        for scalar in text.replacingOccurrences(of: "\r\n", with: "\n").unicodeScalars where !FieldText.refuses(scalar, .lines) {
            scalars.append(scalar)
        }
        return String(String(scalars).precomposedStringWithCanonicalMapping.prefix(TextRule.report.maxCharacters))
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
