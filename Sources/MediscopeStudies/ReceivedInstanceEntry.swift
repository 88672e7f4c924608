import Foundation

/// One DICOM instance this host received (by C-STORE or STOW-RS), as the Studies view lists it: where it
/// belongs (study, series), where it came from, and how far its analysis is.
///
/// Patient data (Patient ID and name, UIDs, descriptions): kept with the same access rules as an analysis
/// record (the caller's organisation only), never logged.
package struct ReceivedInstanceEntry: Sendable, Equatable, Codable {
    /// Where an instance's analysis stands.
    package enum State: String, Sendable, Codable, CaseIterable {
        /// Kept in the spool; its analysis waits for an inference worker.
        case received
        /// An inference worker is analysing it now.
        case analysing
        /// Analysed: `analysisId` names the record.
        case done
        /// Not analysed: `reason` says why (the file set aside, the models refused it, ...).
        case failed
        /// Received past the series' cap (`dicom.max_instances_per_series`): acknowledged, not analysed.
        case skipped
    }

    package var organizationId: String
    package var studyInstanceUID: String
    package var seriesInstanceUID: String
    package var sopInstanceUID: String
    package var sopClassUID: String?
    package var patientId: String?
    package var patientName: String?
    package var studyDate: String?
    package var studyDescription: String?
    package var seriesDescription: String?
    package var seriesNumber: Int?
    package var instanceNumber: Int?
    package var modality: String?
    /// `c-store` or `stow-rs`.
    package var transport: String
    /// The sender: the calling AE title for C-STORE, the clinician's user id for STOW-RS.
    package var sender: String
    package var receivedAt: Date
    package var state: State
    /// Why it failed or was skipped, in words for IT and clinicians (no patient data).
    package var reason: String?
    /// The analysis made of it, once done.
    package var analysisId: String?
    /// What the analysis found, once done (one entry per model result).
    package var findings: [Finding]
    /// Whether the input check flagged the image as outside the models' scope (nil: not analysed, or no check).
    package var outOfScope: Bool?

    /// One model result of the instance's analysis, as the series summary counts it.
    package struct Finding: Sendable, Equatable, Codable {
        /// The result's id (`brain-tumor-vgg16`, `tumor-presence`).
        package var result: String
        package var title: String
        package var prediction: String
        /// The predicted label as people read it (the manifest's title), when the model names one.
        package var predictionTitle: String?
        /// For a binary result ([negative, positive] labels): the positive label's probability; else nil.
        package var positiveProbability: Double?
        /// For a binary result: its positive label, and that label as people read it.
        package var positiveLabel: String?
        package var positiveLabelTitle: String?
        package init(result: String, title: String, prediction: String, predictionTitle: String? = nil, positiveProbability: Double?,
                     positiveLabel: String?, positiveLabelTitle: String? = nil) {
            self.result = result; self.title = title; self.prediction = prediction; self.predictionTitle = predictionTitle
            self.positiveProbability = positiveProbability; self.positiveLabel = positiveLabel; self.positiveLabelTitle = positiveLabelTitle
        }
    }

    package init(organizationId: String, studyInstanceUID: String, seriesInstanceUID: String, sopInstanceUID: String,
                 sopClassUID: String? = nil, patientId: String? = nil, patientName: String? = nil, studyDate: String? = nil,
                 studyDescription: String? = nil, seriesDescription: String? = nil, seriesNumber: Int? = nil,
                 instanceNumber: Int? = nil, modality: String? = nil, transport: String, sender: String,
                 receivedAt: Date = Date(), state: State = .received, reason: String? = nil, analysisId: String? = nil,
                 findings: [Finding] = [], outOfScope: Bool? = nil) {
        self.organizationId = organizationId; self.studyInstanceUID = studyInstanceUID
        self.seriesInstanceUID = seriesInstanceUID; self.sopInstanceUID = sopInstanceUID; self.sopClassUID = sopClassUID
        self.patientId = patientId; self.patientName = patientName; self.studyDate = studyDate
        self.studyDescription = studyDescription; self.seriesDescription = seriesDescription
        self.seriesNumber = seriesNumber; self.instanceNumber = instanceNumber; self.modality = modality
        self.transport = transport; self.sender = sender; self.receivedAt = receivedAt; self.state = state
        self.reason = reason; self.analysisId = analysisId; self.findings = findings; self.outOfScope = outOfScope
    }
}
