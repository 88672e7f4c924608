import Foundation
import MediscopeStore
import Testing
import TestSupport
@testable import MediscopeLLM

/// The prompt and the fallback are built from `ReportFacts` only: nothing that identifies a person.
@Suite struct ReportWritingTests {
    static let templates = Repository.root.appendingPathComponent("templates")

    /// Distinctive values that must never leave: patient id, name, note, user, organisation, DICOM identifiers.
    static let secrets = ["PID-ZX81-7731", "Gwendolyn Quaxley", "lives at 12 Crescent Row", "user-TKN9Q", "org-KQ7V2",
                          "1.2.826.0.1.3680043.8.498.777", "20240229", "series-QQ-unique"]

    static func record(age: Int? = 93) -> AnalysisRecord {
        let ref = ImageRef(key: String(repeating: "a", count: 64), contentType: "image/webp", width: 8, height: 8, byteCount: 10)
        return AnalysisRecord(
            id: "01J0000000000000000000000Z", createdAt: Date(timeIntervalSince1970: 1_700_000_000), organizationId: secrets[4],
            createdBy: secrets[3],
            patient: PatientInfo(patientId: secrets[0], name: secrets[1], age: age, sex: "female", modality: "MRI",
                                 bodyPart: "brain", note: secrets[2]),
            imageWidth: 512, imageHeight: 512, scan: ref,
            results: [StoredResult(id: "tumor", model: "tumor-resnet18", title: "Brain tumour", task: "multiclass",
                                   probabilities: [StoredProbability(label: "glioma", title: "Glioma", probability: 0.71),
                                                   StoredProbability(label: "no_tumor", title: "No tumour", probability: 0.29)],
                                   prediction: "glioma", confidence: 0.71, explainedLabel: "glioma", heatmap: ref)],
            timingsMs: [:], report: nil,
            source: ScanSource(format: "dicom", study: DicomStudy(studyInstanceUID: secrets[5], studyDate: secrets[6],
                                                                  seriesDescription: secrets[7])))
    }

    @Test func thePromptHoldsResultsAndCoarseFactsOnly() throws {
        let writing = try ReportWriting(directory: Self.templates)
        let messages = writing.messages(ReportFacts(Self.record()))
        let sent = String(decoding: ChatCompletionsClient(settings: LLMSettings(baseURL: URL(string: "http://x")!, model: "m"))
            .requestBody(messages), as: UTF8.self)
        for secret in Self.secrets { #expect(!sent.contains(secret), "the prompt holds \(secret)") }
        let prompt = messages[1].content
        // The facts go as one delimited JSON object (data, not prose).
        let start = try #require(prompt.range(of: "<facts>\n")), end = try #require(prompt.range(of: "\n</facts>"))
        let facts = try #require(try JSONSerialization.jsonObject(with: Data(prompt[start.upperBound..<end.lowerBound].utf8)) as? [String: Any])
        #expect(facts["modality"] as? String == "MRI" && facts["bodyPart"] as? String == "brain")
        #expect(facts["age"] as? String == "90+" && facts["sex"] as? String == "female")
        let finding = try #require((facts["findings"] as? [[String: Any]])?.first)
        #expect(finding["title"] as? String == "Brain tumour" && finding["prediction"] as? String == "Glioma")
        #expect(finding["confidencePercent"] as? Int == 71)
        #expect((finding["probabilities"] as? [[String: Any]])?.last?["label"] as? String == "No tumour")
        #expect(!prompt.contains("93"), "ages of 90 and over are given as 90+")
        #expect(!prompt.contains("&quot;") && !prompt.contains("&amp;"), "plain text, not HTML-escaped")
        #expect(messages[0].content == ReportWriting.systemInstruction)
        #expect(messages[0].content.contains("not a diagnosis") && messages[0].content.contains("heatmap"))
    }

    @Test func theFallbackIsACompleteReportFromTheNumbersAlone() throws {
        let text = try ReportWriting(directory: Self.templates).fallback(ReportFacts(Self.record(age: 54)))
        for secret in Self.secrets { #expect(!text.contains(secret)) }
        #expect(text.contains("MRI scan of the brain (patient aged 54, female)"))
        #expect(text.contains("Brain tumour: the model's prediction is \"Glioma\" with 71% confidence (Glioma 71%, No tumour 29%)"))
        #expect(text.contains("not a diagnosis"))
    }

    /// Issue 21: a reply that is not a report of the facts it was given never becomes a draft.
    @Test(arguments: [
        ("I can't help with medical image interpretation. Please consult a radiologist.", "refusal"),
        ("I\u{2019}m sorry, but I cannot provide that.", "refusal"),
        ("Here is a short summary of the weather for the week ahead.", "names none of the results"),
        ("The Brain tumour model predicted Glioma with a confidence of 9", "mid-sentence"),
    ])
    func repliesThatAreNoReportAreRefused(_ reply: String, _ words: String) {
        let problem = ReportWriting.problem(with: reply, for: ReportFacts(Self.record()))
        #expect(problem?.contains(words) == true, "\(String(describing: problem))")
    }

    @Test(arguments: [
        "The brain tumour model predicts glioma (71%). The heatmap shows what drove it; a clinician must review the images.",
        "Automated analysis: GLIOMA was the most likely label.",
        "The brain-tumour model found \"No tumour\" unlikely (29%), and the heatmap is not an outline of disease.",
        "Brain Tumour: the results are shown above (decision support only)",
    ])
    func repliesThatReportTheFactsAreKept(_ reply: String) {
        #expect(ReportWriting.problem(with: reply, for: ReportFacts(Self.record())) == nil)
    }

    @Test func labelsAreFoundWithoutCaseAccentsOrUnderscores() {
        var record = Self.record()
        record.results[0].probabilities = [StoredProbability(label: "no_tumor", probability: 0.8),
                                           StoredProbability(label: "méningiome", probability: 0.2)]
        record.results[0].prediction = "no_tumor"
        record.results[0].title = "Présence"
        let facts = ReportFacts(record)
        #expect(ReportWriting.problem(with: "The model saw no tumor.", for: facts) == nil)
        #expect(ReportWriting.problem(with: "The presence model answered.", for: facts) == nil)
        #expect(ReportWriting.problem(with: "Nothing relevant.", for: facts) != nil)
    }

    @Test func missingTemplatesAreAClearError() {
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("no-templates-\(UUID().uuidString)")
        #expect { try ReportWriting(directory: empty) } throws: { ($0 as? ReportWritingError)?.message.contains("report-prompt.mustache") == true }
    }
}
