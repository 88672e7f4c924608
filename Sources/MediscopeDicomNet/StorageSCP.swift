import CDicomNet
import Foundation

/// A DICOM listener: a Storage SCP with C-ECHO on DCMTK's dcmnet (CDicomNet.h), one association at a
/// time. What it accepts and keeps is `Delegate`'s; `run` blocks until the delegate says stop.
package final class StorageSCP {
    /// How the listener is set up.
    package struct Settings: Sendable, Equatable {
        /// TCP port, on every address (DCMTK 3.6.7 binds no single one).
        package var port: UInt16
        /// The AE title callers must call.
        package var aeTitle: String
        /// Where instances are written as they arrive, before the delegate decides.
        package var incomingDirectory: String
        /// Largest PDU received, in bytes.
        package var maxPDU: UInt32 = 65_536
        /// Seconds the whole association request may take from the connection on (however it trickles in),
        /// and for the release.
        package var acseTimeout: UInt32 = 30
        /// Seconds a DIMSE message may take: an association idle longer is aborted.
        package var dimseTimeout: UInt32 = 60
        /// Largest instance kept, in bytes: one growing past it is aborted as it arrives.
        package var maxInstanceBytes: UInt64 = 256 << 20
        /// Seconds an association may last in all (0: no limit).
        package var associationTimeout: UInt32 = 1800

        package init(port: UInt16, aeTitle: String, incomingDirectory: String) {
            self.port = port; self.aeTitle = aeTitle; self.incomingDirectory = incomingDirectory
        }
    }

    /// A C-STORE's instance, received into `path` (a PS3.10 file the delegate may move).
    package struct Instance: Sendable {
        package let path: String
        package let sopClassUID: String
        package let sopInstanceUID: String
        package let callingAETitle: String
        package let peerAddress: String
    }

    /// What happened on the wire, for counters and the log.
    package enum Event: Sendable {
        case associationAccepted, associationAborted, receiveFailed, echo
        /// An instance grew past `maxInstanceBytes`, or the association outlasted `associationTimeout`: aborted.
        case instanceTooLarge, associationTooLong
    }

    /// The decisions the listener asks for.
    package protocol Delegate: AnyObject {
        /// Whether `callingAETitle` at `peerAddress` may associate.
        func accept(callingAETitle: String, peerAddress: String) -> Bool
        /// The C-STORE response status for `instance` (0x0000 only once it is kept durably).
        func stored(_ instance: Instance) -> UInt16
        /// Whether `run` should return now.
        func shouldStop() -> Bool
        /// Something to count or log.
        func event(_ event: Event)
    }

    /// The listener's failure to listen (port taken, folder not writable).
    package struct Failure: Error, CustomStringConvertible {
        package let description: String
    }

    let settings: Settings
    private weak var delegate: Delegate?

    package init(settings: Settings, delegate: Delegate) {
        self.settings = settings
        self.delegate = delegate
    }

    /// Listens until the delegate says stop. Throws `Failure` when it cannot listen.
    package func run() throws(Failure) {
        var error = [CChar](repeating: 0, count: 512)
        let context = Unmanaged.passUnretained(self).toOpaque()
        var callbacks = dicom_scp_callbacks()
        callbacks.context = context
        callbacks.accept = { context, callingAE, peer in
            let scp = Unmanaged<StorageSCP>.fromOpaque(context!).takeUnretainedValue()
            return scp.delegate?.accept(callingAETitle: String(cString: callingAE!), peerAddress: String(cString: peer!)) == true ? 1 : 0
        }
        callbacks.stored = { context, path, sopClass, sopInstance, callingAE, peer in
            let scp = Unmanaged<StorageSCP>.fromOpaque(context!).takeUnretainedValue()
            let instance = Instance(path: String(cString: path!), sopClassUID: String(cString: sopClass!),
                                    sopInstanceUID: String(cString: sopInstance!), callingAETitle: String(cString: callingAE!),
                                    peerAddress: String(cString: peer!))
            return scp.delegate?.stored(instance) ?? 0xA700
        }
        callbacks.should_stop = { context in
            let scp = Unmanaged<StorageSCP>.fromOpaque(context!).takeUnretainedValue()
            return scp.delegate?.shouldStop() != false ? 1 : 0
        }
        callbacks.event = { context, kind in
            let scp = Unmanaged<StorageSCP>.fromOpaque(context!).takeUnretainedValue()
            let event: Event? = switch Int(kind) {
            case Int(DICOM_SCP_EVENT_ASSOCIATION_ACCEPTED): .associationAccepted
            case Int(DICOM_SCP_EVENT_ASSOCIATION_ABORTED): .associationAborted
            case Int(DICOM_SCP_EVENT_RECEIVE_FAILED): .receiveFailed
            case Int(DICOM_SCP_EVENT_ECHO): .echo
            case Int(DICOM_SCP_EVENT_INSTANCE_TOO_LARGE): .instanceTooLarge
            case Int(DICOM_SCP_EVENT_ASSOCIATION_TOO_LONG): .associationTooLong
            default: nil
            }
            if let event { scp.delegate?.event(event) }
        }
        let status = settings.aeTitle.withCString { ae in
            settings.incomingDirectory.withCString { incoming in
                var config = dicom_scp_config(port: settings.port, ae_title: ae, incoming_dir: incoming, max_pdu: settings.maxPDU,
                                              acse_timeout: settings.acseTimeout, dimse_timeout: settings.dimseTimeout,
                                              max_instance_bytes: settings.maxInstanceBytes,
                                              association_timeout: settings.associationTimeout)
                return withExtendedLifetime(self) { dicom_scp_run(&config, &callbacks, &error, error.count) }
            }
        }
        guard status == 0 else {
            throw Failure(description: String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
    }
}
