import Foundation
import Glibc
import MediscopeDicomNet
import MediscopeServer
import MediscopeStore
import MediscopeStudies

/// The "dicom" background process (`dicom.listen` set): a DICOM Storage SCP with C-ECHO (DCMTK's dcmnet,
/// `StorageSCP`) that hands every image instance a listed peer sends to the `DicomInbox` (checked, kept
/// durably, its analysis queued) and answers Success only then.
///
/// - Who: a calling AE title at an address on `dicom.peers`, else A-ASSOCIATE-RJ; logged with the AE
///   title and address (no patient data).
/// - Counted in the study index (`/api/metrics`): associations accepted, rejected and aborted, instances
///   by outcome, failures by status.
/// - Says it listens in `ListenerHeartbeat` (readiness), or why it cannot.
final class DicomListenerWork: BackgroundWork, StorageSCP.Delegate {
    static let processName = "dicom"
    let config: AppConfig
    let settings: DicomSettings
    let log: ServerLog
    let masterPID: Int32
    private var inbox: DicomInbox?
    private var listening = false

    init(config: AppConfig, settings: DicomSettings, log: ServerLog, masterPID: Int32) {
        self.config = config
        self.settings = settings
        self.log = log
        self.masterPID = masterPID
    }

    func runOnce(_ context: BackgroundContext) -> Double {
        var scpSettings = StorageSCP.Settings(port: settings.port, aeTitle: settings.aeTitle, incomingDirectory: DicomInbox.incoming(config).path)
        scpSettings.maxPDU = UInt32(settings.maxPDU)
        scpSettings.dimseTimeout = UInt32(settings.idleTimeoutSeconds)
        scpSettings.maxInstanceBytes = UInt64(settings.maxInstanceBytes)
        scpSettings.associationTimeout = UInt32(settings.associationTimeoutSeconds)
        do {
            try FileManager.default.createDirectory(atPath: scpSettings.incomingDirectory, withIntermediateDirectories: true)
            let decodeGuard = ListenerDecodeGuard(config: config)
            if let poisoned = decodeGuard.recover() {
                log.error("dicom_instance_poisoned", ["file": .token(.init(String(poisoned.prefix(16))))])
            }
            inbox = try DicomInbox.open(config, decodeGuard: decodeGuard)
            log.info("dicom_listener_starting", ["port": .int(Int(settings.port)), "peers": .int(settings.peers.count)])
            try StorageSCP(settings: scpSettings, delegate: self).run()
            return 0
        } catch {
            listening = false
            ListenerHeartbeat.write(config, state: "failed", error: "\(error)")
            log.error("dicom_listener_failed", ["error": .token(.init("\(error)"))])
            return 2
        }
    }

    func stopped(_ context: BackgroundContext) {
        ListenerHeartbeat.write(config, state: "stopped")
    }

    // MARK: - StorageSCP.Delegate

    func accept(callingAETitle: String, peerAddress: String) -> Bool {
        guard settings.peer(callingAETitle: callingAETitle, address: peerAddress) != nil else {
            log.warning("dicom_association_rejected", ["calling_ae": .token(.init(callingAETitle)), "address": .token(.init(peerAddress))])
            count("associations:rejected")
            return false
        }
        return true
    }

    func stored(_ instance: StorageSCP.Instance) -> UInt16 {
        guard let peer = settings.peer(callingAETitle: instance.callingAETitle, address: instance.peerAddress), let inbox,
              let bytes = try? POSIXFiles.readFile(instance.path, what: "received instance") else {
            count("failures:c-store:A700")
            return 0xA700
        }
        let outcome = inbox.take(path: instance.path, bytes: bytes,
                                 DicomInbox.Delivery(organization: peer.organization, transport: "c-store", sender: instance.callingAETitle,
                                                     sopInstanceUID: instance.sopInstanceUID))
        count(Self.counterName(outcome, transport: "c-store"))
        switch outcome {
        case .kept(let state):
            log.info("dicom_instance_received", ["state": .token(.init(state.rawValue))])
            return 0x0000
        case .keptBefore:
            log.info("dicom_instance_received", ["state": .word("received_before")])
            return 0x0000
        case .ownResult:
            log.info("dicom_instance_received", ["state": .word("own_result")])
            return 0x0000
        case .refused(let status, let reason):
            log.warning("dicom_instance_refused", ["reason": .token(.init(reason))])
            return status
        }
    }

    /// The counter an instance's outcome adds to.
    static func counterName(_ outcome: DicomInbox.Outcome, transport: String) -> String {
        switch outcome {
        case .kept(let state): "instances:\(transport):\(state == .skipped ? "skipped" : "received")"
        case .keptBefore: "instances:\(transport):received_before"
        case .ownResult: "instances:\(transport):own_result"
        case .refused(let status, _): "failures:\(transport):" + String(format: "%04X", status)
        }
    }

    func shouldStop() -> Bool {
        if !listening {
            // Asked between associations once it listens: the port is bound.
            listening = true
            ListenerHeartbeat.write(config, state: "listening")
        }
        if getppid() != masterPID { return true }
        var pending = sigset_t()
        sigpending(&pending)
        return [SIGTERM, SIGQUIT, SIGINT].contains { sigismember(&pending, $0) == 1 }
    }

    func event(_ event: StorageSCP.Event) {
        switch event {
        case .associationAccepted:
            log.info("dicom_association_accepted", [:])
            count("associations:accepted")
        case .associationAborted:
            log.info("dicom_association_aborted", [:])
            count("associations:aborted")
        case .receiveFailed:
            log.warning("dicom_receive_failed", [:])
            count("failures:c-store:receive")
        case .echo:
            count("echoes")
        case .instanceTooLarge:
            log.warning("dicom_instance_too_large", ["limit_bytes": .int(settings.maxInstanceBytes)])
            count("failures:c-store:too_large")
        case .associationTooLong:
            log.warning("dicom_association_too_long", ["limit_s": .int(settings.associationTimeoutSeconds)])
            count("associations:too_long")
        }
    }

    private func count(_ name: String) {
        do { try inbox?.index.count(name) } catch {
            log.warning("dicom_counter_not_written", [:])
        }
    }
}
