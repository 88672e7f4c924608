import Foundation

/// models/manifest.json: which TorchScript models exist, how their input is made,
/// and which results (own or derived) each one yields. See models/README.md.
package struct ModelManifest: Codable, Sendable, Equatable {
    package var version: Int
    package var models: [ModelSpec]

    /// Folder the model `file` entries are relative to.
    package var baseDirectory: URL = URL(fileURLWithPath: ".")

    enum CodingKeys: String, CodingKey { case version, models }

    package init(version: Int = 1, models: [ModelSpec], baseDirectory: URL) {
        self.version = version
        self.models = models
        self.baseDirectory = baseDirectory
    }

    package static func load(from url: URL) throws(ModelError) -> ModelManifest {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelError(.missing, "cannot read model manifest \(url.path): \(error.localizedDescription)")
        }
        var manifest: ModelManifest
        do { manifest = try JSONDecoder().decode(ModelManifest.self, from: data) } catch {
            throw ModelError(.invalidManifest, "model manifest \(url.path) is not valid: \(describe(error))")
        }
        manifest.baseDirectory = url.deletingLastPathComponent()
        try manifest.validate()
        return manifest
    }

    package func fileURL(of model: ModelSpec) -> URL { url(model.file) }

    /// The fidelity report of `model`, if its entry names one.
    package func fidelityReportURL(of model: ModelSpec) -> URL? { model.fidelity.map { url($0.report) } }

    /// The input check's parameter file of `model`, if its entry names one.
    package func inputCheckURL(of model: ModelSpec) -> URL? { model.inputCheck.map { url($0.file) } }

    private func url(_ file: String) -> URL {
        file.hasPrefix("/") ? URL(fileURLWithPath: file) : baseDirectory.appendingPathComponent(file)
    }

    /// Every result the manifest yields, in a stable order: each model's own, then its derived ones.
    package var resultIDs: [String] {
        models.flatMap { [$0.id] + ($0.derived ?? []).map(\.id) }
    }

    func validate() throws(ModelError) {
        guard version == 1 else { throw ModelError(.invalidManifest, "manifest version \(version) is not supported (expected 1)") }
        guard !models.isEmpty else { throw ModelError(.invalidManifest, "manifest lists no models") }
        var seen = Set<String>()
        for model in models {
            for id in [model.id] + (model.derived ?? []).map(\.id) {
                guard seen.insert(id).inserted else { throw ModelError(.invalidManifest, "result id \(id) appears twice") }
                guard id.range(of: "^[a-z0-9][a-z0-9._-]{0,63}$", options: .regularExpression) != nil else {
                    throw ModelError(.invalidManifest, "id \"\(id)\" must be lowercase letters, digits, '.', '_' or '-'")
                }
            }
            try model.validate()
        }
    }
}

package enum Task: String, Codable, Sendable { case binary, multiclass }
package enum TensorLayout: String, Codable, Sendable { case nhwc = "NHWC", nchw = "NCHW" }
package enum ColorMode: String, Codable, Sendable {
    case rgb = "RGB", gray = "L"
    package var channels: Int { self == .rgb ? 3 : 1 }
}

package struct InputSpec: Codable, Sendable, Equatable {
    package var width: Int
    package var height: Int
    package var layout: TensorLayout
    package var color: ColorMode
    package var resize: String
    package var scale: Float
    package var mean: [Float]
    package var std: [Float]

    package var shape: [Int64] {
        let c = Int64(color.channels), h = Int64(height), w = Int64(width)
        return layout == .nhwc ? [1, h, w, c] : [1, c, h, w]
    }
}

package struct DerivedSpec: Codable, Sendable, Equatable {
    package var id: String
    package var title: String?
    package var task: Task
    /// [negative label, positive label] of the derived binary result.
    package var labels: [String]
    /// Labels of the parent model that make up the negative side; all others are positive.
    package var negative: [String]
    /// How people read the labels ("no_tumor" -> "No tumour"); labels without one are shown as they are.
    package var labelTitles: [String: String]?
}

/// Where a model's fidelity report is and how good it must be for the model to load.
package struct FidelitySpec: Codable, Sendable, Equatable {
    /// The report's file, relative to the manifest (written by `make model-int8`).
    package var report: String
    /// Agreement of the prediction with the reference model, 0...1, below which loading is refused.
    package var minAgreement: Double
}

