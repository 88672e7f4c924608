import Foundation
import Glibc
import MediscopeDicomNet
import MediscopeEncoding
import MediscopeImaging
import MediscopeJobs
import MediscopeServer

/// The "dicom" background process (`dicom.listen` set): a DICOM Storage SCP with C-ECHO (DCMTK's dcmnet,
/// `StorageSCP`) that keeps every image instance a listed peer sends, durably, in this host's spool
/// (`var/dicom/<organization>/<sha256 of the SOP Instance UID>.dcm`), and answers Success only then.
///
/// - Who: a calling AE title at an address on `dicom.peers`, else A-ASSOCIATE-RJ; logged with the AE
///   title and address (no patient data).
/// - What: a file Mediscope's reader reads and decodes (the same limits as an upload), whose SOP Instance
///   UID is the one the C-STORE names; else 0xC000 (cannot understand) or 0xA900 (does not match), and
///   nothing kept. An instance received again (a sender's retry, a redelivery) is kept once: the first
///   copy stands and the retry gets Success.
/// - Durable: the file is fsync'd, renamed into place and its folder fsync'd before Success; a failure
///   to write is 0xA700 (out of resources).
final class DicomListenerWork: BackgroundWork, StorageSCP.Delegate {
    static let processName = "dicom"
    let config: AppConfig
    let settings: DicomSettings
    let log: ServerLog
    let masterPID: Int32

    init(config: AppConfig, settings: DicomSettings, log: ServerLog, masterPID: Int32) {
        self.config = config
        self.settings = settings
        self.log = log
        self.masterPID = masterPID
    }

    /// The spool of received instances, one folder per organisation.
    static func spool(_ config: AppConfig) -> URL { URL(fileURLWithPath: config.varDirectory).appendingPathComponent("dicom") }

    func runOnce(_ context: BackgroundContext) -> Double {
        var scpSettings = StorageSCP.Settings(port: settings.port, aeTitle: settings.aeTitle,
                                              incomingDirectory: Self.spool(config).appendingPathComponent("incoming").path)
        scpSettings.maxPDU = UInt32(settings.maxPDU)
        scpSettings.dimseTimeout = UInt32(settings.idleTimeoutSeconds)
        scpSettings.maxInstanceBytes = UInt64(settings.maxInstanceBytes)
        do {
            try FileManager.default.createDirectory(atPath: scpSettings.incomingDirectory, withIntermediateDirectories: true)
            log.info("dicom_listening", ["port": .int(Int(settings.port)), "peers": .int(settings.peers.count)])
            try StorageSCP(settings: scpSettings, delegate: self).run()
            return 0
        } catch {
            log.error("dicom_listener_failed", ["error": .token(.init("\(error)"))])
            return 2
        }
    }

    // MARK: - StorageSCP.Delegate

    func accept(callingAETitle: String, peerAddress: String) -> Bool {
        guard settings.peer(callingAETitle: callingAETitle, address: peerAddress) != nil else {
            log.warning("dicom_association_rejected", ["calling_ae": .token(.init(callingAETitle)), "address": .token(.init(peerAddress))])
            return false
        }
        return true
    }

    func stored(_ instance: StorageSCP.Instance) -> UInt16 {
        guard let peer = settings.peer(callingAETitle: instance.callingAETitle, address: instance.peerAddress) else { return 0xA700 }
        let outcome = keep(instance, organization: peer.organization)
        switch outcome {
        case .kept, .keptBefore:
            log.info("dicom_instance_received", ["outcome": .word(outcome == .kept ? "kept" : "kept_before")])
            return 0x0000
        case .refused(let status, let reason):
            log.warning("dicom_instance_refused", ["reason": .token(.init(reason))])
            return status
        }
    }

    func shouldStop() -> Bool {
        if getppid() != masterPID { return true }
        var pending = sigset_t()
        sigpending(&pending)
        return [SIGTERM, SIGQUIT, SIGINT].contains { sigismember(&pending, $0) == 1 }
    }

    func event(_ event: StorageSCP.Event) {
        switch event {
        case .associationAccepted: log.info("dicom_association_accepted", [:])
        case .associationAborted: log.info("dicom_association_aborted", [:])
        case .receiveFailed: log.warning("dicom_receive_failed", [:])
        case .echo: break
        }
    }

    // MARK: - The spool

    enum Kept: Equatable {
        case kept, keptBefore
        case refused(UInt16, String)
    }

    /// Checks `instance` with Mediscope's reader and moves it durably into the organisation's spool.
    func keep(_ instance: StorageSCP.Instance, organization: String) -> Kept {
        guard let data = FileManager.default.contents(atPath: instance.path) else { return .refused(0xA700, "the received file cannot be read") }
        let file: DicomFile
        do { file = try DicomFile.read(Array(data), limits: ImageLimits(maxPixels: config.maxImagePixels)) } catch {
            return .refused(0xC000, "the reader refuses it: \(error.kind)")
        }
        guard file.attributes.sopInstanceUID == instance.sopInstanceUID else {
            return .refused(0xA900, "its SOP Instance UID is not the one the C-STORE names")
        }
        let key = Self.folderName(organization) + "/" + SHA256Hex.digest(instance.sopInstanceUID) + ".dcm"
        let folder = Self.spool(config).appendingPathComponent(Self.folderName(organization))
        let target = Self.spool(config).appendingPathComponent(key).path
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let before = FileManager.default.fileExists(atPath: target)
            if !before { try Self.durablyMove(instance.path, to: target, folder: folder.path) }
            // Its analysis is queued before Success (again for a copy kept before: the queue keeps one).
            try ReceivedInstance.enqueue(try jobs(), key: key, organizationId: organization)
            return before ? .keptBefore : .kept
        } catch {
            return .refused(0xA700, "the spool or the job queue cannot be written")
        }
    }

    private var openedJobs: JobQueue?

    /// This host's job queue (the analyses of received instances wait there for an inference worker).
    func jobs() throws -> JobQueue {
        if let openedJobs { return openedJobs }
        let jobs = try JobQueue(directory: URL(fileURLWithPath: config.storeDirectory))
        openedJobs = jobs
        return jobs
    }

    /// An organisation id as a folder name: itself when it is plain, else its digest.
    static func folderName(_ organization: String) -> String {
        organization.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F })
            && !organization.isEmpty && organization.count <= 64 ? organization : SHA256Hex.digest(organization)
    }

    /// fsync the file, rename it (link, so an existing target is never replaced), fsync the folder.
    static func durablyMove(_ path: String, to target: String, folder: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw ServerError("open failed") }
        let synced = fsync(fd) == 0
        close(fd)
        guard synced else { throw ServerError("fsync failed") }
        guard link(path, target) == 0 || errno == EEXIST else { throw ServerError("link failed") }
        unlink(path)
        let dir = open(folder, O_RDONLY | O_DIRECTORY)
        guard dir >= 0 else { throw ServerError("open folder failed") }
        defer { close(dir) }
        guard fsync(dir) == 0 else { throw ServerError("fsync folder failed") }
    }
}
