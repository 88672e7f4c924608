import ArgumentParser
import Foundation
import MediscopeImaging
import MediscopeInference

struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Analyse scans: probabilities, prediction and a Grad-CAM overlay per model result.",
        discussion: """
            Images are written as <name>.scan.jpg and <name>.<result>.gradcam.<format>, <name> being the file's \
            name without its extension. Files of one run that would write the same names into one folder get \
            their whole file names (1.2.3.4, 1.2.3.5), else their folders' names too (IM000001 from two series \
            with one --out: seriesA-IM000001, seriesB-IM000001); when even that is ambiguous, nothing is \
            analysed (exit 2).

            Exit status: 0 all analysed, 2 a bad input (the message names the file), 3 a model problem.
            """)

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

    @Option(help: "libtorch intra-op threads, at most the machine's cores (default: all cores).")
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
        // More threads than cores only make libtorch slower; 100,000 of them never finished starting.
        let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
        if let threads, threads > cores {
            printError("mediscope: --threads \(threads) is more than this machine's \(cores) cores; using \(cores)")
        }
        TorchThreads.set(min(threads ?? cores, cores))
        var names: [String: String] = [:]
        if !noImages {
            do { names = try Self.outputNames(images, out: out) } catch {
                printError("mediscope: \(error.message)")
                throw ExitStatus.badInput
            }
            for note in Self.renamingNotes(images, names) { printError("mediscope: \(note)") }
        }
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
                report.files = try write(analysis, for: path, name: names[path] ?? Self.stem(path))
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

    /// Writes `<name>.scan.jpg` and `<name>.<result>.gradcam.<format>` into --out or next to the image.
    private func write(_ analysis: Analysis, for path: String, name stem: String) throws -> [String] {
        guard let scan = analysis.scan else { return [] }
        let folder = Self.folder(for: path, out: out)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
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

extension Analyze {
    /// Why the inputs' images cannot be given names of their own.
    struct NamingConflict: Error { let message: String }

    /// The file's name without its extension: what its images are named after.
    static func stem(_ path: String) -> String { URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent }

    /// Where the images of `path` go: --out, or the image's own folder.
    static func folder(for path: String, out: String?) -> URL {
        (out.map { URL(fileURLWithPath: $0) } ?? URL(fileURLWithPath: path).deletingLastPathComponent()).standardizedFileURL
    }

    /// The name each input's images get, by path: its stem; where other files of the run would write the
    /// same names into the same folder (compared without case: a Mac's disk would not tell them apart), its
    /// whole file name (1.2.3.4 and 1.2.3.5, IM1.dcm and IM1.png), then "<parent folder>-<stem>" (IM000001
    /// of two series), then "<parent folder>-<file name>". Names still shared are a conflict, named before
    /// anything runs. One file given twice (or through a link) is one file: it writes the same images.
    static func outputNames(_ paths: [String], out: String?) throws(NamingConflict) -> [String: String] {
        func identity(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path }
        func name(_ path: String, _ level: Int) -> String {
            let url = URL(fileURLWithPath: identity(path))
            let parent = url.deletingLastPathComponent().lastPathComponent
            switch level {
            case 0: return stem(path)
            case 1: return URL(fileURLWithPath: path).lastPathComponent
            case 2: return "\(parent)-\(stem(path))"
            default: return "\(parent)-\(URL(fileURLWithPath: path).lastPathComponent)"
            }
        }
        var levels = [String: Int](paths.map { ($0, 0) }, uniquingKeysWith: { a, _ in a })
        while true {
            var writers: [String: [String]] = [:]   // folder and name -> the paths that would write it
            for path in levels.keys.sorted() {
                writers[folder(for: path, out: out).path + "\u{0}" + name(path, levels[path]!).lowercased(), default: []].append(path)
            }
            let shared = writers.values.filter { Set($0.map(identity)).count > 1 }
            if shared.isEmpty { break }
            for group in shared {
                guard group.allSatisfy({ levels[$0]! < 3 }) else {
                    throw NamingConflict(message: "\(group.joined(separator: " and ")) would write the same images "
                                         + "(\(name(group[0], levels[group[0]]!)).scan.jpg ...) into \(folder(for: group[0], out: out).path); "
                                         + "nothing was analysed. Rename one, or analyse them with different --out folders")
                }
                for path in group { levels[path]! += 1 }
            }
        }
        var names: [String: String] = [:]
        for (path, level) in levels { names[path] = name(path, level) }
        return names
    }

    /// One line per input whose images are not named after its stem, saying what they are named.
    static func renamingNotes(_ paths: [String], _ names: [String: String]) -> [String] {
        var seen = Set<String>()
        return paths.compactMap { path in
            guard let name = names[path], name != stem(path), seen.insert(path).inserted else { return nil }
            return "the images of \(path) are named \(name).* (another file of this run has the name \(stem(path)))"
        }
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