/// What a model is for (issue 22), declared in its manifest entry; the image checks read it.
package struct ModelScope: Codable, Sendable, Equatable {
    /// For people: "2D brain MRI slices (T1, T1 with contrast, T2, FLAIR)".
    package var description: String?
    /// DICOM modality codes the model accepts ("MR"); a DICOM file's or a declared modality outside them is out of scope.
    package var modalities: [String]?
    /// DICOM Body Part Examined values the model accepts ("BRAIN", "HEAD"); compared upper case, letters and digits only.
    package var bodyParts: [String]?
    /// "2D" for a slice classifier.
    package var slice: String?
    /// The model expects greyscale images: clearly coloured ones are out of scope.
    package var greyscale: Bool?
    /// Limits of the image checks; each defaults as `ImageCheckLimits.Resolved` says.
    package var imageChecks: ImageCheckLimits?

    package init(description: String? = nil, modalities: [String]? = nil, bodyParts: [String]? = nil, slice: String? = nil,
                greyscale: Bool? = nil, imageChecks: ImageCheckLimits? = nil) {
        self.description = description
        self.modalities = modalities
        self.bodyParts = bodyParts
        self.slice = slice
        self.greyscale = greyscale
        self.imageChecks = imageChecks
    }
}

/// The image checks' limits (see `ImageStatistics`). The defaults are about a third of the lowest value among
/// the real held-out brain-MRI slices (models/fit_input_check.py DEFAULT_LIMITS, the same numbers).
package struct ImageCheckLimits: Codable, Sendable, Equatable {
    package var minImageSide: Int?
    package var minGreySpread: Double?
    package var minEntropyBits: Double?
    package var minDetail: Double?
    package var maxColourFraction: Double?

    package init(minImageSide: Int? = nil, minGreySpread: Double? = nil, minEntropyBits: Double? = nil, minDetail: Double? = nil,
                maxColourFraction: Double? = nil) {
        self.minImageSide = minImageSide
        self.minGreySpread = minGreySpread
        self.minEntropyBits = minEntropyBits
        self.minDetail = minDetail
        self.maxColourFraction = maxColourFraction
    }

    package struct Resolved: Sendable, Equatable {
        package var minImageSide: Int
        package var minGreySpread: Double
        package var minEntropyBits: Double
        package var minDetail: Double
        package var maxColourFraction: Double
    }

    package var resolved: Resolved {
        Resolved(minImageSide: minImageSide ?? 128, minGreySpread: minGreySpread ?? 3.0, minEntropyBits: minEntropyBits ?? 1.5,
                 minDetail: minDetail ?? 1.0, maxColourFraction: maxColourFraction ?? 0.02)
    }
}

/// The feature-space check's parameter file (written by models/fit_input_check.py) and its sha256:
/// a file whose checksum differs is refused when the model loads.
package struct InputCheckSpec: Codable, Sendable, Equatable {
    package var file: String
    package var sha256: String
}

