import Foundation
import MediscopeStore

/// An analysis as the stores receive it: a scan (jpeg, `scanBytes` or random) and two results whose
/// heatmaps are webp and png, with patient details that include non-ASCII text.
package func makeAnalysis(org: String = "org-a", patientId: String = "P-001", createdBy: String? = "user-1",
                          scanBytes: [UInt8]? = nil, imageSize: Int = 2048) -> NewAnalysis {
    let scan = ImageBlob.make(bytes: scanBytes ?? randomBytes(imageSize), contentType: "image/jpeg", width: 512, height: 384)
    let heat1 = ImageBlob.make(bytes: randomBytes(imageSize), contentType: "image/webp", width: 512, height: 384)
    let heat2 = ImageBlob.make(bytes: randomBytes(imageSize), contentType: "image/png", width: 512, height: 384)
    let results = [
        StoredResult(id: "tumor", model: "tumor-resnet18", title: "Brain tumour", task: "multiclass",
                     probabilities: [StoredProbability(label: "glioma", probability: 0.8125),
                                     StoredProbability(label: "meningioma", probability: 0.125),
                                     StoredProbability(label: "none", probability: 0.0625)],
                     prediction: "glioma", confidence: 0.8125, explainedLabel: "glioma", heatmap: heat1.ref),
        StoredResult(id: "stroke", model: "stroke-effnet", title: "Stroke", task: "binary",
                     probabilities: [StoredProbability(label: "stroke", probability: 0.1),
                                     StoredProbability(label: "normal", probability: 0.9)],
                     prediction: "normal", confidence: 0.9, explainedLabel: "normal", heatmap: heat2.ref),
    ]
    return NewAnalysis(
        organizationId: org, createdBy: createdBy,
        patient: PatientInfo(patientId: patientId, name: "Jane Roe", age: 54, sex: "female", modality: "MRI",
                             bodyPart: "brain", note: "follow-up, ünïcode ✓"),
        imageWidth: 1024, imageHeight: 768, scan: scan.ref, results: results,
        timingsMs: ["decode": 1.5, "inference": 123.456, "gradcam": 0.1 + 0.2],
        images: [scan, heat1, heat2])
}
