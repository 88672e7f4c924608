import Foundation

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
        /// The analysis was stored before Mediscope checked images.
        public static let notRecorded = "not_recorded"
        /// Every code above.
        public static let all: Set<String> = [tooSmall, uniform, lowInformation, colour, modality, bodyPart, unfamiliar,
                                              notConfigured, noFeatureCheck, notRecorded]
    }

    /// The field of an analysis stored before input checks existed: nothing is claimed about it.
    public static let notRecorded = InputCheck(verdict: .notChecked, reasons: [
        Reason(code: Code.notRecorded, message: "This analysis was made before Mediscope checked whether images are in the models' scope.")])

    /// What the dashboard, the printed report and the report draft say first about an out-of-scope image.
    public static let warning = "This image does not look like a scan the model was made for: its numbers are not meaningful."

    /// True when the image is outside what the models were made for: their numbers are not meaningful.
    public var isOutOfScope: Bool { verdict == .outOfScope }

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
