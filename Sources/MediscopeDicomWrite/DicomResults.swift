import CDicomWrite
import Foundation
import MediscopeImaging
import MediscopeReport
import MediscopeStore
import MediscopeEncoding

/// Why an analysis could not be written as DICOM (no patient data in the message).
package struct DicomWriteError: Error, Sendable, CustomStringConvertible {
    package let message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}

/// An analysis as DICOM objects (issue 25): its Comprehensive SR and a Secondary Capture of each heatmap,
/// in the study the image came from (a DICOM upload's Study Instance UID) or, for a JPEG/PNG/WebP upload,
/// in a study of its own whose UID derives from the analysis. Every UID derives from the analysis (and the
/// report version or result), so the same request gives the same object.
package enum DicomResults {
    /// Manufacturer (0008,0070) of every object written (CDicomWrite's General Equipment): how the listener
    /// tells one of Mediscope's results, routed back by a PACS, from a scan.
    package static let manufacturer = "Mediscope"
    /// Mediscope's version as Software Versions states it.
    package static let softwareVersion = "Mediscope 1"
    /// The private coding scheme of the concepts DICOM has no code for (a class's probability, the input check).
    package static let scheme = "99MEDISCOPE"
    /// The line burned into every Secondary Capture.
    package static let burnedInNotice = "Decision support - not for diagnosis"
    /// Series numbers: the SR series, the Secondary Capture series.
    static let srSeriesNumber = "9901", scSeriesNumber = "9902"

    /// The Study Instance UID of `record`'s objects.
    package static func studyUID(_ record: AnalysisRecord) -> String {
        if let uid = record.source?.study?.studyInstanceUID, !uid.isEmpty { return uid }
        return DicomUID.derived(analysisId: record.id, kind: "study")
    }

    /// The SOP Instance UID of the SR written for report version `number` (0: no report yet).
    package static func srInstanceUID(_ record: AnalysisRecord, version number: Int) -> String {
        DicomUID.derived(analysisId: record.id, kind: "sr", part: String(number))
    }

    /// The Series Instance UID of every SR of `record`.
    package static func srSeriesUID(_ record: AnalysisRecord) -> String { DicomUID.derived(analysisId: record.id, kind: "sr-series") }

    /// The Series Instance UID of `record`'s Secondary Captures.
    package static func scSeriesUID(_ record: AnalysisRecord) -> String { DicomUID.derived(analysisId: record.id, kind: "sc-series") }

    /// The SOP Instance UID of the Secondary Capture of result `resultId`.
    package static func scInstanceUID(_ record: AnalysisRecord, result resultId: String) -> String {
        DicomUID.derived(analysisId: record.id, kind: "sc", part: resultId)
    }

    /// The SR of `record` as its report stands (`versions` oldest first, as `ReportStore.versions` gives
    /// them): UNVERIFIED while pending or a draft; VERIFIED once signed, with the signer of the current
    /// version (`organization` their organisation's name), its text, and as predecessor the SR of the signed
    /// version before (an amendment) or, for the first signature, the analysis's SR (version 0). The SR of
    /// version N as it was sent: `versions` up to N.
    /// - Throws: `DicomWriteError` when DCMTK refuses a value or cannot encode.
    package static func structuredReport(_ record: AnalysisRecord, versions: [ReportVersion], organization: String)
        throws(DicomWriteError) -> [UInt8] {
        let current = ReportVersions.current(versions)
        let number = current?.number ?? 0
        let arena = CArena()
        var input = cdw_sr_input()
        input.common = common(record, arena: arena, series: srSeriesUID(record), instance: srInstanceUID(record, version: number),
                              seriesNumber: srSeriesNumber, instanceNumber: number + 1, date: current?.createdAt ?? record.createdAt,
                              description: "Mediscope analysis report")
        input.notice = arena.string(DecisionSupport.notice)
        if record.inputCheck != .notRecorded {
            input.input_check = arena.string(clip(record.inputCheck.sentence, 10_000))
            input.input_check_concept = code(arena, "INPUTCHECK", scheme, "Input check")
        }
        input.report_text = arena.string(current?.text)
        var results: [cdw_result] = []
        for result in record.results {
            let probabilities = result.probabilities.map { p in
                cdw_probability(concept: code(arena, conceptValue(p.label), scheme, clip("Probability of " + (p.title ?? p.label), 64)),
                                probability: p.probability)
            }
            let predicted = result.probabilities.first { $0.label == result.prediction }
            var r = cdw_result()
            r.title = arena.string(clip(result.title, 10_000))
            r.finding = arena.string(predicted?.title ?? result.prediction)
            r.probabilities = arena.array(probabilities)
            r.probability_count = probabilities.count
            r.algorithm_name = arena.string(result.model)
            // The record keeps the model's id, not a version of its own: the id is the version that ran.
            r.algorithm_version = arena.string(result.model)
            r.algorithm_parameters = arena.string("task=\(result.task); explained label=\(result.explainedLabel)")
            r.model_name = arena.string(clip(result.model, 64))
            r.device_uid = arena.string(DicomUID.device(model: result.model))
            results.append(r)
        }
        input.results = arena.array(results)
        input.result_count = results.count
        input.private_scheme_designator = arena.string(scheme)
        input.private_scheme_name = arena.string("Mediscope concepts")
        if let current, current.status == .signed {
            input.verifying_observer_name = arena.string(clip(current.authorName ?? "unknown clinician", 64))
            input.verifying_organization = arena.string(clip(organization, 64))
            // UTC by the data set's Timezone Offset From UTC (DCMTK 3.6.7 refuses a DT with its own offset).
            input.verification_datetime = arena.string(format(current.createdAt, "yyyyMMddHHmmss.SSS"))
            // The SR this one replaces, as the PACS received them: the last signed version's (an amendment),
            // else the analysis's own (version 0, sent with the heatmaps). Drafts are never sent, so never named.
            let earlier = versions.last { $0.number < current.number && $0.status == .signed }?.number ?? 0
            input.predecessor_series_uid = arena.string(srSeriesUID(record))
            input.predecessor_sop_uid = arena.string(srInstanceUID(record, version: earlier))
        }
        return try call { out, err, errlen in cdw_write_sr(&input, out, err, errlen) }
    }

    /// The Secondary Capture of `result`'s heatmap `image` (its decoded pixels), with the notice and the
    /// result's title burned in: a caption band above the heatmap (`BurnedInText`).
    /// - Throws: `DicomWriteError` when DCMTK refuses a value or cannot encode.
    package static func secondaryCapture(_ record: AnalysisRecord, result: StoredResult, image: PixelImage) throws(DicomWriteError) -> [UInt8] {
        let (rgb, width, height) = BurnedInText.compose(image, lines: [burnedInNotice, result.title])
        let arena = CArena()
        let index = (record.results.firstIndex { $0.id == result.id } ?? 0) + 1
        var input = cdw_sc_input()
        input.common = common(record, arena: arena, series: scSeriesUID(record), instance: scInstanceUID(record, result: result.id),
                              seriesNumber: scSeriesNumber, instanceNumber: index, date: record.createdAt,
                              description: "Mediscope heatmaps (decision support)")
        input.width = UInt32(width)
        input.height = UInt32(height)
        input.derivation = arena.string(clip("Grad-CAM heatmap of \(result.model) blended on the analysed image", 1024))
        input.model_name = arena.string(clip(result.model, 64))
        input.device_uid = arena.string(DicomUID.device(model: result.model))
        return try rgb.withUnsafeBufferPointer { pixels throws(DicomWriteError) in
            input.rgb = pixels.baseAddress
            return try call { out, err, errlen in cdw_write_sc(&input, out, err, errlen) }
        }
    }

    /// Runs a writer of CDicomWrite and takes its buffer.
    private static func call(_ body: (UnsafeMutablePointer<cdw_buffer>, UnsafeMutablePointer<CChar>, Int) -> Int32)
        throws(DicomWriteError) -> [UInt8] {
        var buffer = cdw_buffer()
        var err = [CChar](repeating: 0, count: 512)
        let code = err.withUnsafeMutableBufferPointer { body(&buffer, $0.baseAddress!, $0.count) }
        defer { cdw_buffer_free(&buffer) }
        guard code == CDW_OK, let data = buffer.data else {
            throw DicomWriteError("DICOM could not be written (\(code)): " + String(cString: err))
        }
        return Array(UnsafeBufferPointer(start: data, count: buffer.size))
    }

    private static func common(_ record: AnalysisRecord, arena: CArena, series: String, instance: String, seriesNumber: String,
                               instanceNumber: Int, date: Date, description: String) -> cdw_common {
        var c = cdw_common()
        c.study_instance_uid = arena.string(studyUID(record))
        c.series_instance_uid = arena.string(series)
        c.sop_instance_uid = arena.string(instance)
        c.patient_id = arena.string(clip(record.patient.patientId, 64))
        c.patient_name = arena.string(clip(record.patient.name ?? "", 64))
        c.patient_sex = arena.string(["female": "F", "male": "M", "other": "O"][record.patient.sex ?? ""] ?? "")
        if let study = record.source?.study, let uid = study.studyInstanceUID, !uid.isEmpty {
            // The source study's date as the file gave it (its time is not kept).
            c.study_date = arena.string(study.studyDate.flatMap { $0.count == 8 && $0.allSatisfy(\.isNumber) ? $0 : nil } ?? "")
            c.study_time = arena.string("")
        } else {
            c.study_date = arena.string(format(record.createdAt, "yyyyMMdd"))
            c.study_time = arena.string(format(record.createdAt, "HHmmss.SSS"))
        }
        c.content_date = arena.string(format(date, "yyyyMMdd"))
        c.content_time = arena.string(format(date, "HHmmss.SSS"))
        c.series_number = arena.string(seriesNumber)
        c.instance_number = arena.string(String(instanceNumber))
        c.series_description = arena.string(description)
        c.software_version = arena.string(softwareVersion)
        return c
    }

    private static func code(_ arena: CArena, _ value: String, _ scheme: String, _ meaning: String) -> cdw_code {
        cdw_code(value: arena.string(value), scheme: arena.string(scheme), meaning: arena.string(meaning))
    }

    /// A label as a Code Value (SH: 16 characters, no backslash); a longer or unusual one by its digest.
    static func conceptValue(_ label: String) -> String {
        if label.count <= 16, label.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) { return label }
        return "H" + String(SHA256Hex.digest(label).prefix(15)).uppercased()
    }

    /// At most `count` characters of `text` (DICOM's value lengths).
    static func clip(_ text: String, _ count: Int) -> String { text.count <= count ? text : String(text.prefix(count)) }

    /// `date` in UTC as `pattern` says.
    static func format(_ date: Date, _ pattern: String) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = pattern
        return formatter.string(from: date)
    }
}
