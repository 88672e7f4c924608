import Foundation
import Glibc
import MediscopeDicomWrite
import MediscopeEncoding
import MediscopeImaging
import MediscopeJobs
import MediscopeServer
import MediscopeStudies

/// Where a received DICOM instance goes, whichever way it came (C-STORE to the listener, STOW-RS): checked
/// with the upload's reader, admitted once into this host's `StudyIndex`, kept durably in the spool
/// (`var/dicom/<organization>/<sha256 of the SOP Instance UID>.dcm`) and its analysis queued, all before the
/// sender hears Success.
///
/// - Refused, nothing kept: a file the reader refuses (0xC000), without exactly one valid Patient ID or with
///   two Patient's Names (0xC000: filing it could put it under another patient), without Study or Series
///   Instance UID (0xC000), not the instance or study the request names (0xA900), other bytes under a SOP
///   Instance UID received before (0xA900: a corrected resend is for the PACS to send as a new instance),
///   a study received before for another Patient ID (0xA900: one study never shows two patients),
///   a spool or queue that cannot be written (0xA700).
/// - Received again (the same data set, whatever its bytes: `DicomContentDigest`): Success, kept once.
/// - Past the series' cap: Success, listed as skipped, not kept.
/// - Mediscope's own result (Manufacturer "Mediscope": a heatmap a PACS routed back): Success, not kept.
struct DicomInbox {
    let config: AppConfig
    let index: StudyIndex
    let jobs: JobQueue
    /// Keeps a file that killed its decoder from being decoded again.
    let decodeGuard: any DecodeGuard

    /// What became of an instance.
    enum Outcome: Equatable {
        /// Kept and queued (`.received`), or acknowledged past the series' cap (`.skipped`).
        case kept(ReceivedInstanceEntry.State)
        /// Received before with the same bytes: nothing new.
        case keptBefore
        /// One of Mediscope's own results (a Secondary Capture a PACS routed back): acknowledged, never
        /// analysed, so results of results never go round between the PACS and Mediscope.
        case ownResult
        /// Not kept: the status to answer (a C-STORE status, a STOW-RS Failure Reason) and why.
        case refused(UInt16, String)
    }

    /// Who sent an instance and what the request said of it.
    struct Delivery {
        var organization: String
        /// `c-store` or `stow-rs`.
        var transport: String
        /// The calling AE title, or the clinician's user id.
        var sender: String
        /// The SOP Instance UID the C-STORE names.
        var sopInstanceUID: String?
        /// The study the STOW-RS request names (`/dicom-web/studies/{study}`).
        var studyInstanceUID: String?
    }

    /// The spool of received instances, one folder per organisation.
    static func spool(_ config: AppConfig) -> URL { URL(fileURLWithPath: config.varDirectory).appendingPathComponent("dicom") }
    /// Where instances are written before they are checked.
    static func incoming(_ config: AppConfig) -> URL { spool(config).appendingPathComponent("incoming") }

    /// This host's inbox: its study index and job queue, in the store folder.
    static func open(_ config: AppConfig, decodeGuard: any DecodeGuard) throws -> DicomInbox {
        let store = URL(fileURLWithPath: config.storeDirectory)
        return DicomInbox(config: config, index: try StudyIndex(directory: store), jobs: try JobQueue(directory: store), decodeGuard: decodeGuard)
    }

