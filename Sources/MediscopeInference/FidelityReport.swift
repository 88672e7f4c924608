import Foundation

/// How closely an approximated model (int8) follows its reference (fp32), as `make model-int8` measured
/// it on evaluation images the quantiser never saw (models/quantize_int8.py writes it beside the model).
package struct FidelityReport: Codable, Sendable, Equatable {
    /// Evaluation images compared.
    package var images: Int
    /// Fraction of them on which the prediction (top class) is the reference's, 0...1.
    package var agreement: Double
    /// Largest absolute difference of any class probability.
    package var maxProbabilityDifference: Double
    /// Pearson correlation of the Grad-CAM maps with the reference's: mean and worst over images and results.
    package var gradCAMCorrelationMean: Double
    package var gradCAMCorrelationWorst: Double
    /// The quantised engine the model was made and measured with.
    package var engine: String?

    /// Reads the report at `url`.
    package static func load(from url: URL) throws(ModelError) -> FidelityReport {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelError(.missing, "fidelity report \(url.path) cannot be read (run `make model-int8`)")
        }
        do { return try JSONDecoder().decode(FidelityReport.self, from: data) } catch {
            throw ModelError(.corrupt, "fidelity report \(url.path) is not valid: \(describe(error))")
        }
    }

    /// The report of `spec` if its manifest entry names one, after checking it meets the entry's
    /// threshold: a model whose agreement is below `minAgreement` is refused with the numbers that say why.
    package static func checked(_ spec: ModelSpec, in manifest: ModelManifest) throws(ModelError) -> FidelityReport? {
        guard let fidelity = spec.fidelity, let url = manifest.fidelityReportURL(of: spec) else { return nil }
        let report = try load(from: url)
        guard report.images > 0, report.agreement >= fidelity.minAgreement else {
            throw ModelError(.refused, "model \(spec.id) is refused: its prediction agrees with the fp32 model's on "
                             + "\(percent(report.agreement)) of \(report.images) evaluation images, below the manifest's "
                             + "minimum of \(percent(fidelity.minAgreement)) (\(url.lastPathComponent))")
        }
        return report
    }
}

func percent(_ fraction: Double) -> String {
    String(format: "%.1f%%", fraction * 100)
}
