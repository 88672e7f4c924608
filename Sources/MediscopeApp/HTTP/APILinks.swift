import MediscopeImaging
import MediscopeReport
import MediscopeStore

/// The API's addresses for an analysis, its images and its report: the one place that knows them.
/// The router takes its patterns from here, and the JSON responses and the report renderer their URLs.
struct APILinks: AnalysisLinks {
    static let analyses = "/api/analyses"
    static let analysisPattern = "/api/analyses/{id}"
    /// The scan is always rendered as JPEG (the pipeline's display image).
    static let scanPattern = "/api/analyses/{id}/scan.jpg"
    /// `{file}` is `<result id>.<extension of the overlay's format>`.
    static let heatmapPattern = "/api/analyses/{id}/heatmaps/{file}"
    static let reportPattern = "/analyses/{id}/report"
    /// The studies this host received (C-STORE, STOW-RS), and one of them.
    static let studies = "/api/studies"
    static let studyPattern = "/api/studies/{study}"

    func analysis(_ id: String) -> String { "\(Self.analyses)/\(id)" }
    func report(_ id: String) -> String { "/analyses/\(id)/report" }

    func scan(of record: AnalysisRecord) -> String { "\(analysis(record.id))/scan.jpg" }

    func heatmap(of result: StoredResult, in record: AnalysisRecord) -> String {
        "\(analysis(record.id))/heatmaps/\(result.id).\(Self.fileExtension(result.heatmap))"
    }

    /// The result a heatmap `{file}` names, if its extension is that of the stored overlay.
    func result(named file: String, in record: AnalysisRecord) -> StoredResult? {
        record.results.first { "\($0.id).\(Self.fileExtension($0.heatmap))" == file }
    }

    static func fileExtension(_ ref: ImageRef) -> String {
        ref.format?.fileExtension ?? "bin"
    }
}
