import Foundation
import MediscopeImaging
import MediscopeReport
import MediscopeStore

/// The JSON an analysis is shown as. Images are URLs, never base64: the browser fetches them lazily.
struct AnalysisBody: Encodable {
    struct Image: Encodable {
        var url: String
        var width: Int
        var height: Int
        var bytes: Int
    }
    struct Result: Encodable {
        var id: String
        var model: String
        var title: String
        var task: String
        var probabilities: [StoredProbability]
        var prediction: String
        var confidence: Double
        var explainedLabel: String
        var heatmap: Image
    }
    var id: String
    var createdAt: Date
    var patient: PatientInfo
    var image: [String: Int]
    var scan: Image
    var results: [Result]
    var timingsMs: [String: Double]
    /// Whether the image is one the models were made for: when `out_of_scope`, the numbers above are
    /// not meaningful (they are kept unchanged).
    var inputCheck: InputCheck
    /// The report's state, text and versions; on a single analysis (and `pending` on a new one), not in lists.
    var report: ReportBody?
    /// What was analysed (format, EXIF orientation applied); absent in records made before it was kept.
    var source: ScanSource?
    var links: [String: String]
    var notice = DecisionSupport.notice

    init(_ r: AnalysisRecord, links: APILinks) {
        id = r.id
        createdAt = r.createdAt
        patient = r.patient
        image = ["width": r.imageWidth, "height": r.imageHeight]
        scan = Image(url: links.scan(of: r), width: r.scan.width, height: r.scan.height, bytes: r.scan.byteCount)
        results = r.results.map {
            Result(id: $0.id, model: $0.model, title: $0.title, task: $0.task, probabilities: $0.probabilities,
                   prediction: $0.prediction, confidence: $0.confidence, explainedLabel: $0.explainedLabel,
                   heatmap: Image(url: links.heatmap(of: $0, in: r), width: $0.heatmap.width,
                                  height: $0.heatmap.height, bytes: $0.heatmap.byteCount))
        }
        timingsMs = r.timingsMs
        inputCheck = r.inputCheck
        source = r.source
        self.links = ["self": links.analysis(r.id), "report": links.report(r.id)]
    }
}
