import Foundation
import MediscopeInference
import MediscopeServer

/// The analysis pipeline an inference pool's fork server made, with every model of the manifest loaded,
/// before it forked the workers: each worker uses it, sharing the weights copy-on-write.
enum PreloadedPipeline {
    // Written once in the fork server before any fork, then only read (workers are single-threaded).
    nonisolated(unsafe) private(set) static var shared: AnalysisPipeline?

    /// Loads every model of the manifest at `config` into a new pipeline, at one libtorch thread so no
    /// thread pool is running when the fork server forks (each worker sets its own count). A model
    /// that does not load is logged and left to the workers, which load on first use and answer its
    /// error as they would without a preload. Returns whether every model loaded.
    static func load(_ config: AppConfig, pipelineOptions: PipelineOptions, log: ServerLog) -> Bool {
        TorchThreads.set(1)
        let manifest: ModelManifest
        do {
            manifest = try ModelManifest.load(from: URL(fileURLWithPath: config.manifestPath))
        } catch {
            log.error("preload_failed", ["reason": .token(.init(error.kind.rawValue))])
            return false
        }
        let pipeline = AnalysisPipeline(manifest: manifest, options: pipelineOptions)
        var complete = true
        // Models by their place in the manifest: an id names a body part, which the logs never hold.
        for (index, spec) in manifest.models.enumerated() {
            do {
                let (_, ms) = try pipeline.model(spec)
                log.info("model_preloaded", ["manifest_index": .int(index), "load_ms": .double(ms)])
            } catch {
                log.error("preload_failed", ["manifest_index": .int(index), "reason": .token(.init(error.kind.rawValue))])
                complete = false
            }
        }
        shared = pipeline
        return complete
    }
}
