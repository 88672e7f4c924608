import Foundation
import MediscopeImaging
import MediscopeReport
import MediscopeServer
import MediscopeStore

/// An analysis as a FHIR R4 DiagnosticReport (`GET /api/analyses/{id}/fhir`, `application/fhir+json`): the
/// report's state and text, and, contained in it, the patient, the study (for a DICOM upload), the signer,
/// one Observation per model result and one Device per model.
///
/// Only what the record holds is stated: no code system is invented (concepts are text), the patient has
/// the identifier, name and sex of the upload form and no age (FHIR's Patient holds a birth date, which the
/// form's age is not), a Device has the model id and title (the record keeps no model version or digest).
/// Contained resources have local ids ("#patient", "#result-1") that the report's references name.
struct FhirDiagnosticReport: Encodable {
    /// FHIR's JSON media type (FHIR R4 "JSON Representation of Resources").
    static let contentType = "application/fhir+json"
    /// UCUM, whose unit `1` the probabilities have.
    static let ucum = "http://unitsofmeasure.org"
    /// What every view of a result says: "Decision support only, not a diagnosis. ..."
    static let notice = DecisionSupport.notice

    var resourceType = "DiagnosticReport"
    var id: String
    var text: Narrative
    var contained: [Resource]
    var status: String
    var category: [CodeableConcept]
    var code: CodeableConcept
    var subject: Reference
    var effectiveDateTime: String
    var issued: String
    var performer: [Reference]?
    var result: [Reference]?
    var imagingStudy: [Reference]?
    var conclusion: String?

    /// The report of `record` whose versions are `versions` (oldest first, as `ReportStore.versions` gives them).
    init(_ record: AnalysisRecord, versions: [ReportVersion]) {
        let current = ReportVersions.current(versions)
        let signedCount = versions.filter { $0.status == .signed }.count
        // A pending or draft report is preliminary; the first signature makes it final, each later one an amendment.
        status = current?.status != .signed ? "preliminary" : signedCount > 1 ? "amended" : "final"
        id = record.id
        let created = Self.instant(record.createdAt)
        effectiveDateTime = created
        issued = current.map { Self.instant($0.createdAt) } ?? created
        conclusion = current?.text
        category = [CodeableConcept(coding: [Coding(system: "http://terminology.hl7.org/CodeSystem/v2-0074", code: "RAD", display: "Radiology")])]
        code = CodeableConcept(text: "Mediscope image analysis (decision support)")
        subject = Reference(reference: "#patient")

        var contained: [Resource] = [.patient(Patient(record.patient))]
        if let uid = record.source?.study?.studyInstanceUID, !uid.isEmpty {
            contained.append(.imagingStudy(ImagingStudy(uid: uid, studyDate: record.source?.study?.studyDate)))
            imagingStudy = [Reference(reference: "#study")]
        }
        if let current, current.status == .signed {
            let name = current.authorName ?? "unknown clinician"
            contained.append(.practitioner(Practitioner(id: "signer", name: [HumanName(text: name)])))
            performer = [Reference(reference: "#signer", display: name)]
        }
        // One Device per model (several results may come from one model), in the order of the results.
        var devices: [String: String] = [:]
        for result in record.results where devices[result.model] == nil {
            let deviceId = "model-\(devices.count + 1)"
            devices[result.model] = deviceId
            contained.append(.device(Device(id: deviceId, model: result.model)))
        }
        let observationStatus = status == "preliminary" ? "preliminary" : "final"
        let inputNote = record.inputCheck.sentence
        var results: [Reference] = []
        for (index, result) in record.results.enumerated() {
            let observationId = "result-\(index + 1)"
            results.append(Reference(reference: "#\(observationId)", display: result.title))
            contained.append(.observation(Observation(
                id: observationId, status: observationStatus, code: CodeableConcept(text: result.title), subject: Reference(reference: "#patient"),
                effectiveDateTime: created, issued: created, device: Reference(reference: "#\(devices[result.model] ?? "")"),
                result: result, inputCheck: record.inputCheck, notes: [Annotation(text: inputNote), Annotation(text: Self.notice)])))
        }
        result = results.isEmpty ? nil : results
        self.contained = contained
        text = Narrative(status: "additional", div: "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>\(Self.escaped(Self.notice))</p></div>")
    }

    /// A FHIR instant (and dateTime): UTC with milliseconds, as the record keeps them.
    static func instant(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }

    /// `text` for XHTML character content.
    static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// The report as `application/fhir+json`, never kept by a cache (it holds patient data and changes on signing).
    var response: HTTPResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return Problem(status: 500, detail: "response could not be encoded").response }
        return HTTPResponse(status: 200, headers: [("Content-Type", Self.contentType), ("Cache-Control", "no-store")], body: Array(data))
    }
}

extension FhirDiagnosticReport {
    /// One contained resource; each encodes as its own JSON object with its `resourceType`.
    enum Resource: Encodable {
        case patient(Patient), imagingStudy(ImagingStudy), practitioner(Practitioner), device(Device), observation(Observation)

