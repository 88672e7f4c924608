import Foundation
import MediscopeImaging
import Mustache

/// Why the report-writing templates could not be loaded; names the file, never patient data.
package struct ReportWritingError: Error, Sendable, CustomStringConvertible {
    package let message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}

/// The two texts a draft comes from, both Mustache templates in templates/ that operators may edit:
/// `report-prompt.mustache` (the user message sent to the LLM) and `report-fallback.mustache` (the
/// report written from the numbers alone when no LLM is configured or it failed). Both are rendered
/// from `ReportFacts` only, as plain text (`{{% CONTENT_TYPE: TEXT}}`: nothing is HTML-escaped).
package struct ReportWriting: Sendable {
    package static let promptTemplate = "report-prompt"
    package static let fallbackTemplate = "report-fallback"

    /// Fixed, not editable: what the model is and is not allowed to do.
    package static let systemInstruction = """
        You write plain-language summaries of automated medical image analyses for clinicians. The analysis \
        is decision support, not a diagnosis: never state or imply a diagnosis, never recommend treatment, \
        and say that a qualified clinician must review the images. Describe what each model predicted and how \
        confident it was, and explain that the heatmap shows the image regions that most influenced that \
        model's prediction, not the location or extent of disease. Use short paragraphs of plain text, \
        no markdown, no lists, no headings. Do not invent patient details; use only the facts given.
        """

    private let library: MustacheLibrary

    /// Reads both templates from `directory`. Throws `ReportWritingError` when one is missing or invalid.
    package init(directory: URL) throws(ReportWritingError) {
        var templates: [String: MustacheTemplate] = [:]
        for name in [Self.promptTemplate, Self.fallbackTemplate] {
            let url = directory.appendingPathComponent(name + ".mustache")
            guard let text = try? String(contentsOf: url, encoding: .utf8) else {
                throw ReportWritingError("\(url.path) is missing or not UTF-8")
            }
            do { templates[name] = try MustacheTemplate(string: text) } catch {
                throw ReportWritingError("\(url.path) is not a valid Mustache template")
            }
        }
        library = MustacheLibrary(templates: templates)
    }

    /// The chat to send: the fixed system instruction and the rendered prompt.
    package func messages(_ facts: ReportFacts) -> [ChatMessage] {
        [ChatMessage(role: "system", content: Self.systemInstruction),
         ChatMessage(role: "user", content: render(Self.promptTemplate, facts))]
    }

    /// The report from the numbers alone.
    package func fallback(_ facts: ReportFacts) -> String { render(Self.fallbackTemplate, facts) }

    /// An LLM's draft as kept: for an out-of-scope image it opens with `InputCheck.warning` whatever the
    /// model wrote, so a draft signed as it is keeps the warning. Other drafts are returned unchanged.
    package static func keepingWarning(_ draft: String, for facts: ReportFacts) -> String {
        guard facts.outOfScope, !draft.contains(facts.outOfScopeWarning) else { return draft }
        return "WARNING: \(facts.outOfScopeWarning)\n\n" + draft
    }

    /// Why `reply` (a complete chat completion) cannot be the draft of a report on `facts`, or nil when
    /// it can. A reply is refused when it opens with a refusal ("I can't help with ..."), names none of
    /// the results it was given (no model's title and no predicted label), or stops mid-sentence (cut off
    /// by a server that did not say so). The words are compared without case, accents, `_` or `-`, so
    /// "Glioma" finds "glioma" and "no_tumor" finds "No tumor". A refused reply never becomes a draft: the
    /// template writes it, and the reason is kept with it.
    package static func problem(with reply: String, for facts: ReportFacts) -> String? {
        let text = comparable(reply)
        if refusalOpenings.contains(where: { text.hasPrefix($0) }) {
            return "the reply reads as a refusal"
        }
        if facts.hasFindings {
            let names = facts.findings.flatMap { [$0.title, $0.prediction] }.map(comparable).filter { !$0.isEmpty }
            if !names.contains(where: { text.contains($0) }) {
                return "the reply names none of the results it was given (no model title or predicted label)"
            }
        }
        guard let last = reply.trimmingCharacters(in: .whitespacesAndNewlines).last, sentenceEnds.contains(last) else {
            return "the reply ends mid-sentence"
        }
        return nil
    }

    /// How a refusal opens (compared after `comparable`).
    static let refusalOpenings = ["i can't", "i cannot", "i can not", "i'm sorry", "i am sorry", "sorry,", "i'm unable", "i am unable",
                                  "i'm not able", "i am not able", "i won't", "i will not", "as an ai"]
    /// What the last character of a complete reply may be.
    static let sentenceEnds: Set<Character> = [".", "!", "?", "\u{2026}", ")", "]", "\"", "'", "\u{201D}", "\u{2019}", "\u{00BB}"]

    /// Lowercased, without accents, `_` and `-` as spaces, runs of white space as one, curly apostrophes straight.
    static func comparable(_ text: String) -> String {
        let folded = text.folding(options: [.caseInsensitive, .diacriticInsensitive], locale: Locale(identifier: "en_US_POSIX"))
            .replacingOccurrences(of: "\u{2019}", with: "'")
            .replacingOccurrences(of: "_", with: " ").replacingOccurrences(of: "-", with: " ")
        return folded.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }

    private func render(_ template: String, _ facts: ReportFacts) -> String {
        (library.render(facts, withTemplate: template) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
