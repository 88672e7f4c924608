import ArgumentParser
import Foundation
import MediscopeImaging
import MediscopeInference

struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Analyse scans: probabilities, prediction and a Grad-CAM overlay per model result.",
        discussion: "Exit status: 0 all analysed, 2 a bad input (the message names the file), 3 a model problem.")

    @Argument(help: "JPEG, PNG or DICOM scans.")
    var images: [String]

    @Flag(help: "Print JSON, including each Grad-CAM map at the layer's resolution, normalised to [0, 1].")
    var json = false

    @Option(help: "Write the scan and the overlays into this folder (default: next to each image).")
    var out: String?

    @Flag(help: "Do not write the scan and overlay images.")
    var noImages = false

    @Option(help: "Overlay image format: webp, png or jpeg.")
    var overlayFormat: String = "png"

    @Option(help: "libtorch intra-op threads (default: all cores).")
    var threads: Int?

    @Option(help: "Model manifest.")
    var manifest: String = ProcessInfo.processInfo.environment["MEDISCOPE_MANIFEST"] ?? "models/manifest.json"

    @Option(help: "DICOM frame to analyse, from 1 (default: the middle frame of a multi-frame file).")
    var frame: Int?

    @Option(help: "Refuse images with more pixels than this.")
    var maxPixels: Int = ImageLimits().maxPixels

    func validate() throws {
        if let frame, frame < 1 { throw ValidationError("--frame counts from 1") }
        guard let format = ImageFormat(rawValue: overlayFormat), format != .dicom else {
            throw ValidationError("--overlay-format must be webp, png or jpeg")
        }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        TorchThreads.set(threads ?? ProcessInfo.processInfo.activeProcessorCount)
        let loadedManifest: ModelManifest
        do { loadedManifest = try ModelManifest.load(from: URL(fileURLWithPath: manifest)) } catch {
            printError("mediscope: \(error.message)")
            throw ExitStatus.modelProblem
        }
        var options = PipelineOptions()
        options.limits = ImageLimits(maxPixels: maxPixels)
        options.renderImages = !noImages
        options.overlayFormat = ImageFormat(rawValue: overlayFormat)!
        let pipeline = AnalysisPipeline(manifest: loadedManifest, options: options)

        var reports: [ImageReport] = []
        var badInput = false
        for path in images {
            var report = ImageReport(path: path)
            do {
                guard let bytes = FileManager.default.contents(atPath: path) else {
                    throw AnalysisError.unreadable("\(path): cannot read the file")
                }
                let analysis = try pipeline.analyze(imageBytes: [UInt8](bytes), frame: frame.map { $0 - 1 })
                report.analysis = analysis
                report.files = try write(analysis, for: path)
            } catch let error as AnalysisError {
                switch error {
                case .badImage(let e):
                    report.error = ReportedError(kind: "badInput", message: "\(path): \(e.message)")
                    badInput = true
                case .unreadable(let message):
                    report.error = ReportedError(kind: "badInput", message: message)
                    badInput = true
                case .model(let e):
                    report.error = ReportedError(kind: "model", message: e.message)
                    emit(reports + [report])
                    throw ExitStatus.modelProblem
                }
            }
            reports.append(report)
            if !json, report.analysis != nil { print(report.text) }
            if let error = report.error, !json { printError("mediscope: \(error.message)") }
        }
        if json { emit(reports) }
        if badInput { throw ExitStatus.badInput }
    }

    private func emit(_ reports: [ImageReport]) {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data = try! encoder.encode(["images": reports])
            print(String(decoding: data, as: UTF8.self))
        } else if let last = reports.last, let error = last.error {
            printError("mediscope: \(error.message)")
        }
    }

    /// Writes `<stem>.scan.jpg` and `<stem>.<result>.<format>` into --out or next to the image.
    private func write(_ analysis: Analysis, for path: String) throws -> [String] {
        guard let scan = analysis.scan else { return [] }
        let source = URL(fileURLWithPath: path)
        let folder = out.map { URL(fileURLWithPath: $0) } ?? source.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let stem = source.deletingPathExtension().lastPathComponent
        var written: [String] = []
        func save(_ image: EncodedImage, _ name: String) throws {
            let url = folder.appendingPathComponent(name)
            try Data(image.bytes).write(to: url, options: .atomic)
            written.append(url.path)
        }
        try save(scan, "\(stem).scan.jpg")
        for result in analysis.results {
            if let overlay = analysis.overlays[result.id] {
                try save(overlay, "\(stem).\(result.id).gradcam.\(overlay.format.fileExtension)")
            }
        }
        return written
    }
}

