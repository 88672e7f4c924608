import Foundation
import MediscopeServer

/// Mediscope as a pre-forked FastCGI application: one handler per worker process.
package struct MediscopeApplication: WorkerApplication {
    package let config: AppConfig
    /// STOW-RS bodies carry instances (`dicom.stow_max_bytes`); everything else an image at most.
    package func bodyLimitBytes(path: String) -> Int {
        path.hasPrefix(DicomWebAPI.studiesPattern) ? config.receiving.stowMaxBytes : config.bodyLimitBytes
    }
    /// Stage and queueing-time histograms, mapped here, in the master, so every forked worker shares
    /// them (nil if the mapping failed: the server then runs without them).
    let histograms: SharedHistograms?

    package init(config: AppConfig) {
        self.config = config
        histograms = try? SharedHistograms()
    }

    /// The report job processes ("reports-1"...), with Firestore the outbox's delivery loop, and with
    /// `dicom.listen` the DICOM listener, with `dicom.destinations` one sender of results per PACS ("dicom-out-<name>").
    package var backgroundProcesses: [String] {
        (1...config.reports.workers).map { ReportDraftWork.namePrefix + String($0) }
            + (config.store == .firestore ? [OutboxDeliveryWork.processName] : [])
            + (config.dicom != nil ? [DicomListenerWork.processName] : [])
            + config.dicomSending.destinations.map(DicomOutWork.processName)
    }

    package func makeBackgroundWork(name: String, context: BackgroundContext) -> BackgroundWork? {
        if name == OutboxDeliveryWork.processName { return OutboxDeliveryWork(config: config, log: context.server.log) }
        if name.hasPrefix(ReportDraftWork.namePrefix) { return ReportDraftWork(config: config, log: context.server.log) }
        if name.hasPrefix(DicomOutWork.namePrefix),
           let destination = config.dicomSending.destinations.first(where: { DicomOutWork.processName($0) == name }) {
            return DicomOutWork(config: config, log: context.server.log, destination: destination)
        }
        if name == DicomListenerWork.processName, let dicom = config.dicom {
            return DicomListenerWork(config: config, settings: dicom, log: context.server.log, masterPID: context.server.masterPID)
        }
        return nil
    }

    package func makeHandler(pool: PoolRuntime, slot: Int, server: ServerContext) -> RequestHandler {
        let services = Services(config: config, runtime: PooledWorker(server: server, pool: pool, slot: slot), histograms: histograms)
        if PreloadedPipeline.shared != nil {
            // Forked with the models loaded: the status page and /api/models show them from the start.
            _ = try? services.pipeline()
            services.publishLoadedModels()
        }
        return APIHandler(router: API.router(services), services: services)
    }

    /// The inference pool's fork server loads every model before it forks a worker.
    package func preload(pool: PoolRuntime, server: ServerContext) -> Bool {
        guard pool.config.name == Self.inferencePool else { return true }
        return PreloadedPipeline.load(config, pipelineOptions: Services.pipelineOptions(config), log: server.log)
    }

    /// The pool whose workers run models.
    static let inferencePool = "inference"
}
