import Foundation
import MediscopeLLM
import MediscopeServer

/// How report drafts are written (`llm.*`, `reports.*`; MEDISCOPE_LLM_*, MEDISCOPE_REPORTS_*).
package struct ReportSettings: Sendable {
    /// The OpenAI-compatible server; nil (no `llm.base_url`): every draft comes from the template.
    package var llm: LLMSettings?
    /// Report job processes beside the pools (`reports.workers`, 1...8).
    package var workers: Int
    /// Attempts at the LLM per report before the template is used (`llm.max_attempts`, 1...10).
    package var maxAttempts: Int
    /// The longest wait before another attempt, seconds (`llm.max_retry_wait_seconds`, 0...3600, default
    /// 120): an LLM that asks for more with `Retry-After` (a daily quota used up: `Retry-After: 3600`) gets
    /// no more attempts for this report, whose draft the template writes at once, rather than leaving the
    /// report pending for an hour per attempt.
    package var maxRetryWait: Double = 120
    /// Jobs of one organisation running at once, over all job processes (`reports.max_running_per_organization`).
    package var maxRunningPerOrganization: Int
    /// Least time between two job starts of one organisation, seconds (`reports.min_seconds_between_starts`):
    /// a rate limit, so one busy organisation cannot use up the LLM's quota for all.
    package var minSecondsBetweenStarts: Double
    /// When the draft of a received DICOM instance's analysis (C-STORE or STOW-RS) is written
    /// (`reports.draft.received`): `on_view` (the default) when the analysis is first looked at, as for
    /// any analysis without a draft; `at_once` as for an upload. A 200-slice series would otherwise ask
    /// the LLM for 200 drafts that nobody may ever open.
    package var draftReceived: DraftTiming = .onView

    /// When a draft is queued.
    package enum DraftTiming: String, Sendable {
        /// When the analysis (or its report) is first looked at.
        case onView = "on_view"
        /// Right after the analysis is stored.
        case atOnce = "at_once"
    }

    static func read(_ string: (String) -> String?, int: (String, Int) -> Int, double: (String, Double) -> Double) throws -> ReportSettings {
        var llm: LLMSettings?
        if let base = string("llm.base.url"), !base.isEmpty {
            guard let url = URL(string: base), url.scheme == "http" || url.scheme == "https", url.host != nil else {
                throw ServerError("llm.base_url must be an http(s) URL, got \(base)")
            }
            guard let model = string("llm.model"), !model.isEmpty else { throw ServerError("llm.model is required with llm.base_url") }
            var key = string("llm.api.key")
            if let keyFile = string("llm.api.key.file"), !keyFile.isEmpty {
                // The key itself never reaches a message or a log.
                guard let data = FileManager.default.contents(atPath: keyFile),
                      let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty else {
                    throw ServerError("llm.api_key_file \(keyFile) cannot be read or is empty")
                }
                key = text
            }
            var settings = LLMSettings(baseURL: url, model: model, apiKey: key)
            settings.timeout = double("llm.timeout.seconds", 30)
            settings.connectTimeout = double("llm.connect.timeout.seconds", 5)
            settings.maxTokens = int("llm.max.tokens", 700)
            settings.temperature = double("llm.temperature", 0.2)
            guard (1...600).contains(settings.timeout), (0...2).contains(settings.temperature), (16...8192).contains(settings.maxTokens) else {
                throw ServerError("llm.timeout_seconds must be 1...600, llm.temperature 0...2, llm.max_tokens 16...8192")
            }
            llm = settings
        }
        var settings = ReportSettings(
            llm: llm, workers: int("reports.workers", 1), maxAttempts: int("llm.max.attempts", 3),
            maxRetryWait: double("llm.max.retry.wait.seconds", 120),
            maxRunningPerOrganization: int("reports.max.running.per.organization", 2),
            minSecondsBetweenStarts: double("reports.min.seconds.between.starts", 0))
        let timing = string("reports.draft.received") ?? DraftTiming.onView.rawValue
        guard let draftReceived = DraftTiming(rawValue: timing) else {
            throw ServerError("reports.draft_received must be on_view or at_once, got \(timing)")
        }
        settings.draftReceived = draftReceived
        guard (1...8).contains(settings.workers) else { throw ServerError("reports.workers must be 1...8") }
        guard (1...10).contains(settings.maxAttempts) else { throw ServerError("llm.max_attempts must be 1...10") }
        guard (0...3600).contains(settings.maxRetryWait) else { throw ServerError("llm.max_retry_wait_seconds must be 0...3600") }
        guard settings.maxRunningPerOrganization >= 1, settings.minSecondsBetweenStarts >= 0 else {
            throw ServerError("reports.max_running_per_organization must be at least 1, reports.min_seconds_between_starts at least 0")
        }
        return settings
    }
}
