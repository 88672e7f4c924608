import Foundation
import MediscopeImaging
import MediscopeReport
import MediscopeStore

/// The JSON an analysis is shown as. Images are URLs, never base64: the browser fetches them lazily.
struct AnalysisBody: Encodable {
    struct Image: Codable, Sendable, Equatable {
        var url: String
        var width: Int
        var height: Int
        /// null for a heatmap drawn when first looked at: its size is not known when the analysis is stored.
        var bytes: Int?

        /// `bytes` is always there, null when unknown (the same shape for every image).
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(url, forKey: .url)
            try c.encode(width, forKey: .width)
            try c.encode(height, forKey: .height)
            try c.encode(bytes, forKey: .bytes)
        }
    }
    /// A stored result with its heatmap as a URL.
    typealias Result = AnalysisResult<Image>
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
        results = r.results.map { result in
            result.mapHeatmap { Image(url: links.heatmap(of: result, in: r), width: $0.width, height: $0.height, bytes: $0.byteCount) }
        }
        timingsMs = r.timingsMs
        inputCheck = r.inputCheck
        source = r.source
        self.links = ["self": links.analysis(r.id), "report": links.report(r.id)]
    }
}
