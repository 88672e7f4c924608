import MediscopeAuth
import MediscopeImaging
import MediscopeInference
import MediscopeStore

/// The upload use case: analyse one image for one patient and store the result durably.
///
/// decode -> infer -> explain (the pipeline) -> build the record -> store. It knows nothing of HTTP:
/// the handler parses the form before and turns the outcome (or the error) into a response after.
struct UploadAnalysis {
    let pipeline: AnalysisPipeline
    let store: AnalysisStore

    /// Runs the pipeline on `image` and stores the analysis for `patient`, created by `user`.
    /// Throws `AnalysisError` (the image or the models) or `StoreError` (the store); both convert to
    /// problems in ProblemConvertible.swift. `frame` (0-based) chooses a DICOM file's frame; nil: the
    /// middle one. `idempotency` names the record for an upload under an Idempotency-Key.
    func run(image: [UInt8], frame: Int? = nil, patient: PatientInfo, by user: User,
             idempotency: IdempotentCreate? = nil) throws -> UploadOutcome {
        try run(image: image, frame: frame, patient: patient, organizationId: user.organizationId, createdBy: user.id,
                idempotency: idempotency)
    }

    /// The same for an image no user uploaded (`createdBy` nil: one a PACS sent).
    func run(image: [UInt8], frame: Int? = nil, patient: PatientInfo, organizationId: String, createdBy: String?,
             idempotency: IdempotentCreate? = nil) throws -> UploadOutcome {
        // The form's modality and body part are checked against each model's scope, like a DICOM file's own.
        // Overlays are drawn when first looked at (an io worker, `AnalysisStore.bytes(of:)`), not here.
        let analysis = try pipeline.analyze(imageBytes: image, frame: frame,
                                            declared: InputDeclaration(modality: patient.modality, bodyPart: patient.bodyPart),
                                            overlays: .later)
        guard let scan = analysis.scan, let lossless = analysis.losslessScan, let style = analysis.overlayStyle else {
            throw AnalysisError.badImage(ImagingError(kind: .encodeFailed, message: "no display image was rendered"))
        }

        // Each image is hashed once, here; the store trusts a blob made by ImageBlob.make.
        func blob(_ image: EncodedImage) -> ImageBlob {
            ImageBlob.make(bytes: image.bytes, format: image.format, width: image.width, height: image.height)
        }
        let scanBlob = blob(scan), losslessBlob = blob(lossless)
        let images = [scanBlob, losslessBlob]
        let results = analysis.results.map { outcome in
            let drawing = HeatmapDrawing(scan: losslessBlob.ref.key, gradCAM: outcome.gradCAM, style: style)
            return StoredResult(outcome, heatmap: .drawn(drawing, format: style.format, width: lossless.width, height: lossless.height))
        }
        let new = NewAnalysis(
            organizationId: organizationId, createdBy: createdBy, patient: patient,
            imageWidth: analysis.imageWidth, imageHeight: analysis.imageHeight, scan: scanBlob.ref, results: results,
            timingsMs: analysis.timings.byStage, images: images,
            source: ScanSource(format: analysis.format.rawValue, exifOrientation: analysis.orientation?.rawValue,
                               orientationApplied: analysis.orientation.map(\.summary),
                               dicom: analysis.dicom,
                               study: analysis.dicomAttributes.map {
                                   DicomStudy(studyInstanceUID: $0.studyInstanceUID, seriesInstanceUID: $0.seriesInstanceUID,
                                              sopInstanceUID: $0.sopInstanceUID, studyDate: $0.studyDate,
                                              seriesDescription: $0.seriesDescription)
                               }),
            inputCheck: analysis.inputCheck, idempotency: idempotency)
        let start = ContinuousClock.now
        let record = try store.create(new)
        let elapsed = (ContinuousClock.now - start).components
        return UploadOutcome(record: record, timings: analysis.timings, modelTimings: analysis.modelTimings,
                             storeMilliseconds: Double(elapsed.seconds) * 1000 + Double(elapsed.attoseconds) / 1e15,
                             loadedModelIDs: pipeline.loadedModelIDs)
    }
}

extension StoredResult {
    /// The one mapping from a pipeline result to the stored one; the API serves the stored one with its
    /// heatmap as a URL (`AnalysisBody`).
    init(_ outcome: ResultOutcome, heatmap: ImageRef) {
        self.init(id: outcome.id, model: outcome.model, title: outcome.title, task: outcome.task.rawValue,
                  probabilities: outcome.probabilities.map { StoredProbability(label: $0.label, title: $0.title, probability: $0.probability) },
                  prediction: outcome.prediction, confidence: outcome.confidence, explainedLabel: outcome.explainedLabel,
                  heatmap: heatmap)
    }
}
