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
/// completes once. 429 waits for `Retry-After` (at most `maxRetryWait`: a longer wait gives up at once),
/// 5xx and timeouts back off; after `maxAttempts` the template is used and the reason kept with the
/// draft. A reply that was cut off (`finish_reason` `length`), filtered, or that cannot be a draft of
/// its facts (a refusal, one naming none of the results) is never stored: the template writes the
/// draft, with the reason, and what came back is logged for the operator (the prompt holds no
/// identifier, so neither does the reply). A clinician may write while the draft is pending; the
/// draft then follows their versions as a late draft, which never replaces their text.
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
        // Written by an earlier run of this job. A clinician's versions alone (written while the draft was
        // pending) do not stop it: the draft follows them as a late draft (see appendOnce).
        guard try !parts.reports.versions(analysisId: record.id, organizationId: record.organizationId)
            .contains(where: { $0.origin != .clinician }) else {
            try parts.queue.finish(job, outcome: "exists")
            return
        }
        let facts = ReportFacts(record)
        var text: String, origin = ReportVersion.Origin.template, model: String?, reason: String?
        var tokens = (0, 0)
        if let llm = config.reports.llm {
            let started = Date()
            do throws(LLMError) {
                let completion = try ChatCompletionsClient(settings: llm).complete(parts.writing.messages(facts))
                tokens = (completion.promptTokens, completion.completionTokens)
                if let problem = ReportWriting.problem(with: completion.text, for: facts) {
                    throw LLMError(.unusable, status: 200, problem, received: completion.text)
                }
                let cleaned = Self.clean(completion.text)
                text = cleaned.isEmpty ? "" : ReportWriting.keepingWarning(cleaned, for: facts)
                origin = .llm
                model = completion.model
                log.info("report_drafted", ["analysis": .token(.init(record.id)), "source": .word("llm"),
                                            "seconds": .double(Date().timeIntervalSince(started)),
                                            "prompt_tokens": .int(tokens.0), "completion_tokens": .int(tokens.1)])
            } catch {
                log.warning("llm_failed", ["analysis": .token(.init(record.id)), "kind": .token(.init(error.kind.rawValue)),
                                           "status": .int(error.status), "attempt": .int(job.attempts)])
                if let received = error.received { logReceived(received, record.id, error.kind) }
                let wait = error.retryAfter ?? min(pow(2, Double(job.attempts)), 60)
                if error.isRetryable, job.attempts < config.reports.maxAttempts, wait <= config.reports.maxRetryWait {
                    try parts.queue.retry(job, at: Date().addingTimeInterval(wait), error: error.description)
                    return
                }
                try parts.queue.countFailedAttempt(kind: ReportAPI.kind)
                text = parts.writing.fallback(facts)
                reason = Self.reason(error, wait: wait, maxRetryWait: config.reports.maxRetryWait,
                                     attemptsLeft: error.isRetryable && job.attempts < config.reports.maxAttempts)
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

    /// Appends the draft (built as version 1). When that number is taken, the versions decide: a draft
    /// of the LLM or the template among them was written by an earlier run of this job whose process died
    /// before finishing it, and counts as written; a clinician's versions alone were written while the
    /// draft was pending, and the draft follows them as the newest version, a late draft that never
    /// replaces their text (`ReportVersions.current`). A report that takes no version although none was
    /// added since the last look (closed: its analysis is being deleted) counts as done too.
    static func appendOnce(_ version: ReportVersion, to reports: ReportStore) throws(StoreError) {
        var version = version
        var seen = -1
        while true {
            do {
                try reports.append(version)
                return
            } catch {
                if error.kind != .conflict { throw error }
            }
            let stored = try reports.versions(analysisId: version.analysisId, organizationId: version.organizationId)
            if stored.count == seen || stored.contains(where: { $0.origin != .clinician }) { return }
            seen = stored.count
            version.number = (stored.last?.number ?? 0) + 1
        }
    }

    /// Why the template wrote the draft after the LLM failed: the error's kind and status, what was wrong
    /// with a reply that came, or the wait the LLM asked for when it was longer than allowed.
    static func reason(_ error: LLMError, wait: Double, maxRetryWait: Double, attemptsLeft: Bool) -> String {
        switch error.kind {
        case .truncated, .filtered, .unusable:
            return "the LLM's reply was not used (\(error.kind.rawValue)): \(error.message)"
        default:
            let failed = "the LLM failed (\(error.kind.rawValue)\(error.status > 0 ? ", HTTP \(error.status)" : ""))"
            guard attemptsLeft, wait > maxRetryWait else { return failed }
            return "\(failed) and asked to wait \(Int(wait.rounded())) s, longer than llm.max_retry_wait_seconds (\(Int(maxRetryWait)) s)"
        }
    }

    /// Logs the start and the end of a reply that was not used, for the operator: log fields keep only
    /// letters, digits and a few marks, so every other character shows as "?".
    private func logReceived(_ received: String, _ analysisId: String, _ kind: LLMError.Kind) {
        log.warning("llm_reply_not_used", ["analysis": .token(.init(analysisId)), "kind": .token(.init(kind.rawValue)),
                                           "characters": .int(received.count),
                                           "start": .token(.init(String(received.prefix(100)))),
                                           "end": .token(.init(String(received.suffix(100))))])
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