    /// Writes `bytes` (a STOW-RS part) to a new file under `incoming`, then takes it in like a C-STORE's.
    func take(bytes: [UInt8], _ delivery: Delivery) -> Outcome {
        let folder = Self.incoming(config).path
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var template = Array((folder + "/stow-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { return .refused(0xA700, "the spool cannot be written") }
        let path = String(cString: template)
        defer { unlink(path) }
        let written = bytes.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return false }
                offset += n
            }
            return true
        }
        close(fd)
        guard written else { return .refused(0xA700, "the spool cannot be written") }
        return take(path: path, bytes: bytes, delivery)
    }

    /// Checks the instance at `path` (its bytes `bytes`) and keeps it: moved into the spool, indexed and
    /// queued; the caller removes `path` if it is still there.
    func take(path: String, bytes: [UInt8], _ delivery: Delivery) -> Outcome {
        if let refusal = decodeGuard.begin(sha256: Self.dataSetDigest(bytes)) { return .refused(0xC000, refusal) }
        let read = Result { () throws(ImagingError) in try DicomFile.read(bytes, limits: ImageLimits(maxPixels: config.maxImagePixels)) }
        decodeGuard.end()
        let file: DicomFile
        switch read {
        case .success(let decoded): file = decoded
        case .failure(let error): return .refused(0xC000, "the reader refuses it: \(error.kind)")
        }
        let a = file.attributes
        guard let sop = a.sopInstanceUID, let study = a.studyInstanceUID, let series = a.seriesInstanceUID else {
            return .refused(0xC000, "it has no SOP, Study or Series Instance UID")
        }
        if let expected = delivery.sopInstanceUID, sop != expected {
            return .refused(0xA900, "its SOP Instance UID is not the one the C-STORE names")
        }
        if let expected = delivery.studyInstanceUID, study != expected {
            return .refused(0xA900, "its Study Instance UID is not the study the request names")
        }
        if a.manufacturer == DicomResults.manufacturer { return .ownResult }
        // The analysis is filed under the patient the file names: exactly one valid Patient ID, at most one
        // Patient's Name. Anything else could file it under another patient: refused, for the PACS to fix.
        let ids = a.patientID.map(DicomAPI.values) ?? []
        guard ids.count == 1, (try? FieldText.check(Array(ids[0].utf8), field: "patient_id", rule: .patientId)) != nil,
              (a.patientName.map(DicomAPI.values) ?? []).count <= 1 else {
            return .refused(0xC000, "it has no single valid Patient ID (or more than one Patient's Name)")
        }
        let entry = ReceivedInstanceEntry(
            organizationId: delivery.organization, studyInstanceUID: study, seriesInstanceUID: series, sopInstanceUID: sop,
            sopClassUID: a.sopClassUID, patientId: ids[0], patientName: a.patientName.flatMap(DicomAPI.personName),
            studyDate: a.studyDate, studyDescription: a.studyDescription, seriesDescription: a.seriesDescription,
            seriesNumber: a.seriesNumber, instanceNumber: a.instanceNumber, modality: a.modality,
            transport: delivery.transport, sender: delivery.sender)
        let admission: StudyIndex.Admission
        do { admission = try index.admit(entry, sha256: DicomContentDigest.of(file), maxPerSeries: config.receiving.maxInstancesPerSeries) } catch {
            return .refused(0xA700, "the study index cannot be written")
        }
        let key = Self.key(organization: delivery.organization, sopInstanceUID: sop)
        switch admission {
        case .conflict:
            return .refused(0xA900, "another instance with this SOP Instance UID was received before")
        case .otherPatient:
            return .refused(0xA900, "this Study Instance UID was received before for another Patient ID")
        case .known(let state):
            // Still waiting: queued again (the queue keeps one), in case the first try stopped half way.
            if state == .received || state == .analysing {
                guard FileManager.default.fileExists(atPath: Self.spool(config).appendingPathComponent(key).path) else {
                    return keep(path: path, key: key, entry)
                }
                do { try ReceivedInstance.enqueue(jobs, key: key, organizationId: delivery.organization) } catch {
                    return .refused(0xA700, "the job queue cannot be written")
                }
            }
            return .keptBefore
        case .new(.skipped):
            return .kept(.skipped)
        case .new:
            return keep(path: path, key: key, entry)
        }
    }

    /// SHA-256 of the data set's bytes, past the preamble and File Meta Information (which a receiver
    /// writes anew): the same data set in the same transfer syntax has one digest whoever sent it.
    static func dataSetDigest(_ bytes: [UInt8]) -> String {
        // "DICM" at 128, then (0002,0000) UL, 4 bytes of length: the meta group's size after it.
        guard bytes.count >= 144, bytes[128..<132].elementsEqual("DICM".utf8),
              bytes[132..<138].elementsEqual([0x02, 0x00, 0x00, 0x00, 0x55, 0x4C]) else { return SHA256Hex.digest(bytes) }
        let length = Int(bytes[140]) | Int(bytes[141]) << 8 | Int(bytes[142]) << 16 | Int(bytes[143]) << 24
        let start = 144 + length
        guard length >= 0, start <= bytes.count else { return SHA256Hex.digest(bytes) }
        return SHA256Hex.digest(Array(bytes[start...]))
    }

    /// The spool file's key (organisation folder / file name) of an instance.
    static func key(organization: String, sopInstanceUID: String) -> String {
        folderName(organization) + "/" + SHA256Hex.digest(sopInstanceUID) + ".dcm"
    }

    private func keep(path: String, key: String, _ entry: ReceivedInstanceEntry) -> Outcome {
        let spool = Self.spool(config)
        let folder = spool.appendingPathComponent(Self.folderName(entry.organizationId))
        do {
            if !FileManager.default.fileExists(atPath: folder.path) {
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                try Self.syncFolder(spool.path)   // the new folder's entry is durable before any Success in it
            }
            try Self.durablyMove(path, to: spool.appendingPathComponent(key).path, folder: folder.path)
            // Its analysis is queued before Success.
            try ReceivedInstance.enqueue(jobs, key: key, organizationId: entry.organizationId)
            return .kept(.received)
        } catch {
            try? index.withdraw(organizationId: entry.organizationId, sopInstanceUID: entry.sopInstanceUID)
            return .refused(0xA700, "the spool or the job queue cannot be written")
        }
    }

    static func syncFile(_ path: String) throws {
        let fd = Glibc.open(path, O_RDONLY)
        guard fd >= 0 else { throw ServerError("open failed") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw ServerError("fsync failed") }
    }

    static func syncFolder(_ path: String) throws {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw ServerError("open folder failed") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw ServerError("fsync folder failed") }
    }

    /// An organisation id as a folder name: itself when it is plain, else its digest.
    static func folderName(_ organization: String) -> String {
        organization.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F })
            && !organization.isEmpty && organization.count <= 64 ? organization : SHA256Hex.digest(organization)
    }

    /// fsync the file, rename it into place (a leftover of an earlier, failed try is replaced), fsync the folder.
    static func durablyMove(_ path: String, to target: String, folder: String) throws {
        try syncFile(path)
        guard rename(path, target) == 0 else { throw ServerError("rename failed") }
        try syncFolder(folder)
    }
}
