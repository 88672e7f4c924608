import Foundation
import MediscopeStore
import Mustache

/// Why the report templates could not be loaded. The message names the folder or file, never patient data.
package struct ReportTemplateError: Error, Sendable, CustomStringConvertible {
    package enum Kind: String, Sendable { case folderMissing, templateMissing, invalidTemplate }
    package let kind: Kind
    package let message: String
    package init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }
    package var description: String { message }
}

/// The printable report's Mustache templates: `report.mustache` plus the partials it includes, all from
/// one folder. Load once, render many times; `{{ }}` escapes `< > & " '`, so every value is safe in text
/// and in quoted attributes alike (ReportTests pins that down).
package struct ReportTemplates: Sendable {
    package static let main = "report"
    package let directory: URL
    private let library: MustacheLibrary

    package init(directory: URL) throws(ReportTemplateError) {
        self.directory = directory
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isFolder), isFolder.boolValue,
              let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else {
            throw ReportTemplateError(.folderMissing, "the report template folder \(directory.path) does not exist")
        }
        // Parsed here rather than with MustacheLibrary(directory:): that one is async and skips unreadable files.
        var templates: [String: MustacheTemplate] = [:]
        for file in names.sorted() where file.hasSuffix(".mustache") {
            let url = directory.appendingPathComponent(file)
            guard let text = try? String(contentsOf: url, encoding: .utf8) else {
                throw ReportTemplateError(.invalidTemplate, "\(url.path) cannot be read as UTF-8")
            }
            do { templates[String(file.dropLast(".mustache".count))] = try MustacheTemplate(string: text) } catch {
                let at = (error as? MustacheTemplate.ParserError).map { " (line \($0.context.lineNumber): \($0.error))" } ?? ""
                throw ReportTemplateError(.invalidTemplate, "\(url.path) is not a valid Mustache template\(at)")
            }
            // Mustache renders a missing partial as nothing; a report without its signature block must not pass.
            for partial in Self.partials(in: text) where !names.contains(partial + ".mustache") {
                throw ReportTemplateError(.templateMissing, "\(url.path) includes \(partial), but \(partial).mustache is missing")
            }
        }
        guard templates[Self.main] != nil else {
            throw ReportTemplateError(.templateMissing, "\(directory.path) has no \(Self.main).mustache")
        }
        library = MustacheLibrary(templates: templates)
    }

    /// The report page (HTML) for one analysis; its images are fetched from `links`. `modelNotes` are
    /// printed in the footer, one line each (e.g. an int8 model's fidelity to fp32). `versions` are the
    /// report's versions, oldest first: the report (`ReportVersions.current`: the newest but a late
    /// draft) is printed, signed (with the signer) or marked as an unsigned draft.
    package func render(_ record: AnalysisRecord, institution: String, printedAt: Date = Date(), links: some AnalysisLinks,
                       modelNotes: [String] = [], versions: [ReportVersion] = []) -> String {
        var page = ReportPage(record, institution: institution, printedAt: printedAt, links: links)
        page.modelNotes = modelNotes
        page.show(ReportVersions.current(versions), amended: versions.filter { $0.status == .signed }.count > 1)
        return library.render(page, withTemplate: Self.main) ?? ""
    }

    /// Names in `{{> name}}` tags.
    static func partials(in text: String) -> [String] {
        let regex = /\{\{>\s*([A-Za-z0-9_\-]+)\s*\}\}/
        return text.matches(of: regex).map { String($0.output.1) }
    }
}