struct ReportedError: Encodable {
    var kind: String
    var message: String
}

/// What `analyze` says about one image, as text or JSON.
struct ImageReport: Encodable {
    var path: String
    var analysis: Analysis?
    var files: [String] = []
    var error: ReportedError?

    init(path: String) { self.path = path }

    enum CodingKeys: String, CodingKey { case path, width, height, format, exifOrientation, dicom, inputCheck, results, timings, files, error }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(path, forKey: .path)
        try c.encodeIfPresent(error, forKey: .error)
        guard let analysis else { return }
        try c.encode(analysis.imageWidth, forKey: .width)
        try c.encode(analysis.imageHeight, forKey: .height)
        try c.encode(analysis.format.rawValue, forKey: .format)
        try c.encodeIfPresent(analysis.orientation?.rawValue, forKey: .exifOrientation)
        try c.encodeIfPresent(analysis.dicom, forKey: .dicom)
        try c.encode(analysis.inputCheck, forKey: .inputCheck)
        try c.encode(analysis.results, forKey: .results)
        try c.encode(analysis.timings, forKey: .timings)
        try c.encode(files, forKey: .files)
    }

    var text: String {
        guard let analysis else { return "" }
        // Width x height as analysed, i.e. upright: say so when the file had to be turned.
        let turned = analysis.orientation.map { ", EXIF orientation \($0.rawValue): \($0.summary)" } ?? ""
        var lines = ["\(path) (\(analysis.imageWidth)x\(analysis.imageHeight)\(turned)\(analysis.dicom.map(windowSummary) ?? ""))"]
        for r in analysis.results {
            lines.append("  \(r.title) [\(r.id)]: \(r.prediction), confidence \(percent(r.confidence))")
            let width = r.probabilities.map(\.label.count).max() ?? 0
            for p in r.probabilities {
                let bar = String(repeating: "#", count: Int((p.probability * 30).rounded()))
                lines.append("    \(p.label.padding(toLength: width, withPad: " ", startingAt: 0))  \(String(format: "%.4f", p.probability))  \(bar)")
            }
        }
        let t = analysis.timings
        var timing = "  timings (ms): decode \(ms(t.decode)), preprocess \(ms(t.preprocess)), forward \(ms(t.forward)), "
            + "Grad-CAM \(ms(t.gradCAM)), encode \(ms(t.encode))"
        if t.modelLoad > 0 { timing += ", model load \(ms(t.modelLoad))" }
        lines.append(timing)
        for file in files { lines.append("  wrote \(file)") }
        return lines.joined(separator: "\n")
    }
}

/// ", DICOM frame 2 of 3, window 40/400" (centre/width), as the analysis used it.
private func windowSummary(_ d: DicomRendering) -> String {
    var s = ", DICOM frame \(d.frame) of \(d.numberOfFrames)"
    switch d.voi {
    case "window", "frameRange":
        s += ", \(d.voi == "window" ? "window" : "full range") \(String(format: "%g/%g", d.windowCenter ?? 0, d.windowWidth ?? 0))"
    case "lutSequence": s += ", VOI LUT"
    default: break
    }
    return s
}

private func percent(_ v: Double) -> String { String(format: "%.1f%%", v * 100) }
private func ms(_ v: Double) -> String { String(format: "%.1f", v) }

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

