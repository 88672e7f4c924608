import Foundation
import MediscopeImaging
import MediscopeInference
import MediscopeServer

extension Services {
    /// Records one stored analysis: its stage times (milliseconds in, seconds out) and its input check.
    func observe(_ upload: UploadOutcome) {
        observeInputCheck(upload.record.inputCheck)
        guard let histograms else { return }
        let t = upload.timings
        for (stage, ms) in [("decode", t.decode), ("encode", t.encode), ("store", upload.storeMilliseconds)] {
            histograms.observe(StageMetrics.stageSeconds, labels: "stage=\"\(stage)\"", seconds: ms / 1000)
        }
        for (model, own) in upload.modelTimings.sorted(by: { $0.key < $1.key }) {
            let m = StageMetrics.label(model)
            for (stage, ms) in [("preprocess", own.preprocess), ("forward", own.forward), ("gradcam", own.gradCAM)] {
                histograms.observe(StageMetrics.stageSeconds, labels: "stage=\"\(stage)\",model=\"\(m)\"", seconds: ms / 1000)
            }
        }
    }

    /// Counts one stored analysis by its input check's verdict and, when out of scope, by each reason code.
    func observeInputCheck(_ check: InputCheck) {
        guard let histograms else { return }
        histograms.increment(StageMetrics.inputChecks, labels: "verdict=\"\(check.verdict.rawValue)\"")
        guard check.verdict == .outOfScope else { return }
        // One count per code and analysis, whichever models gave it.
        for code in Set(check.reasons.map(\.code)).sorted() {
            histograms.increment(StageMetrics.inputCheckReasons, labels: "reason=\"\(StageMetrics.label(code))\"")
        }
    }

    /// Records how long `request` waited between nginx and this worker, when nginx said when it sent it.
    func observeQueueing(_ request: HTTPRequest) {
        guard let histograms, let queuedAt = request.queuedAt else { return }
        histograms.observe(StageMetrics.queueSeconds, labels: "pool=\"\(StageMetrics.label(pool.config.name))\"",
                           seconds: Date().timeIntervalSince1970 - queuedAt)
    }

    /// DICOM's status, when this host listens, has received anything or sends results (else nil: nothing to say).
    func dicomStatus() -> DicomStatus? {
        let destinations = config.dicomSending.destinations.map(\.name)
        guard config.dicom != nil || !destinations.isEmpty || FileManager.default.fileExists(atPath: DicomInbox.spool(config).path),
              let index = try? studies(), var status = try? DicomStatus(config: config, index: index) else { return nil }
        if !destinations.isEmpty { status.destinations = try? dicomOutbox().stats(destinations: destinations) }
        return status
    }
}
