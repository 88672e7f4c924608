import MediscopeDicomOut
import MediscopeDicomWrite
import MediscopeStore

/// What goes to the PACS (`dicom.send_results`) and when: a new analysis's SR (UNVERIFIED, before any
/// report) and the Secondary Capture of each heatmap; a signed or amended report's SR (VERIFIED). Queued
/// here, in the worker, on this host's `DicomOutbox`; sent by the "dicom-out" process (`DicomOutWork`),
/// never by a worker.
///
/// Queued after the analysis or the version is stored, like a report draft: each object once per
/// destination, so queueing again (an upload replayed under its Idempotency-Key, an instance analysed
/// before) sends nothing twice. A failure to queue is logged, never fails the request.
enum ResultsSending {
    /// Queues `record`'s SR and Secondary Captures for every destination of `dicom.send_results`. An image
    /// outside the models' scope sends its SR alone: the verdict says why, and a heatmap of it is no
    /// decision support to show beside the study.
    static func analysisCreated(_ s: Services, _ record: AnalysisRecord) {
        let heatmaps = record.inputCheck.verdict == .outOfScope ? [] : record.results
        let entries = [entry(record, .sr, part: "0", uid: DicomResults.srInstanceUID(record, version: 0))]
            + heatmaps.map { entry(record, .sc, part: $0.id, uid: DicomResults.scInstanceUID(record, result: $0.id)) }
        enqueue(s, entries, record)
    }

    /// Queues the SR of report version `number` (signed or amended) of `record`.
    static func reportSigned(_ s: Services, _ record: AnalysisRecord, version number: Int) {
        enqueue(s, [entry(record, .sr, part: String(number), uid: DicomResults.srInstanceUID(record, version: number))], record)
    }

    private static func entry(_ record: AnalysisRecord, _ object: DicomOutboxEntry.Object, part: String, uid: String) -> DicomOutbox.NewEntry {
        DicomOutbox.NewEntry(analysisId: record.id, organizationId: record.organizationId, object: object, part: part, sopInstanceUID: uid)
    }

    private static func enqueue(_ s: Services, _ entries: [DicomOutbox.NewEntry], _ record: AnalysisRecord) {
        let destinations = s.config.dicomSending.sendResults
        guard !destinations.isEmpty else { return }
        do { try s.dicomOutbox().enqueue(entries, destinations: destinations) } catch {
            s.server.log.error("dicom_out_enqueue_failed", ["analysis": .token(.init(record.id))])
        }
    }
}
