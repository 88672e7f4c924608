import Foundation
import MediscopeServer

/// What stands between a received file and the decoder, so that a file that kills the process decoding it
/// is not decoded again when the sender retries it (the crash ledger's idea, for received instances).
protocol DecodeGuard {
    /// Before decoding the file whose SHA-256 is `sha256`: nil to go on, else why it is refused.
    func begin(sha256: String) -> String?
    /// After decoding it, whatever came of it.
    func end()
}

/// STOW-RS in an inference worker: each part is charged to the worker's slot in the crash ledger, as an
/// upload's file is, and a part that crashed a worker before is refused without decoding.
struct WorkerDecodeGuard: DecodeGuard {
    let server: ServerContext
    let slot: Int

    func begin(sha256: String) -> String? {
        do { try server.admitContent(slot: slot, content: CrashLedger.contentKey(sha256Hex: sha256)) } catch {
            return "this file stopped a worker before and is not decoded again"
        }
        return nil
    }

    func end() {}
}

/// The DICOM listener (a background process, outside the ledger): the digest of the file it decodes is in
/// `var/run/dicom-decoding` meanwhile; found there when the listener starts again, it joins
/// `var/run/dicom-poisoned` and that file is refused (0xC000) from then on.
struct ListenerDecodeGuard: DecodeGuard {
    let folder: String
    var marker: String { folder + "/dicom-decoding" }
    var poisoned: String { folder + "/dicom-poisoned" }

    init(config: AppConfig) { folder = config.varDirectory + "/run" }

    /// At the listener's start: the file it was decoding when it died is poisoned. Returns its digest.
    @discardableResult
    func recover() -> String? {
        guard let digest = (try? String(contentsOfFile: marker, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines),
              digest.count == 64 else { return nil }
        if let handle = FileHandle(forWritingAtPath: poisoned) ?? {
            FileManager.default.createFile(atPath: poisoned, contents: nil)
            return FileHandle(forWritingAtPath: poisoned)
        }() {
            handle.seekToEndOfFile()
            handle.write(Data((digest + "\n").utf8))
            try? handle.close()
        }
        unlink(marker)
        return digest
    }

    func begin(sha256: String) -> String? {
        let known = (try? String(contentsOfFile: poisoned, encoding: .utf8)) ?? ""
        if known.split(separator: "\n").contains(where: { $0 == sha256 }) {
            return "this file stopped the DICOM listener before and is not decoded again"
        }
        // No fsync: the marker has to outlive the process, not the machine.
        try? Data(sha256.utf8).write(to: URL(fileURLWithPath: marker))
        return nil
    }

    func end() { unlink(marker) }
}
