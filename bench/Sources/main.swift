// Pipeline benchmark: one image, warm-up, then N timed analyses at a given thread count.
// Prints one JSON object; bench/run.sh collects them into bench/RESULTS.md.
import Foundation
import Glibc
import MediscopeImaging
import MediscopeInference

struct Options {
    var image = ""
    var manifest = "models/manifest.json"
    var threads = 1
    var runs = 50
    var warmup = 5
}

func parse() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst().makeIterator()
    while let a = args.next() {
        switch a {
        case "--image": o.image = args.next() ?? ""
        case "--manifest": o.manifest = args.next() ?? o.manifest
        case "--threads": o.threads = Int(args.next() ?? "") ?? o.threads
        case "--runs": o.runs = Int(args.next() ?? "") ?? o.runs
        case "--warmup": o.warmup = Int(args.next() ?? "") ?? o.warmup
        default:
            FileHandle.standardError.write(Data("usage: mediscope-bench --image F [--manifest M] [--threads N] [--runs N] [--warmup N]\n".utf8))
            exit(2)
        }
    }
    return o
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.isEmpty ? .nan : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
}

func ms(since start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
}

/// VmRSS of this process now, in MB (MiB).
func currentRSSMegabytes() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return .nan }
    return kb / 1024
}

func peakRSSMegabytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024  // Linux reports KiB
}

if CommandLine.arguments.dropFirst().first == "decoder-budgets" {
    do { print(try DecoderBudgets.markdown()) } catch {
        FileHandle.standardError.write(Data("decoder-budgets: \(error)\n".utf8))
        exit(1)
    }
    exit(0)
}

if CommandLine.arguments.dropFirst().first == "store-backup" {
    let sizes = CommandLine.arguments.dropFirst(2).compactMap { Int($0) }
    do { print(try StoreBackupBench.markdown(sizes: sizes.isEmpty ? [1000, 5000] : sizes)) } catch {
        FileHandle.standardError.write(Data("store-backup: \(error)\n".utf8))
        exit(1)
    }
    exit(0)
}

if CommandLine.arguments.dropFirst().first == "input-check" {
    do { print(try InputCheckBench.markdown(arguments: Array(CommandLine.arguments.dropFirst(2)))) } catch {
        FileHandle.standardError.write(Data("input-check: \(error)\n".utf8))
        exit(1)
    }
    exit(0)
}

if CommandLine.arguments.dropFirst().first == "report" {
    // mediscope-bench report DIR THREADS...
    let args = Array(CommandLine.arguments.dropFirst(2))
    guard let dir = args.first else { exit(2) }
    print(Report.markdown(dir: URL(fileURLWithPath: dir), threads: args.dropFirst().compactMap { Int($0) }))
    exit(0)
}

let options = parse()
let start = ContinuousClock.now
TorchThreads.set(options.threads)
do {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: options.image)))
    let pipeline = AnalysisPipeline(manifest: try ModelManifest.load(from: URL(fileURLWithPath: options.manifest)))
    // Peak at load: every model loaded (and checked with one blank run), no analysis yet.
    for spec in pipeline.manifest.models { _ = try pipeline.model(spec) }
    let loadPeakRSS = peakRSSMegabytes(), afterLoadRSS = currentRSSMegabytes()

    let first = try pipeline.analyze(imageBytes: bytes)
    let firstResult = ms(since: start)
    for _ in 0..<options.warmup { _ = try pipeline.analyze(imageBytes: bytes) }

    var stages: [String: [Double]] = [:]
    var wall: [Double] = []
    for _ in 0..<options.runs {
        let t0 = ContinuousClock.now
        let a = try pipeline.analyze(imageBytes: bytes)
        wall.append(ms(since: t0))
        let t = a.timings
        for (k, v) in [("decode", t.decode), ("preprocess", t.preprocess), ("forward", t.forward),
                       ("gradCAM", t.gradCAM), ("encode", t.encode)] { stages[k, default: []].append(v) }
    }

    // The bare frozen forward pass of the same module, in libtorch, on the same input tensor.
    let spec = pipeline.manifest.models[0]
    let (loaded, _) = try pipeline.model(spec)
    let image = try ImageDecoder.decode(bytes).converted(toChannels: spec.input.color.channels)
    let tensor = Preprocessor.tensor(from: image, spec: spec.input)
    let bareForward = try loaded.model.benchmarkForward(input: tensor, shape: spec.input.shape, iterations: options.runs)

    var report: [String: Any] = [
        "threads": options.threads, "runs": options.runs, "warmup": options.warmup,
        "image": options.image, "imageWidth": first.imageWidth, "imageHeight": first.imageHeight,
        "firstResultIncludingLoadMs": firstResult, "modelLoadMs": first.timings.modelLoad,
        "analysisMedianMs": median(wall), "bareForwardLibtorchMedianMs": bareForward,
        "peakRSSMB": peakRSSMegabytes(), "loadPeakRSSMB": loadPeakRSS, "afterLoadRSSMB": afterLoadRSS,
        "steadyRSSMB": currentRSSMegabytes(), "manifest": options.manifest,
        "overlayBytes": first.overlays.values.map(\.bytes.count).reduce(0, +),
        "scanBytes": first.scan?.bytes.count ?? 0,
    ]
    report["stageMedianMs"] = stages.mapValues(median)
    let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
    print(String(decoding: data, as: UTF8.self))
} catch {
    FileHandle.standardError.write(Data("mediscope-bench: \(error)\n".utf8))
    exit(1)
}
