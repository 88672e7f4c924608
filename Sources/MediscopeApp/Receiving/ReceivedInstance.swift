import Foundation
import MediscopeAuth
import MediscopeEncoding
import MediscopeIdempotency
import MediscopeImaging
import MediscopeJobs
import MediscopeSQLite
import MediscopeServer
import MediscopeStore
import MediscopeStudies

/// Analysing what the DICOM listener and STOW-RS received: each instance the `DicomInbox` keeps is a job
/// (`kind`, its spool path as the key); an inference worker takes one when no request waits (`RequestHandler.idleWork`), so the
/// analysis runs in the pool's capacity, never elsewhere, and a dashboard upload waits for at most one
/// instance's analysis. Exactly once: the record's id derives from the organisation and the SOP
/// Instance UID (the spool file's name), so a redelivered instance, or a job run again after its
/// worker died, finds its record instead of making a second.
enum ReceivedInstance {
    static let kind = "dicom.analyze"
    /// Attempts before a job that keeps failing for want of a store or a model is given up (and its file
    /// kept, renamed `.failed`).
    static let maxAttempts = 5

    /// How long a worker's claim on a job holds: past the request time limit the master killed it.
    static func lease(_ s: Services) -> Double { max(600, s.pool.config.requestTimeoutSeconds + 60) }

    /// Queues the analysis of the spooled file `key` (organisation folder / file name) for `organizationId`.
    static func enqueue(_ jobs: JobQueue, key: String, organizationId: String) throws(StoreError) {
        try jobs.enqueue(kind: kind, key: key, organizationId: organizationId)
    }

    /// The record id of the instance spooled as `key` for `organizationId`.
    static func recordId(key: String, organizationId: String) -> String {
        var digest = RequestFingerprint("dicom instance")
        digest.add(organizationId)
        digest.add(key)
        return SortableID.derived(from: digest.bytes)
    }

    /// Analyses the next waiting instance, if there is one and this is an inference worker of a host
    /// that received any (its spool exists). True when it took one.
    static func analyseNext(_ s: Services, begin: () -> Void) -> Bool {
        guard s.pool.config.name == MediscopeApplication.inferencePool,
              FileManager.default.fileExists(atPath: DicomInbox.spool(s.config).path),
              let jobs = try? s.jobs(),
              let job = try? jobs.claim(kind: kind, owner: getpid(), lease: lease(s), maxRunningPerOrganization: Int.max,
                                        minSecondsBetweenStarts: 0) else { return false }
        begin()
        // Read once for the index and the analysis: an instance may be hundreds of MB.
        let path = DicomInbox.spool(s.config).appendingPathComponent(job.key).path
        let bytes = job.key.contains("..") ? nil : try? POSIXFiles.readFile(path, what: "received instance")
        let entry = bytes.flatMap { indexed(s, job, $0) }
        if let entry { mark(s, entry, .analysing) }
        var outcome = bytes.map { analyse(s, job, $0, path: path, entry) } ?? .missing
        if outcome == .retry, job.attempts >= maxAttempts {
            set(aside: job, as: "failed", s)
            outcome = .failed
        }
        if let entry {
            switch outcome {
            case .retry: mark(s, entry, .received, reason: "waiting to be tried again: the store or the models are unavailable")
            case .failed: mark(s, entry, .failed, reason: "the store or the models stayed unavailable through \(maxAttempts) attempts")
            default: break   // analyse marked it
            }
        }
        do {
            switch outcome {
            case .retry:
                try jobs.retry(job, at: Date().addingTimeInterval(30), error: "the store or the models are unavailable")
            default:
                try jobs.finish(job, outcome: outcome.name)
            }
        } catch {
            s.server.log.error("dicom_job_not_recorded", ["error": .token(.init(error.kind.rawValue))])
        }
        return true
    }

    enum Outcome: Equatable {
        case analysed, analysedBefore, conflict, refused, missing, retry, failed
        var name: String {
            switch self {
            case .analysed: "analysed"
            case .analysedBefore: "analysed_before"
            case .conflict: "conflict"
            case .refused: "refused"
            case .missing: "missing"
            case .retry: "retry"
            case .failed: "failed"
            }
        }
    }

    /// Keeps a spooled file that was not analysed beside it (`<name>.<reason>`) for IT to look at; it is
    /// no longer waiting.
    static func set(aside job: Job, as reason: String, _ s: Services) {
        let path = DicomInbox.spool(s.config).appendingPathComponent(job.key).path
        _ = rename(path, path + "." + reason)
    }

    /// The index entry of the job's instance (its SOP Instance UID read from the spooled file's attributes).
    static func indexed(_ s: Services, _ job: Job, _ bytes: [UInt8]) -> ReceivedInstanceEntry? {
        guard let file = try? DicomFile.read(bytes, limits: ImageLimits(maxPixels: s.config.maxImagePixels), decodePixels: false),
              let sop = file.attributes.sopInstanceUID else { return nil }
        return try? s.studies().entry(organizationId: job.organizationId, sopInstanceUID: sop)
    }

