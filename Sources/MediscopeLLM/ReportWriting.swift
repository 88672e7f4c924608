import Foundation
import Mustache

/// Why the report-writing templates could not be loaded; names the file, never patient data.
public struct ReportWritingError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The two texts a draft comes from, both Mustache templates in templates/ that operators may edit:
/// `report-prompt.mustache` (the user message sent to the LLM) and `report-fallback.mustache` (the
/// report written from the numbers alone when no LLM is configured or it failed). Both are rendered
/// from `ReportFacts` only, as plain text (`{{% CONTENT_TYPE: TEXT}}`: nothing is HTML-escaped).
public struct ReportWriting: Sendable {
    public static let promptTemplate = "report-prompt"
    public static let fallbackTemplate = "report-fallback"

    /// Fixed, not editable: what the model is and is not allowed to do.
    public static let systemInstruction = """
        You write plain-language summaries of automated medical image analyses for clinicians. The analysis \
        is decision support, not a diagnosis: never state or imply a diagnosis, never recommend treatment, \
        and say that a qualified clinician must review the images. Describe what each model predicted and how \
        confident it was, and explain that the heatmap shows the image regions that most influenced that \
        model's prediction, not the location or extent of disease. Use short paragraphs of plain text, \
        no markdown, no lists, no headings. Do not invent patient details; use only the facts given.
        """

    private let library: MustacheLibrary

    /// Reads both templates from `directory`. Throws `ReportWritingError` when one is missing or invalid.
    public init(directory: URL) throws(ReportWritingError) {
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
    public func messages(_ facts: ReportFacts) -> [ChatMessage] {
        [ChatMessage(role: "system", content: Self.systemInstruction),
         ChatMessage(role: "user", content: render(Self.promptTemplate, facts))]
    }

    /// The report from the numbers alone.
    public func fallback(_ facts: ReportFacts) -> String { render(Self.fallbackTemplate, facts) }

    private func render(_ template: String, _ facts: ReportFacts) -> String {
        (library.render(facts, withTemplate: template) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
