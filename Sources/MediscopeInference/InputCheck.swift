import Foundation
import MediscopeEncoding
import MediscopeImaging

/// Whether an image is one the models were made for (issue 22): one per analysis, at its top level.
///
/// Two layers. Image checks before inference, cheap and explainable (too small, near-uniform, low
/// information, colour where greyscale is expected, a declared modality or body part that is not the
/// model's), from the manifest entry's `scope`. A feature-space check after the forward pass: the
/// Mahalanobis distance of the mean-pooled `features(x)` activations (the tensor Grad-CAM already
/// uses) from in-distribution slices, with parameters fitted by models/fit_input_check.py.
/// The verdict never changes the probabilities; it says whether to trust them.
///
/// JSON (every key always present; `score`, `threshold`, `method` null when no check ran):
/// `{"verdict": "in_scope" | "out_of_scope" | "not_checked", "reasons": [{"code", "message"}],
///   "score": 41.2, "threshold": 74.1, "method": "image-checks+mahalanobis-sqrt"}`
public struct InputCheck: Codable, Sendable, Equatable {
    public enum Verdict: String, Codable, Sendable {
        /// Every check ran and passed.
        case inScope = "in_scope"
        /// At least one check says the image is not what the model was made for: the reasons say which.
        case outOfScope = "out_of_scope"
        /// The model declares no input check (or only part of one) and nothing failed.
        case notChecked = "not_checked"
    }

    public struct Reason: Codable, Sendable, Equatable {
        /// Stable, for programs: see `InputCheck.Code`.
        public var code: String
        /// For people: what was measured and what the model expects.
        public var message: String
        public init(code: String, message: String) { self.code = code; self.message = message }
    }

    /// The reason codes.
    public enum Code {
        public static let tooSmall = "too_small"
        public static let uniform = "uniform"
        public static let lowInformation = "low_information"
        public static let colour = "colour"
        public static let modality = "modality"
        public static let bodyPart = "body_part"
        /// The feature-space check: the image looks unlike the slices the model was checked on.
        public static let unfamiliar = "unfamiliar"
        /// The model declares no input check at all.
        public static let notConfigured = "not_configured"
        /// The model declares a scope (image checks ran) but no fitted feature check.
        public static let noFeatureCheck = "no_feature_check"
    }

    public var verdict: Verdict
    public var reasons: [Reason]
    /// The feature-space distance (for several models: of the model closest to or furthest past its threshold).
    public var score: Double?
    /// The distance above which the image is out of scope, for the same model as `score`.
    public var threshold: Double?
    /// What ran: "image-checks+mahalanobis-sqrt", "image-checks", or null.
    public var method: String?

    public init(verdict: Verdict, reasons: [Reason] = [], score: Double? = nil, threshold: Double? = nil, method: String? = nil) {
        self.verdict = verdict
        self.reasons = reasons
        self.score = score
        self.threshold = threshold
        self.method = method
    }