    /// Records in the study index where the instance's analysis stands (a failure to write it is logged:
    /// the analysis itself is what counts).
    static func mark(_ s: Services, _ entry: ReceivedInstanceEntry, _ state: ReceivedInstanceEntry.State, reason: String? = nil,
                     record: AnalysisRecord? = nil) {
        let findings = record.map(findings) ?? []
        do {
            try s.studies().mark(organizationId: entry.organizationId, sopInstanceUID: entry.sopInstanceUID, state: state, reason: reason,
                                 analysisId: record?.id, findings: findings,
                                 outOfScope: record.flatMap { $0.inputCheck.verdict == .notChecked ? nil : $0.inputCheck.verdict == .outOfScope })
        } catch {
            s.server.log.warning("study_index_not_written", ["error": .token(.init(String(describing: type(of: error))))])
        }
    }

    /// What a record's results found, as the series summary counts them: the prediction, and for a binary
    /// result ([negative, positive]) the positive label's probability.
    static func findings(_ record: AnalysisRecord) -> [ReceivedInstanceEntry.Finding] {
        record.results.map { r in
            let positive = r.task == "binary" && r.probabilities.count == 2 ? r.probabilities[1] : nil
            return ReceivedInstanceEntry.Finding(result: r.id, title: r.title, prediction: r.prediction,
                                                 predictionTitle: r.probabilities.first { $0.label == r.prediction }?.title,
                                                 positiveProbability: positive?.probability, positiveLabel: positive?.label,
                                                 positiveLabelTitle: positive?.title)
        }
    }

    /// Analyses the spooled instance `bytes` (read from `path`) of `job`.
    static func analyse(_ s: Services, _ job: Job, _ bytes: [UInt8], path: String, _ entry: ReceivedInstanceEntry?) -> Outcome {
        func failed(_ reason: String) { if let entry { mark(s, entry, .failed, reason: reason) } }
        let id = recordId(key: job.key, organizationId: job.organizationId)
        do {
            // A file that crashed a worker before is not decoded again (the crash ledger, as for uploads).
            try s.server.admitContent(slot: s.slot, content: CrashLedger.contentKey(sha256Hex: SHA256Hex.digest(bytes)))
            let fields = try DicomAPI.fields(bytes, limits: ImageLimits(maxPixels: s.config.maxImagePixels), log: s)
            let patient = PatientInfo(patientId: fields.patientId ?? "UNKNOWN", name: fields.patientName, age: fields.age, sex: fields.sex,
                                      modality: fields.modality, bodyPart: fields.bodyPart)
            let upload = UploadAnalysis(pipeline: try s.pipeline(), store: try s.store())
            let outcome: UploadOutcome
            do {
                outcome = try upload.run(image: bytes, patient: patient, organizationId: job.organizationId, createdBy: nil,
                                         idempotency: IdempotentCreate(id: id, fingerprint: SHA256Hex.digest(bytes)))
            } catch let error as StoreError where error.kind == .conflict {
                // Analysed before (a redelivery, or a rerun after its worker died): the same bytes are the same
                // instance; other bytes under its SOP Instance UID are set aside, never analysed over it.
                let made = try? s.store().get(id: id, organizationId: job.organizationId)
                guard let made, made.idempotencyFingerprint == SHA256Hex.digest(bytes) else {
                    s.server.log.warning("dicom_instance_conflicts", ["job": .int(Int(job.id))])
                    set(aside: job, as: "conflict", s)
                    failed("an analysis of other bytes under this SOP Instance UID exists")
                    return .conflict
                }
                if let entry { mark(s, entry, .done, record: made) }
                ReportAPI.enqueueDraft(ofReceived: made, s)   // its worker may have died before it did
                ResultsSending.analysisCreated(s, made)
                try? FileManager.default.removeItem(atPath: path)
                return .analysedBefore
            } catch let error as StoreError where error.kind == .unavailable {
                return .retry
            } catch {
                s.publishLoadedModels()
                s.server.log.warning("dicom_instance_not_analysed", ["job": .int(Int(job.id)), "error": .token(.init(String(describing: type(of: error))))])
                set(aside: job, as: "refused", s)
                failed("the analysis failed (\(String(describing: type(of: error))))")
                return .refused
            }
            s.publishLoadedModels(outcome.loadedModelIDs)
            s.observe(outcome)
            let audit = AuditEntry(actorUserId: nil, actorUsername: "dicom", organizationId: job.organizationId, action: "analysis.create",
                                   recordId: outcome.record.id, address: "dicom", outcome: "success")
            do { try s.accounts().audit(audit) } catch {
                s.server.log.error("audit_write_failed", ["action": .word("analysis.create")])
            }
            if let entry { mark(s, entry, .done, record: outcome.record) }
            ReportAPI.enqueueDraft(ofReceived: outcome.record, s)
            ResultsSending.analysisCreated(s, outcome.record)
            try? FileManager.default.removeItem(atPath: path)
            s.server.log.info("dicom_instance_analysed", ["analysis": .token(.init(outcome.record.id))])
            return .analysed
        } catch {
            // A store or the models out of reach now (5xx): again later; the file itself (4xx): set aside.
            if error.status >= 500 { return .retry }
            s.server.log.warning("dicom_instance_not_analysed", ["job": .int(Int(job.id)), "status": .int(error.status)])
            set(aside: job, as: "refused", s)
            failed(error.detail)
            return .refused
        }
    }
}