package struct ModelSpec: Codable, Sendable, Equatable {
    package var id: String
    package var file: String
    package var task: Task
    package var title: String?
    package var labels: [String]
    /// How people read the labels ("notumor" -> "No tumour"); labels without one are shown as they are.
    package var labelTitles: [String: String]?
    package var input: InputSpec
    package var derived: [DerivedSpec]?
    /// For an int8 model: the quantised engine its file was made for (e.g. "onednn"); the shim selects it
    /// before loading and refuses a file quantised for another. Absent for a float model.
    package var engine: String?
    /// For a model derived from another by an approximation (int8): its fidelity report and the
    /// agreement below which loading it is refused.
    package var fidelity: FidelitySpec?
    /// What the model is for; without it (and without `inputCheck`) its analyses say "not_checked".
    package var scope: ModelScope?
    /// Its fitted feature-space check, if any.
    package var inputCheck: InputCheckSpec?

    /// A binary model may have a single logit (sigmoid) or two (softmax).
    package var expectedOutputs: Set<Int> {
        task == .binary ? [1, 2] : [labels.count]
    }

    func validate() throws(ModelError) {
        func fail(_ why: String) -> ModelError { ModelError(.invalidManifest, "model \(id): \(why)") }
        switch task {
        case .binary: guard labels.count == 2 else { throw fail("a binary model needs exactly 2 labels") }
        case .multiclass: guard labels.count >= 2 else { throw fail("a multiclass model needs at least 2 labels") }
        }
        guard Set(labels).count == labels.count else { throw fail("labels repeat") }
        try validateTitles(labelTitles, of: labels, owner: "model \(id)")
        guard input.resize == "bicubic" else { throw fail("resize \"\(input.resize)\" is not supported (bicubic)") }
        guard (1...4096).contains(input.width), (1...4096).contains(input.height) else { throw fail("input size out of range") }
        let channels = input.color.channels
        guard input.mean.count == channels, input.std.count == channels else {
            throw fail("mean and std need \(channels) values for colour mode \(input.color.rawValue)")
        }
        guard input.std.allSatisfy({ $0 != 0 && $0.isFinite }), input.scale.isFinite, input.scale != 0 else {
            throw fail("scale and std must be finite and non-zero")
        }
        if let engine, engine.range(of: "^[a-z0-9_]{1,32}$", options: .regularExpression) == nil {
            throw fail("engine \"\(engine)\" must be a quantised engine name such as \"onednn\"")
        }
        if let fidelity {
            guard (0...1).contains(fidelity.minAgreement) else { throw fail("fidelity.minAgreement must be within 0...1") }
            guard !fidelity.report.isEmpty else { throw fail("fidelity.report must name the report file") }
        }
        if let inputCheck {
            guard !inputCheck.file.isEmpty else { throw fail("inputCheck.file must name the parameter file") }
            guard inputCheck.sha256.range(of: "^[0-9a-fA-F]{64}$", options: .regularExpression) != nil else {
                throw fail("inputCheck.sha256 must be the parameter file's SHA-256 (64 hex digits; "
                           + "models/fit_input_check.py writes it)")
            }
        }
        if let scope {
            for list in [scope.modalities, scope.bodyParts].compactMap({ $0 }) {
                guard !list.isEmpty, list.allSatisfy({ InputChecker.normalised($0) != nil }) else {
                    throw fail("scope.modalities and scope.bodyParts must list non-empty values when given")
                }
            }
            let l = (scope.imageChecks ?? ImageCheckLimits()).resolved
            guard (1...4096).contains(l.minImageSide), (0...255).contains(l.minGreySpread), (0...8).contains(l.minEntropyBits),
                  (0...255).contains(l.minDetail), (0...1).contains(l.maxColourFraction) else {
                throw fail("scope.imageChecks has a limit out of range")
            }
        }
        for d in derived ?? [] {
            guard d.task == .binary, d.labels.count == 2 else { throw fail("derived result \(d.id) must be binary with 2 labels") }
            guard !d.negative.isEmpty, d.negative.allSatisfy(labels.contains), d.negative.count < labels.count else {
                throw fail("derived result \(d.id) must name some, not all, of the model's labels as negative")
            }
            try validateTitles(d.labelTitles, of: d.labels, owner: "model \(id): derived result \(d.id)")
        }
    }
}

func describe(_ error: Error) -> String {
    switch error {
    case DecodingError.keyNotFound(let key, let ctx):
        return "missing key \(path(ctx.codingPath + [key]))"
    case DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx):
        return "wrong type at \(path(ctx.codingPath)): \(ctx.debugDescription)"
    case DecodingError.dataCorrupted(let ctx):
        return "\(ctx.debugDescription) at \(path(ctx.codingPath))"
    default:
        return "\(error)"
    }
}

private func path(_ keys: [CodingKey]) -> String {
    keys.reduce("") { path, key in
        if let index = key.intValue { return path + "[\(index)]" }
        return path.isEmpty ? key.stringValue : path + "." + key.stringValue
    }
}

/// Titles must name existing labels and be short, printable text (they end up on screens and reports).
private func validateTitles(_ titles: [String: String]?, of labels: [String], owner: String) throws(ModelError) {
    for (label, title) in titles ?? [:] {
        guard labels.contains(label) else {
            throw ModelError(.invalidManifest, "\(owner): labelTitles names \"\(label)\", which is not one of its labels")
        }
        let trimmed = title.trimmingCharacters(in: .whitespaces)
        guard (1...64).contains(trimmed.count), !title.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw ModelError(.invalidManifest, "\(owner): the title of \"\(label)\" must be 1 to 64 printable characters")
        }
    }
}
