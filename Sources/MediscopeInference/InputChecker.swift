import Foundation
import MediscopeImaging

/// One model's checks: its scope's image checks and its fitted feature check.
package struct InputChecker: Sendable {
    package let modelID: String
    package let scope: ModelScope?
    package let featureCheck: FeatureCheck?
    package let limits: ImageCheckLimits.Resolved

    package init(modelID: String, scope: ModelScope?, featureCheck: FeatureCheck?) {
        self.modelID = modelID
        self.scope = scope
        self.featureCheck = featureCheck
        self.limits = (scope?.imageChecks ?? ImageCheckLimits()).resolved
    }

    /// Whether any check is declared at all.
    package var isConfigured: Bool { scope != nil || featureCheck != nil }

    /// The image checks: before inference, from the statistics and what the file and the uploader declare.
    package func imageReasons(_ s: ImageStatistics, dicom: DicomAttributes?, declared: InputDeclaration) -> [InputCheck.Reason] {
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
            // Only a DICOM defined term is judged: free text ("left temporal lobe") says nothing checkable.
            for (value, source) in [(dicom?.bodyPartExamined, "The DICOM file's body part"), (declared.bodyPart, "The declared body part")] {
                guard let value, let code = BodyPartExamined.matching(value)?.term else { continue }
                if !allowed.map({ Self.normalised($0) ?? $0 }).contains(code) {
                    reasons.append(R(code: InputCheck.Code.bodyPart, message: "\(source) is \(value); this model is for "
                                     + "\(allowed.joined(separator: ", ").lowercased())."))
                }
            }
        }
        return reasons
    }

    /// The whole verdict of this model, once the pooled features of its forward pass are known.
    package func verdict(imageReasons: [InputCheck.Reason], pooledFeatures: [Float]) -> InputCheck {
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