    enum CodingKeys: String, CodingKey { case verdict, reasons, score, threshold, method }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(verdict, forKey: .verdict)
        try c.encode(reasons, forKey: .reasons)
        try c.encode(score, forKey: .score)
        try c.encode(threshold, forKey: .threshold)
        try c.encode(method, forKey: .method)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        verdict = try c.decode(Verdict.self, forKey: .verdict)
        reasons = try c.decodeIfPresent([Reason].self, forKey: .reasons) ?? []
        score = try c.decodeIfPresent(Double.self, forKey: .score)
        threshold = try c.decodeIfPresent(Double.self, forKey: .threshold)
        method = try c.decodeIfPresent(String.self, forKey: .method)
    }

    /// One verdict for an analysis from each model's: out of scope if any model says so, not checked if
    /// any model could not say, in scope only if all say so. Reasons of all models (named when there are
    /// several); score and threshold of the model whose score is the largest share of its threshold.
    public static func combine(_ checks: [(model: String, check: InputCheck)]) -> InputCheck {
        guard checks.count > 1 else {
            return checks.first?.check ?? InputCheck(verdict: .notChecked, reasons: [
                Reason(code: Code.notConfigured, message: "No model checked this image.")])
        }
        let verdicts = checks.map(\.check.verdict)
        let verdict: Verdict = verdicts.contains(.outOfScope) ? .outOfScope : verdicts.contains(.notChecked) ? .notChecked : .inScope
        let reasons = checks.flatMap { model, check in
            check.reasons.map { Reason(code: $0.code, message: "\(model): \($0.message)") }
        }
        let scored = checks.compactMap { c -> (InputCheck, Double)? in
            guard let s = c.check.score, let t = c.check.threshold, t > 0 else { return nil }
            return (c.check, s / t)
        }
        let worst = scored.max { $0.1 < $1.1 }?.0
        let methods = Set(checks.compactMap(\.check.method))
        return InputCheck(verdict: verdict, reasons: reasons, score: worst?.score, threshold: worst?.threshold,
                          method: methods.count == 1 ? methods.first : methods.isEmpty ? nil : methods.sorted().joined(separator: ","))
    }
}

/// What the uploader says about an image (a form field) besides what a DICOM file says about itself.
public struct InputDeclaration: Sendable, Equatable {
    /// A DICOM modality code ("MR", "CT", ...); "MRI" is read as "MR".
    public var modality: String?
    /// A DICOM Body Part Examined value ("BRAIN", "HEAD", "CHEST", ...).
    public var bodyPart: String?
    public init(modality: String? = nil, bodyPart: String? = nil) {
        self.modality = modality
        self.bodyPart = bodyPart
    }
}

/// Cheap statistics of a decoded image, taken on every k-th pixel (k = ceil(longest side / 256)), with
/// Pillow's luma (models/fit_input_check.py computes the same to measure the checks).
public struct ImageStatistics: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// Standard deviation of the luma, 0...255.
    public var greySpread: Double
    /// Shannon entropy of the 256-bin luma histogram, in bits (0...8).
    public var entropyBits: Double
    /// Mean absolute luma difference between neighbouring sampled pixels (a smooth gradient: about 1).
    public var detail: Double
    /// Fraction of sampled pixels whose max(r, g, b) - min(r, g, b) exceeds 40.
    public var colourFraction: Double

    static let grid = 256
    static let colourChroma = 40

    public init(_ image: PixelImage) {
        width = image.width
        height = image.height
        let k = max(1, (max(image.width, image.height) + Self.grid - 1) / Self.grid)
        let rows = (image.height + k - 1) / k, cols = (image.width + k - 1) / k
        var luma = [Int32](repeating: 0, count: rows * cols)
        var histogram = [Int](repeating: 0, count: 256)
        var coloured = 0
        let c = image.channels
        image.pixels.withUnsafeBufferPointer { px in
            for r in 0..<rows {
                for q in 0..<cols {
                    let i = ((r * k) * image.width + q * k) * c
                    let v: Int32
                    if c >= 3 {
                        let red = Int32(px[i]), green = Int32(px[i + 1]), blue = Int32(px[i + 2])
                        v = (red * 19595 + green * 38470 + blue * 7471 + 0x8000) >> 16
                        if max(red, green, blue) - min(red, green, blue) > Int32(Self.colourChroma) { coloured += 1 }
                    } else {
                        v = Int32(px[i])
                    }
                    luma[r * cols + q] = v
                    histogram[Int(v)] += 1
                }
            }
        }
        let n = Double(rows * cols)
        var sum = 0.0, squares = 0.0
        for v in luma { let d = Double(v); sum += d; squares += d * d }
        let mean = sum / n
        greySpread = max(0, squares / n - mean * mean).squareRoot()
        entropyBits = histogram.reduce(0.0) { e, count in
            guard count > 0 else { return e }
            let p = Double(count) / n
            return e - p * log2(p)
        }
        var differences = 0, pairs = 0
        for r in 0..<rows {
            for q in 0..<cols {
                let v = luma[r * cols + q]
                if q + 1 < cols { differences += Int(abs(luma[r * cols + q + 1] - v)); pairs += 1 }
                if r + 1 < rows { differences += Int(abs(luma[(r + 1) * cols + q] - v)); pairs += 1 }
            }
        }
        detail = pairs > 0 ? Double(differences) / Double(pairs) : 0
        colourFraction = Double(coloured) / n
    }
}

