import CTorchLoader
import Foundation
import MediscopeImaging

/// Which class score Grad-CAM explains: the top logit, or logsumexp(positive logits) - logsumexp(negative logits).
package struct CAMTarget: Sendable, Equatable {
    package var topClass: Bool
    package var positive: [Int32]
    package var negative: [Int32]
    package init(positive: [Int32], negative: [Int32] = []) { topClass = false; self.positive = positive; self.negative = negative }
    package static let topClass = CAMTarget(top: true)
    private init(top: Bool) { topClass = top; positive = []; negative = [] }
}

/// The raw output of one run of a model: logits, one Grad-CAM map per target, and timings.
package struct ModelOutput: Sendable {
    package var logits: [Float]
    /// Grad-CAM maps at the layer's resolution, ReLU applied, not normalised.
    package var cams: [FloatMap]
    /// The mean over H and W of the `features` activations, one value per channel (the input check's
    /// feature vector; computed from the activations Grad-CAM uses, no extra pass).
    package var pooledFeatures: [Float]
    package var featuresMilliseconds: Double
    package var headMilliseconds: Double
    package var gradCAMMilliseconds: Double
}

/// Intra-op thread count of libtorch for this process. Setting it never opens libtorch by itself: the
/// count is applied when the first model loads.
package enum TorchThreads {
    /// Sets the count (now, or when libtorch opens) and returns the count in force or to be.
    @discardableResult
    package static func set(_ threads: Int) -> Int { TorchLibrary.setThreads(threads) }
    /// The count in force; opens libtorch when nothing was set yet, to ask it.
    package static var current: Int {
        if let threads = TorchLibrary.threads { return threads }
        guard let library = try? TorchLibrary.shared() else { return 1 }
        return Int(library.api.pointee.get_num_threads())
    }
}

/// Safe owner of one loaded TorchScript model. Runs are serialised: one model, one run at a time.
package final class TorchModel: @unchecked Sendable {
    // Only touched while `lock` is held (or in deinit, when nothing else can hold a reference).
    private let pointer: OpaquePointer
    private let api: UnsafePointer<ctorch_api>
    private let lock = NSLock()
    package let path: String

    /// Loads the TorchScript file at `path`. `quantizedEngine` is nil for a float model and, for an int8
    /// one, the engine its file was quantised for (the manifest's `engine`); a mismatch is refused.
    package init(path: String, quantizedEngine: String? = nil) throws(ModelError) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ModelError(.missing, "model file \(path) does not exist (run `make model`)")
        }
        let api = try TorchLibrary.shared().api
        var err = ctorch_error()
        guard let model = api.pointee.model_load(path, quantizedEngine, &err) else {
            throw ModelError(.corrupt, "cannot load model \(path): \(TorchLibrary.message(err))")
        }
        self.pointer = model
        self.api = api
        self.path = path
    }

    deinit {
        api.pointee.model_free(pointer)
    }

    /// Runs features -> head on `input` (laid out as `shape` says) and Grad-CAM for each target.
    package func run(input: [Float], shape: [Int64], targets: [CAMTarget]) throws(ModelError) -> ModelOutput {
        guard input.count == shape.reduce(1, *) else {
            throw ModelError(.runtime, "input has \(input.count) values but shape \(shape) needs \(shape.reduce(1, *))")
        }
        var result = ctorch_result()
        var err = ctorch_error()
        let model = pointer
        let status: Int32 = lock.withLock {
            withCTargets(targets) { cTargets in
                input.withUnsafeBufferPointer { x in
                    shape.withUnsafeBufferPointer { s in
                        api.pointee.model_run(model, x.baseAddress, s.baseAddress, Int32(s.count),
                                         cTargets.baseAddress, Int32(cTargets.count), &result, &err)
                    }
                }
            }
        }
        defer { api.pointee.result_free(&result) }
        guard status == 0 else { throw ModelError(.runtime, "model \(path) failed: \(TorchLibrary.message(err))") }

        let logits = Array(UnsafeBufferPointer(start: result.logits, count: Int(result.logit_count)))
        let h = Int(result.cam_height), w = Int(result.cam_width)
        var cams: [FloatMap] = []
        for i in 0..<Int(result.cam_count) {
            let start = result.cams + i * h * w
            cams.append(FloatMap(width: w, height: h, values: Array(UnsafeBufferPointer(start: start, count: h * w))))
        }
        let pooled = result.pooled.map { Array(UnsafeBufferPointer(start: $0, count: Int(result.pooled_count))) } ?? []
        return ModelOutput(logits: logits, cams: cams, pooledFeatures: pooled, featuresMilliseconds: result.features_ms,
                           headMilliseconds: result.head_ms, gradCAMMilliseconds: result.gradcam_ms)
    }

    /// Median time of the bare frozen forward pass, for the benchmark.
    package func benchmarkForward(input: [Float], shape: [Int64], iterations: Int) throws(ModelError) -> Double {
        var median = 0.0
        var err = ctorch_error()
        let model = pointer
        let status: Int32 = lock.withLock {
            input.withUnsafeBufferPointer { x in
                shape.withUnsafeBufferPointer { s in
                    api.pointee.model_bench_forward(model, x.baseAddress, s.baseAddress, Int32(s.count),
                                                    Int32(clamping: iterations), &median, &err)
                }
            }
        }
        guard status == 0 else { throw ModelError(.runtime, "model \(path) failed: \(TorchLibrary.message(err))") }
        return median
    }
}

/// Lends C views of the targets' index arrays for the duration of `body`.
private func withCTargets<R>(_ targets: [CAMTarget], _ body: (UnsafeBufferPointer<ctorch_cam_target>) -> R) -> R {
    // Flatten all indices into one array so a single pointer stays valid for every target.
    var flat: [Int32] = []
    var ranges: [(Int, Int, Int, Int, Bool)] = []
    for t in targets {
        ranges.append((flat.count, t.positive.count, flat.count + t.positive.count, t.negative.count, t.topClass))
        flat += t.positive
        flat += t.negative
    }
    return flat.withUnsafeBufferPointer { indices in
        let cTargets = ranges.map { r in
            ctorch_cam_target(explain_top_class: r.4 ? 1 : 0, positive: indices.baseAddress.map { $0 + r.0 }, positive_count: Int32(r.1),
                              negative: indices.baseAddress.map { $0 + r.2 }, negative_count: Int32(r.3))
        }
        return cTargets.withUnsafeBufferPointer(body)
    }
}
