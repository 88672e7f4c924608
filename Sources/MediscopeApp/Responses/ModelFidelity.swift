import Foundation
import MediscopeInference
import MediscopeStore

/// An approximated (int8) model's fidelity to fp32 as GET /api/models shows it and the report prints it.
struct ModelFidelity: Encodable {
    /// Agreement below which the model is refused at load (the manifest's threshold).
    var minAgreement: Double
    /// The report `make model-int8` wrote; nil when it cannot be read (then `problem` says why).
    var report: FidelityReport?
    var problem: String?
    /// Whether the report meets the threshold, i.e. whether the model will load.
    var accepted: Bool

    /// nil for a model whose manifest entry names no fidelity report.
    init?(_ spec: ModelSpec, in manifest: ModelManifest) {
        guard let fidelity = spec.fidelity, let url = manifest.fidelityReportURL(of: spec) else { return nil }
        minAgreement = fidelity.minAgreement
        do {
            let report = try FidelityReport.load(from: url)
            self.report = report
            accepted = report.images > 0 && report.agreement >= fidelity.minAgreement
        } catch {
            problem = error.message
            accepted = false
        }
    }

    /// One footer line for a report: what the numbers say, in words a reader can check.
    func note(model: String) -> String? {
        guard let r = report else { return nil }
        let engine = r.engine.map { ", \($0)" } ?? ""
        return "Model \(model) is int8-quantised\(engine). Against the fp32 model on \(r.images) evaluation images: "
            + "same prediction on \(String(format: "%.1f%%", r.agreement * 100)), largest probability difference "
            + "\(String(format: "%.2f", r.maxProbabilityDifference * 100)) percentage points, Grad-CAM correlation "
            + "mean \(String(format: "%.3f", r.gradCAMCorrelationMean)), worst \(String(format: "%.3f", r.gradCAMCorrelationWorst))."
    }

    /// Footer lines for the models of `record` that have a fidelity report in the current manifest.
    static func notes(for record: AnalysisRecord, _ s: Services) -> [String] {
        guard let manifest = try? s.manifest() else { return [] }
        var seen = Set<String>()
        return record.results.compactMap { result in
            guard seen.insert(result.model).inserted, let spec = manifest.models.first(where: { $0.id == result.model }) else { return nil }
            return ModelFidelity(spec, in: manifest)?.note(model: spec.title ?? spec.id)
        }
    }
}
