import Foundation
import MediscopeImaging
import Synchronization

package struct LabelProbability: Codable, Sendable, Equatable {
    package var label: String
    /// The manifest's title for the label (what people read); the label itself when it has none.
    package var title: String
    package var probability: Double
}

/// One result of an analysis: a model's own classification or one derived from it.
package struct ResultOutcome: Codable, Sendable {
    package var id: String
    package var model: String
    package var title: String
    package var task: Task
    package var probabilities: [LabelProbability]
    package var prediction: String
    package var confidence: Double
    /// The label whose score Grad-CAM explains (the prediction for multiclass, the positive label for binary).
    package var explainedLabel: String
    /// Grad-CAM at the layer's own resolution, min-max normalised to [0, 1].
    package var gradCAM: FloatMap

    package func probability(of label: String) -> Double? {
        probabilities.first { $0.label == label }?.probability
    }
}

/// Wall-clock milliseconds per stage of one analysis.
package struct StageTimings: Codable, Sendable {
    package var decode = 0.0
    package var preprocess = 0.0
    package var forward = 0.0
    package var gradCAM = 0.0
    package var encode = 0.0
    package var modelLoad = 0.0
    /// The input check's own work: image statistics and the feature-space distance (not in `byStage`).
    package var inputCheck = 0.0
    package var total: Double { decode + preprocess + forward + gradCAM + encode + modelLoad + inputCheck }

    /// Milliseconds by stage name, as stored with an analysis and shown by the API.
    package var byStage: [String: Double] {
        ["decode": decode, "preprocess": preprocess, "forward": forward, "gradCAM": gradCAM, "encode": encode,
         "modelLoad": modelLoad]
    }
}

/// An image ready to send or store.
package struct EncodedImage: Sendable {
    package var format: ImageFormat
    package var width: Int
    package var height: Int
    package var bytes: [UInt8]
}

package struct Analysis: Sendable {
    /// Size of the upright image (after the EXIF orientation, if any, was applied).
    package var imageWidth: Int
    package var imageHeight: Int
    package var format: ImageFormat
    /// The EXIF orientation the file carried and that was applied before analysis and display.
    package var orientation: ExifOrientation?
    /// For a DICOM file: the frame and window that made the analysed 8-bit image.
    package var dicom: DicomRendering?
    /// For a DICOM file: its patient and study attributes (patient data: never logged).
    package var dicomAttributes: DicomAttributes?
    package var results: [ResultOutcome]
    /// Whether the image is one the models were made for (issue 22); never changes `results`.
    package var inputCheck: InputCheck
    package var timings: StageTimings
    /// Per model id: the stages that belong to one model (preprocess, forward, Grad-CAM, model load).
    package var modelTimings: [String: StageTimings] = [:]
    /// The scan at display size, and one Grad-CAM overlay per result id (when rendering was asked for).
    package var scan: EncodedImage?
    package var overlays: [String: EncodedImage]
    /// With overlays drawn later (`analyze(overlays: .later)`): the display-size scan without loss (PNG,
    /// `LosslessScan`), what they are drawn on.
    package var losslessScan: EncodedImage? = nil
    /// The style the overlays are (or, drawn later, will be) drawn in; nil when no images were rendered.
    package var overlayStyle: OverlayStyle? = nil
}

/// When an analysis draws its Grad-CAM overlays.
package enum OverlayDrawing: Sendable {
    /// Now, encoded into `Analysis.overlays` (the command line).
    case now
    /// Not now: the analysis keeps what they are drawn from (`Analysis.losslessScan`, each result's
    /// map, `Analysis.overlayStyle`), and they are drawn when first looked at (the server).
    case later
}

package struct PipelineOptions: Sendable {
    package var limits = ImageLimits()
    /// Longest side of the scan and overlays as shown to people; smaller scans are not enlarged.
    package var displayMaxSide = 512
    package var renderImages = true
    package var overlayFormat: ImageFormat = .webp
    package var scanJPEGQuality = 88
    package var overlayQuality: Float = 80
    package init() {}

    /// How overlays are drawn and encoded (a DICOM upload's are WebP).
    package var overlayStyle: OverlayStyle { OverlayStyle(format: overlayFormat, quality: overlayQuality) }
}

