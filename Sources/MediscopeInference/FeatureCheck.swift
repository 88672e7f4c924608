import Foundation
import MediscopeEncoding

/// A fitted feature-space check: Mahalanobis distance sqrt((t(x) - mean)^T P (t(x) - mean)) = |U (t(x) - mean)|
/// with P = U^T U (U upper triangular) and t the feature transform (sqrt(max(x, 0)), or none); above
/// `threshold` out of scope. Loaded from the parameter file the manifest entry names, after its sha256
/// matched the manifest's.
package struct FeatureCheck: Sendable {
    package enum Transform: String, Sendable { case none, sqrt }
    package let transform: Transform
    package let dimensions: Int
    package let threshold: Double
    let mean: [Float]
    /// Rows of U from the diagonal on: row i holds U[i][i...dimensions-1].
    let upper: [Float]

    /// What models/fit_input_check.py writes (format 1).
    struct File: Decodable {
        var format: Int
        var method: String
        var transform: String?
        var dimensions: Int
        var threshold: Double
        var mean: String
        var precisionUpper: String
    }

    package init(transform: Transform = .none, threshold: Double, mean: [Float], upper: [Float]) throws(ModelError) {
        let d = mean.count
        guard d > 0, upper.count == d * (d + 1) / 2 else {
            throw ModelError(.corrupt, "input check parameters: \(upper.count) precision values do not make a triangle of \(d) dimensions")
        }
        guard threshold.isFinite, threshold > 0, mean.allSatisfy(\.isFinite), upper.allSatisfy(\.isFinite) else {
            throw ModelError(.corrupt, "input check parameters: non-finite values or a threshold that is not positive")
        }
        self.transform = transform
        self.dimensions = d
        self.threshold = threshold
        self.mean = mean
        self.upper = upper
    }

    /// Loads and checks the parameters of `spec`'s entry. A file whose sha256 is not the manifest's is refused.
    package static func load(_ spec: ModelSpec, in manifest: ModelManifest) throws(ModelError) -> FeatureCheck? {
        guard let entry = spec.inputCheck, let url = manifest.inputCheckURL(of: spec) else { return nil }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelError(.missing, "input check parameters \(url.path) of model \(spec.id) cannot be read "
                             + "(run `make model-input-check`)")
        }
        let digest = SHA256Hex.digest([UInt8](data))
        guard digest == entry.sha256.lowercased() else {
            throw ModelError(.refused, "model \(spec.id) is refused: its input check parameters \(url.lastPathComponent) have sha256 "
                             + "\(digest), not the manifest's \(entry.sha256): the file was changed after it was fitted "
                             + "(refit with `make model-input-check`, which also sets the checksum)")
        }
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: data) } catch {
            throw ModelError(.corrupt, "input check parameters \(url.path) are not valid: \(describe(error))")
        }
        guard file.format == 1, file.method == "mahalanobis", let transform = Transform(rawValue: file.transform ?? "none") else {
            throw ModelError(.corrupt, "input check parameters \(url.path): format \(file.format), method \(file.method), "
                             + "transform \(file.transform ?? "none") is not supported (format 1, mahalanobis, sqrt or none)")
        }
        guard let mean = floats(base64: file.mean), let upper = floats(base64: file.precisionUpper), mean.count == file.dimensions else {
            throw ModelError(.corrupt, "input check parameters \(url.path): mean or precisionUpper is not base64 float32 "
                             + "of \(file.dimensions) dimensions")
        }
        do { return try FeatureCheck(transform: transform, threshold: file.threshold, mean: mean, upper: upper) } catch {
            throw ModelError(.corrupt, "\(error.message) (\(url.path))")
        }
    }

    /// What the verdict's `method` names: "mahalanobis" or "mahalanobis-sqrt".
    package var method: String { transform == .sqrt ? "mahalanobis-sqrt" : "mahalanobis" }

    /// The distance of `features` (one value per dimension), or nil when the count differs.
    package func score(_ features: [Float]) -> Double? {
        guard features.count == dimensions else { return nil }
        let d = dimensions
        var centred = [Double](repeating: 0, count: d)
        for i in 0..<d {
            let x = Double(features[i])
            centred[i] = (transform == .sqrt ? max(0, x).squareRoot() : x) - Double(mean[i])
        }
        var total = 0.0
        upper.withUnsafeBufferPointer { u in
            centred.withUnsafeBufferPointer { x in
                var offset = 0
                for i in 0..<d {
                    var y = 0.0
                    for j in i..<d { y += Double(u[offset + j - i]) * x[j] }
                    offset += d - i
                    total += y * y
                }
            }
        }
        return total.squareRoot()
    }
}

/// Little-endian float32 values from base64, nil when it is not that.
func floats(base64: String) -> [Float]? {
    guard let data = Data(base64Encoded: base64), data.count % 4 == 0 else { return nil }
    return data.withUnsafeBytes { raw in
        (0..<data.count / 4).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
    }
}
