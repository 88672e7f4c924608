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
        case .kept:
            log.info("dicom_instance_received", [:])
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
        case kept
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
        // The analysis is filed under the patient the file names: exactly one valid Patient ID, at most one
        // Patient's Name. Anything else could file it under another patient: refused, for the PACS to fix.
        let ids = file.attributes.patientID.map(DicomAPI.values) ?? []
        guard ids.count == 1, (try? FieldText.check(Array(ids[0].utf8), field: "patient_id", rule: .patientId)) != nil,
              (file.attributes.patientName.map(DicomAPI.values) ?? []).count <= 1 else {
            return .refused(0xC000, "it has no single valid Patient ID (or more than one Patient's Name)")
        }
        let key = Self.folderName(organization) + "/" + SHA256Hex.digest(instance.sopInstanceUID) + ".dcm"
        let spool = Self.spool(config)
        let folder = spool.appendingPathComponent(Self.folderName(organization))
        let target = spool.appendingPathComponent(key).path
        do {
            if !FileManager.default.fileExists(atPath: folder.path) {
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                try Self.syncFolder(spool.path)   // the new folder's entry is durable before any Success in it
            }
            if let waiting = FileManager.default.contents(atPath: target) {
                // Sent again while the first copy waits: the same bytes are the same instance; other bytes
                // under one SOP Instance UID (a corrected resend) are refused, never silently dropped.
                guard waiting == data else {
                    return .refused(0xA900, "another instance with this SOP Instance UID waits to be analysed")
                }
                try Self.syncFile(target)
                try Self.syncFolder(folder.path)
            } else {
                try Self.durablyMove(instance.path, to: target, folder: folder.path)
            }
            // Its analysis is queued before Success (again for a copy kept before: the queue keeps one).
            try ReceivedInstance.enqueue(try jobs(), key: key, organizationId: organization)
            return .kept
        } catch {
            return .refused(0xA700, "the spool or the job queue cannot be written")
        }
    }

    static func syncFile(_ path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw ServerError("open failed") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw ServerError("fsync failed") }
    }

    static func syncFolder(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw ServerError("open folder failed") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw ServerError("fsync folder failed") }
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
        try syncFile(path)
        guard link(path, target) == 0 || errno == EEXIST else { throw ServerError("link failed") }
        unlink(path)
        try syncFolder(folder)
    }
}