/// decode -> preprocess -> forward -> softmax -> Grad-CAM -> overlays, with models loaded on first use.
package final class AnalysisPipeline: Sendable {
    package let manifest: ModelManifest
    package let options: PipelineOptions
    private let loaded = Mutex<[String: LoadedModel]>([:])

    /// A model that passed its check, the number of logits it returns, and its input check.
    package struct LoadedModel: Sendable {
        package let model: TorchModel
        package let outputs: Int
        package let inputChecker: InputChecker
    }

    package init(manifest: ModelManifest, options: PipelineOptions = PipelineOptions()) {
        self.manifest = manifest
        self.options = options
    }

    package var loadedModelIDs: [String] { loaded.withLock { Array($0.keys).sorted() } }

    /// The loaded model, loading and checking it first if needed. Returns the load time too.
    package func model(_ spec: ModelSpec) throws(ModelError) -> (LoadedModel, Double) {
        let result: Result<(LoadedModel, Double), ModelError> = loaded.withLock { models in
            if let model = models[spec.id] { return .success((model, 0)) }
            let start = ContinuousClock.now
            do {
                _ = try FidelityReport.checked(spec, in: manifest)
                let featureCheck = try FeatureCheck.load(spec, in: manifest)
                let model = try TorchModel(path: manifest.fileURL(of: spec).path, quantizedEngine: spec.engine)
                let (outputs, channels) = try Self.check(model, against: spec)
                if let featureCheck, featureCheck.dimensions != channels {
                    throw ModelError(.wrongShape, "model \(spec.id): its input check was fitted on \(featureCheck.dimensions) "
                                     + "features but the model's `features` has \(channels) channels (refit with models/fit_input_check.py)")
                }
                let checked = LoadedModel(model: model, outputs: outputs,
                                          inputChecker: InputChecker(modelID: spec.id, scope: spec.scope, featureCheck: featureCheck))
                models[spec.id] = checked
                return .success((checked, milliseconds(since: start)))
            } catch let error as ModelError {
                return .failure(error)
            } catch {
                return .failure(ModelError(.runtime, "\(error)"))
            }
        }
        return try result.get()
    }

    /// A first run on a blank input proves the model's shapes agree with the manifest, and warms it up.
    /// Returns the number of logits and of feature channels.
    private static func check(_ model: TorchModel, against spec: ModelSpec) throws(ModelError) -> (Int, Int) {
        let shape = spec.input.shape
        let blank = [Float](repeating: 0, count: Int(shape.reduce(1, *)))
        let output: ModelOutput
        do {
            output = try model.run(input: blank, shape: shape, targets: [CAMTarget(positive: [0])])
        } catch {
            throw ModelError(.wrongShape, "model \(spec.id) does not accept input \(shape): \(error.message)")
        }
        guard spec.expectedOutputs.contains(output.logits.count) else {
            throw ModelError(.wrongShape, "model \(spec.id) returns \(output.logits.count) outputs but the manifest "
                             + "lists \(spec.labels.count) labels (\(spec.labels.joined(separator: ", ")))")
        }
        return (output.logits.count, output.pooledFeatures.count)
    }

    /// Analyses one image file (JPEG, PNG, WebP or DICOM). `frame` (0-based) chooses a DICOM file's frame,
    /// nil its middle one; other formats ignore it. `declared` is what the uploader says the image is (a
    /// form's modality or body part), checked against each model's scope like a DICOM file's own tags.
    /// `overlays`: drawn now, or kept to be drawn when first looked at (the same pixels either way).
    package func analyze(imageBytes: [UInt8], frame: Int? = nil, declared: InputDeclaration = InputDeclaration(),
                        overlays: OverlayDrawing = .now) throws(AnalysisError) -> Analysis {
        var timings = StageTimings()
        var clock = ContinuousClock.now
        func lap() -> Double {
            let ms = milliseconds(since: clock)
            clock = ContinuousClock.now
            return ms
        }

        // What the clinician saw is what is analysed: a viewer applies the EXIF orientation, so do we.
        let decoded: DecodedImage
        do { decoded = try ImageDecoder.decodeUpright(imageBytes, limits: options.limits, frame: frame) } catch { throw .badImage(error) }
        let image = decoded.image
        timings.decode = lap()
        // Image statistics once for every model's image checks (before inference; cheap: <= 256x256 samples).
        let statistics = ImageStatistics(image)
        timings.inputCheck = lap()
        var checks: [(model: String, check: InputCheck)] = []

        var results: [ResultOutcome] = []
        var inputs: [ColorMode: PixelImage] = [:]
        var perModel: [String: StageTimings] = [:]
        for spec in manifest.models {
            var own = StageTimings()
            // Model loading is timed apart from the stages of the analysis itself.
            let model: LoadedModel
            do {
                let (m, loadMs) = try self.model(spec)
                model = m
                own.modelLoad = loadMs
            } catch { throw .model(error) }
            _ = lap()

            let converted = inputs[spec.input.color] ?? image.converted(toChannels: spec.input.color.channels)
            inputs[spec.input.color] = converted
            let tensor = Preprocessor.tensor(from: converted, spec: spec.input)
            own.preprocess = lap()

            let heads = ResultHeads(spec: spec, outputs: model.outputs)
            let output: ModelOutput
            do { output = try model.model.run(input: tensor, shape: spec.input.shape, targets: heads.targets()) }
            catch { throw .model(error) }
            _ = lap()
            own.forward = output.featuresMilliseconds + output.headMilliseconds
            own.gradCAM = output.gradCAMMilliseconds
            do { results += try heads.outcomes(output) } catch { throw .model(error) }
            _ = lap()
            let checker = model.inputChecker
            let reasons = checker.imageReasons(statistics, dicom: decoded.dicomAttributes, declared: declared)
            checks.append((spec.id, checker.verdict(imageReasons: reasons, pooledFeatures: output.pooledFeatures)))
            own.inputCheck = lap()
            timings.inputCheck += own.inputCheck
            perModel[spec.id] = own
            timings.modelLoad += own.modelLoad
            timings.preprocess += own.preprocess
            timings.forward += own.forward
            timings.gradCAM += own.gradCAM
        }
        _ = lap()

        var analysis = Analysis(imageWidth: image.width, imageHeight: image.height, format: decoded.format,
                                orientation: decoded.orientation, dicom: decoded.dicom, dicomAttributes: decoded.dicomAttributes,
                                results: results, inputCheck: InputCheck.combine(checks), timings: timings,
                                modelTimings: perModel, scan: nil, overlays: [:])
        if options.renderImages {
            do { try render(image, overlays: overlays, into: &analysis) } catch { throw .badImage(error) }
            analysis.timings.encode = lap()
        }
        return analysis
    }

    private func render(_ image: PixelImage, overlays: OverlayDrawing, into analysis: inout Analysis) throws(ImagingError) {
        // A gray scan (one channel, or R = G = B everywhere, as most exported MRI JPEGs are) stays one
        // channel: a third of the resizing and encoding on the upload's path, and its JPEG decodes to the
        // very pixels an RGB one would (Y = the gray value, Cb = Cr = 128 exactly).
        let scanImage: PixelImage
        if image.channels == 1 {
            scanImage = image
        } else {
            let rgb = image.converted(toChannels: 3)
            scanImage = LosslessScan.grayPlane(rgb) ?? rgb
        }
        let (w, h) = displaySize(width: scanImage.width, height: scanImage.height, maxSide: options.displayMaxSide)
        let display = (w, h) == (scanImage.width, scanImage.height) ? scanImage : scanImage.resized(width: w, height: h)
        analysis.scan = EncodedImage(format: .jpeg, width: w, height: h,
                                     bytes: try ImageEncoder.jpeg(display, quality: options.scanJPEGQuality))
        let style = options.overlayStyle
        analysis.overlayStyle = style
        switch overlays {
        case .later:
            analysis.losslessScan = EncodedImage(format: .png, width: w, height: h, bytes: try LosslessScan.encode(display))
        case .now:
            for result in analysis.results {
                analysis.overlays[result.id] = EncodedImage(format: style.format, width: w, height: h,
                                                            bytes: try style.render(display, cam: result.gradCAM))
            }
        }
    }
}

func displaySize(width: Int, height: Int, maxSide: Int) -> (Int, Int) {
    let longest = max(width, height)
    guard longest > maxSide, maxSide > 0 else { return (width, height) }
    let scale = Double(maxSide) / Double(longest)
    return (max(1, Int((Double(width) * scale).rounded())), max(1, Int((Double(height) * scale).rounded())))
}

func milliseconds(since start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
}
