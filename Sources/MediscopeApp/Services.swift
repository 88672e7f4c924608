import Foundation
import MediscopeAuth
import MediscopeDicomOut
import MediscopeFirestore
import MediscopeFirestoreStore
import MediscopeIdempotency
import MediscopeImaging
import MediscopeInference
import MediscopeJobs
import MediscopeOutbox
import MediscopeReport
import MediscopeServer
import MediscopeStore
import MediscopeStudies

/// The state one worker process serves requests from. Workers are single-threaded.
final class Services: @unchecked Sendable {
    let config: AppConfig
    /// The API's addresses (analysis, images, report), for responses and the report renderer.
    let links = APILinks()
    /// The worker these services run in (the process manager's, or a standalone one in tests).
    let runtime: any WorkerRuntime
    var server: ServerContext { runtime.server }
    var pool: PoolRuntime { runtime.pool }
    var slot: Int { runtime.slot }
    private var openedStore: AnalysisStore?
    private var openedOutbox: Outbox?
    private var openedReports: ReportStore?
    private var openedJobs: JobQueue?
    private var openedStudies: StudyIndex?
    private var openedDicomOutbox: DicomOutbox?
    private var openedIdempotencyKeys: IdempotencyKeyStore?
    private var openedAccounts: Accounts?
    let firebase: FirebaseTokenVerifier?
    private var openedPipeline: AnalysisPipeline?
    private var manifestError: ModelError?
    private var loadedReportTemplates: ReportTemplates?

    let histograms: SharedHistograms?

    init(config: AppConfig, runtime: any WorkerRuntime, histograms: SharedHistograms? = nil) {
        self.histograms = histograms
        self.config = config
        self.runtime = runtime
        firebase = config.firebaseProjectId.map {
            FirebaseTokenVerifier(projectId: $0, certificatesURL: URL(string: config.firebaseCertificatesURL)!)
        }
    }

    func accounts() throws(Problem) -> Accounts {
        try opened(&openedAccounts) {
            Accounts(stores: try config.accountStores(.requests, outbox: try outbox()), policy: config.accountPolicy)
        }
    }

    func store() throws(Problem) -> AnalysisStore {
        try opened(&openedStore) { try config.analysisStore(outbox: try outbox(), .requests) }
    }

    /// The report versions' store.
    func reportStore() throws(Problem) -> ReportStore {
        try opened(&openedReports) { try config.reportStore(.requests) }
    }

    /// This host's report job queue.
    func jobs() throws(Problem) -> JobQueue {
        try opened(&openedJobs) { try JobQueue(directory: URL(fileURLWithPath: config.storeDirectory)) }
    }

    /// This host's index of received DICOM instances.
    func studies() throws(Problem) -> StudyIndex {
        try opened(&openedStudies) { try StudyIndex(directory: URL(fileURLWithPath: config.storeDirectory)) }
    }

    /// This host's queue of DICOM objects bound for the PACS.
    func dicomOutbox() throws(Problem) -> DicomOutbox {
        try opened(&openedDicomOutbox) { try DicomOutbox(directory: URL(fileURLWithPath: config.storeDirectory)) }
    }

    /// Where received instances go (STOW-RS here; the listener opens its own).
    func dicomInbox() throws(Problem) -> DicomInbox {
        DicomInbox(config: config, index: try studies(), jobs: try jobs(), decodeGuard: WorkerDecodeGuard(server: server, slot: slot))
    }

    /// This host's Idempotency-Keys (with either store: a retry on another host is made safe by the
    /// record ids the keys derive, `IdempotencyKey.analysisId`).
    func idempotencyKeys() throws(Problem) -> IdempotencyKeyStore {
        // A claim outlives no request: past the longest request time limit the master has killed it.
        let longest = config.processManager.pools.map(\.requestTimeoutSeconds).max() ?? 300
        return try opened(&openedIdempotencyKeys) {
            try IdempotencyKeyStore(directory: URL(fileURLWithPath: config.storeDirectory), staleAfter: longest + 60)
        }
    }

    /// The outbox's counters for the status page, metrics and readiness; nil with SQLite or when unreadable.
    func outboxStats() -> OutboxStats? {
        guard let outbox = try? outbox() else { return nil }
        return try? outbox.stats()
    }

    /// This host's outbox of writes bound for Firestore; nil with the SQLite store.
    func outbox() throws(Problem) -> Outbox? {
        guard config.store == .firestore else { return nil }
        return try opened(&openedOutbox) { try Outbox(directory: URL(fileURLWithPath: config.storeDirectory)) }
    }

    func manifest() throws(ModelError) -> ModelManifest {
        try ModelManifest.load(from: URL(fileURLWithPath: config.manifestPath))
    }

    /// The analysis pipeline: the fork server's, models loaded, in a worker forked from one; otherwise
    /// a new one whose models load on the first analysis, never before.
    func pipeline() throws(Problem) -> AnalysisPipeline {
        try opened(&openedPipeline) {
            TorchThreads.set(config.torchThreads)
            if let preloaded = PreloadedPipeline.shared { return preloaded }
            return AnalysisPipeline(manifest: try manifest(), options: Self.pipelineOptions(config))
        }
    }

    /// How this deployment's pipelines decode and render.
    static func pipelineOptions(_ config: AppConfig) -> PipelineOptions {
        var options = PipelineOptions()
        options.limits = ImageLimits(maxPixels: config.maxImagePixels)
        options.overlayFormat = .webp
        return options
    }

    /// The report templates, read on the first report this worker renders; a broken folder is retried next time.
    func reportTemplates() throws(Problem) -> ReportTemplates {
        try opened(&loadedReportTemplates) { try ReportTemplates(directory: URL(fileURLWithPath: config.templatesDirectory)) }
    }

    /// What `slot` holds, else what `open` makes, kept there; a failure becomes its problem response and
    /// is tried again on the next call (a store that was down, a template folder being fixed).
    private func opened<T>(_ slot: inout T?, _ open: () throws -> T) throws(Problem) -> T {
        if let value = slot { return value }
        do {
            let value = try open()
            slot = value
            return value
        } catch {
            throw problem(error)
        }
    }

    /// The report's header: the configured institution, else the name of the caller's organisation.
    func institution(for user: User) throws(Problem) -> String {
        if let configured = config.reportInstitution { return configured }
        return try Guard.accountsCall(self) { try $0.organizationName(id: user.organizationId) } ?? user.organizationId
    }

    /// Shows on the scoreboard which of the manifest's models this worker holds: `ids`, or the pipeline's own list.
    func publishLoadedModels(_ ids: [String]? = nil) {
        guard let openedPipeline else { return }
        let loaded = Set(ids ?? openedPipeline.loadedModelIDs)
        var mask: Int64 = 0
        for (i, model) in openedPipeline.manifest.models.enumerated() where loaded.contains(model.id) {
            mask |= 1 << Int64(i)
        }
        server.scoreboard.setLoadedModels(slot: slot, mask: mask)
    }
}