        func encode(to encoder: any Encoder) throws {
            switch self {
            case .patient(let r): try r.encode(to: encoder)
            case .imagingStudy(let r): try r.encode(to: encoder)
            case .practitioner(let r): try r.encode(to: encoder)
            case .device(let r): try r.encode(to: encoder)
            case .observation(let r): try r.encode(to: encoder)
            }
        }
    }

    struct Coding: Encodable {
        var system: String?
        var code: String?
        var display: String?
    }
    struct CodeableConcept: Encodable {
        var coding: [Coding]? = nil
        var text: String? = nil
    }
    struct Reference: Encodable {
        var reference: String
        var display: String? = nil
    }
    struct Identifier: Encodable {
        var system: String? = nil
        var value: String
    }
    struct HumanName: Encodable {
        var text: String
    }
    struct Annotation: Encodable {
        var text: String
    }
    struct Narrative: Encodable {
        var status: String
        var div: String
    }
    struct Quantity: Encodable {
        var value: Double
        var unit = "1"
        var system = FhirDiagnosticReport.ucum
        var code = "1"
    }

    /// The patient as the upload form (or the DICOM file) gave them.
    struct Patient: Encodable {
        var resourceType = "Patient"
        var id = "patient"
        var identifier: [Identifier]
        var name: [HumanName]?
        var gender: String?

        init(_ info: PatientInfo) {
            identifier = [Identifier(value: info.patientId)]
            name = info.name.flatMap { $0.isEmpty ? nil : [HumanName(text: $0)] }
            // The form's values are FHIR's administrative genders already (female | male | other | unknown).
            gender = info.sex.flatMap { ["female", "male", "other", "unknown"].contains($0) ? $0 : nil }
        }
    }

    /// The DICOM study the image came from, named by its Study Instance UID (DICOM PS3.18 / FHIR's `urn:dicom:uid`).
    struct ImagingStudy: Encodable {
        var resourceType = "ImagingStudy"
        var id = "study"
        var identifier: [Identifier]
        var status = "available"
        var subject = Reference(reference: "#patient")
        var started: String?

        init(uid: String, studyDate: String?) {
            identifier = [Identifier(system: "urn:dicom:uid", value: "urn:oid:" + uid)]
            // DICOM's DA (YYYYMMDD) as a FHIR date, when it is one.
            if let d = studyDate, d.count == 8, d.allSatisfy({ $0.isASCII && $0.isNumber }) {
                started = "\(d.prefix(4))-\(d.dropFirst(4).prefix(2))-\(d.suffix(2))"
            }
        }
    }

    /// The clinician who signed (or last amended) the report.
    struct Practitioner: Encodable {
        var resourceType = "Practitioner"
        var id: String
        var name: [HumanName]
    }

    /// A model that made results: its manifest id.
    struct Device: Encodable {
        struct DeviceName: Encodable {
            var name: String
            var type: String
        }
        var resourceType = "Device"
        var id: String
        var identifier: [Identifier]
        var deviceName: [DeviceName]
        var type = CodeableConcept(text: "Image classification model (Mediscope)")

        init(id: String, model: String) {
            self.id = id
            identifier = [Identifier(value: model)]
            deviceName = [DeviceName(name: model, type: "model-name")]
        }
    }

    /// One model result: the prediction, and each class's probability as a component (UCUM unit 1).
    struct Observation: Encodable {
        struct Component: Encodable {
            var code: CodeableConcept
            var valueQuantity: Quantity
        }
        var resourceType = "Observation"
        var id: String
        var status: String
        var category = [CodeableConcept(coding: [Coding(system: "http://terminology.hl7.org/CodeSystem/observation-category",
                                                        code: "imaging", display: "Imaging")])]
        var code: CodeableConcept
        var subject: Reference
        var effectiveDateTime: String
        var issued: String
        var valueCodeableConcept: CodeableConcept
        var interpretation: [CodeableConcept]?
        var note: [Annotation]
        var device: Reference
        var component: [Component]?

        init(id: String, status: String, code: CodeableConcept, subject: Reference, effectiveDateTime: String, issued: String,
             device: Reference, result: StoredResult, inputCheck: InputCheck, notes: [Annotation]) {
            self.id = id; self.status = status; self.code = code; self.subject = subject
            self.effectiveDateTime = effectiveDateTime; self.issued = issued; self.device = device; note = notes
            let predicted = result.probabilities.first { $0.label == result.prediction }
            valueCodeableConcept = CodeableConcept(text: predicted?.title ?? result.prediction)
            let components = result.probabilities.map {
                Component(code: CodeableConcept(text: $0.title ?? $0.label), valueQuantity: Quantity(value: $0.probability))
            }
            component = components.isEmpty ? nil : components
            // The verdict as an interpretation too, in words (no code system says "out of the model's scope").
            interpretation = [CodeableConcept(text: "Input check: " + inputCheck.verdict.rawValue.replacingOccurrences(of: "_", with: " "))]
        }
    }
}