/// A fitted feature-space check: Mahalanobis distance sqrt((t(x) - mean)^T P (t(x) - mean)) = |U (t(x) - mean)|
/// with P = U^T U (U upper triangular) and t the feature transform (sqrt(max(x, 0)), or none); above
/// `threshold` out of scope. Loaded from the parameter file the manifest entry names, after its sha256
/// matched the manifest's.
public struct FeatureCheck: Sendable {
    public enum Transform: String, Sendable { case none, sqrt }
    public let transform: Transform
    public let dimensions: Int
    public let threshold: Double
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

    public init(transform: Transform = .none, threshold: Double, mean: [Float], upper: [Float]) throws(ModelError) {
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
    public static func load(_ spec: ModelSpec, in manifest: ModelManifest) throws(ModelError) -> FeatureCheck? {
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
    public var method: String { transform == .sqrt ? "mahalanobis-sqrt" : "mahalanobis" }

    /// The distance of `features` (one value per dimension), or nil when the count differs.
    public func score(_ features: [Float]) -> Double? {
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

/// One model's checks: its scope's image checks and its fitted feature check.
public struct InputChecker: Sendable {
    public let modelID: String
    public let scope: ModelScope?
    public let featureCheck: FeatureCheck?
    public let limits: ImageCheckLimits.Resolved

    public init(modelID: String, scope: ModelScope?, featureCheck: FeatureCheck?) {
        self.modelID = modelID
        self.scope = scope
        self.featureCheck = featureCheck
        self.limits = (scope?.imageChecks ?? ImageCheckLimits()).resolved
    }

    /// Whether any check is declared at all.
    public var isConfigured: Bool { scope != nil || featureCheck != nil }

    /// The image checks: before inference, from the statistics and what the file and the uploader declare.
    public func imageReasons(_ s: ImageStatistics, dicom: DicomAttributes?, declared: InputDeclaration) -> [InputCheck.Reason] {
        guard let scope else { return [] }
        var reasons: [InputCheck.Reason] = []
        typealias R = InputCheck.Reason
        if min(s.width, s.height) < limits.minImageSide {
            reasons.append(R(code: InputCheck.Code.tooSmall, message: "The image is \(s.width)×\(s.height) pixels: too small to be a "
                             + "slice for this model, which needs at least \(limits.minImageSide) pixels on the shorter side."))
        }
        if s.greySpread < limits.minGreySpread {
            reasons.append(R(code: InputCheck.Code.uniform, message: "The image is nearly uniform (grey-level spread "
                             + "\(format(s.greySpread)) of 255): there is nothing to analyse."))
        } else if s.entropyBits < limits.minEntropyBits || s.detail < limits.minDetail {
            let what = s.entropyBits < limits.minEntropyBits
                ? "it has few distinct grey levels (\(format(s.entropyBits)) bits, a scan has at least \(format(limits.minEntropyBits)))"
                : "it has almost no spatial detail (\(format(s.detail)) grey levels between neighbouring pixels, a scan has at least \(format(limits.minDetail)))"
            reasons.append(R(code: InputCheck.Code.lowInformation, message: "The image holds too little information for a scan: \(what)."))
        }
        if scope.greyscale == true, s.colourFraction > limits.maxColourFraction {
            reasons.append(R(code: InputCheck.Code.colour, message: "\(format(s.colourFraction * 100))% of the image is in colour; "
                             + "this model expects greyscale \(scope.modalities?.contains("MR") == true ? "MRI" : "scans")."))
        }
        if let allowed = scope.modalities, !allowed.isEmpty {
            for (value, source) in [(dicom?.modality, "The DICOM file's modality"), (declared.modality, "The declared modality")] {
                guard let value, let code = Self.normalised(value, synonyms: ["MRI": "MR"]) else { continue }
                if !allowed.map({ Self.normalised($0) ?? $0 }).contains(code) {
                    reasons.append(R(code: InputCheck.Code.modality, message: "\(source) is \(value); this model is for "
                                     + "\(allowed.joined(separator: ", ")) images."))
                }
            }
        }
        if let allowed = scope.bodyParts, !allowed.isEmpty {
            for (value, source) in [(dicom?.bodyPartExamined, "The DICOM file's body part"), (declared.bodyPart, "The declared body part")] {
                guard let value, let code = Self.normalised(value) else { continue }
                if !allowed.map({ Self.normalised($0) ?? $0 }).contains(code) {
                    reasons.append(R(code: InputCheck.Code.bodyPart, message: "\(source) is \(value); this model is for "
                                     + "\(allowed.joined(separator: ", ").lowercased())."))
                }
            }
        }
        return reasons
    }

    /// The whole verdict of this model, once the pooled features of its forward pass are known.
    public func verdict(imageReasons: [InputCheck.Reason], pooledFeatures: [Float]) -> InputCheck {
        guard isConfigured else {
            return InputCheck(verdict: .notChecked, reasons: [InputCheck.Reason(
                code: InputCheck.Code.notConfigured, message: "Model \(modelID) declares no input check: this image was not "
                    + "checked against what the model was made for.")])
        }
        var reasons = imageReasons
        let ranImageChecks = scope != nil
        guard let featureCheck else {
            guard reasons.isEmpty else { return InputCheck(verdict: .outOfScope, reasons: reasons, method: "image-checks") }
            return InputCheck(verdict: .notChecked, reasons: [InputCheck.Reason(
                code: InputCheck.Code.noFeatureCheck, message: "Model \(modelID) has no fitted feature check: only the image "
                    + "checks ran, and passed.")], method: "image-checks")
        }
        let method = (ranImageChecks ? "image-checks+" : "") + featureCheck.method
        let score = featureCheck.score(pooledFeatures)
        if let score, score.isFinite {
            if score > featureCheck.threshold {
                reasons.append(InputCheck.Reason(code: InputCheck.Code.unfamiliar, message: "The image looks unlike the "
                    + "\(scope?.description.map { "images this model was made for (\($0))" } ?? "images this model was checked on"): "
                    + "its features lie at distance \(format(score)), beyond the threshold of \(format(featureCheck.threshold))."))
            }
        } else {
            reasons.append(InputCheck.Reason(code: InputCheck.Code.unfamiliar, message: "The model's features for this image "
                + "could not be measured (\(pooledFeatures.count) values, \(featureCheck.dimensions) expected)."))
        }
        // Shown to three decimals; the decision above used the exact values.
        func rounded(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }
        return InputCheck(verdict: reasons.isEmpty ? .inScope : .outOfScope, reasons: reasons,
                          score: score.flatMap { $0.isFinite ? rounded($0) : nil }, threshold: rounded(featureCheck.threshold),
                          method: method)
    }

    /// Upper case, letters and digits only ("Head Neck" -> "HEADNECK"), with synonyms; nil when empty.
    static func normalised(_ value: String, synonyms: [String: String] = [:]) -> String? {
        let s = String(value.uppercased().unicodeScalars.filter { CharacterSet.alphanumerics.contains($0) }.map(Character.init))
        guard !s.isEmpty else { return nil }
        return synonyms[s] ?? s
    }
}

private func format(_ v: Double) -> String {
    let s = String(format: "%.1f", v)
    return s.hasSuffix(".0") ? String(s.dropLast(2)) : s
}
