import Foundation
import Testing
import TestSupport

/// `GET /api/analyses/{id}/fhir` through real nginx and the real pool: a FHIR R4 DiagnosticReport that the pinned
/// fhir.resources (Tests/FHIR, its venv made by this run) accepts, whose status follows the report (preliminary,
/// final once signed, amended after), whose Observations hold the analysis's probabilities, which names the
/// DICOM study an image came from; another organisation gets 404, every view is audited, no log holds the patient.
@Suite(.serialized) final class FhirTests {
    static let folder = Repository.root.appendingPathComponent("Tests/FHIR")
    let stack: Stack
    let adminToken: String
    let otherOrgToken: String

    init() async throws {
        stack = try await Stack.start()
        adminToken = try stack.token(forNewUser: "fhir-admin", role: "admin")
        otherOrgToken = try stack.token(forNewUser: "fhir-other", role: "clinician", organization: "other")
    }
    deinit { stack.stop() }

    /// The FHIR venv's python (Tests/FHIR/setup-venv.sh: created on first use, a no-op when current).
    static func python() async throws -> URL {
        let run = try await runProcess(URL(fileURLWithPath: "/bin/bash"), [folder.appendingPathComponent("setup-venv.sh").path], timeout: 600)
        let path = run.stdout.split(separator: "\n").last.map(String.init) ?? ""
        try #require(run.status == 0 && FileManager.default.isExecutableFile(atPath: path), "setup-venv.sh failed: \(run.stderr)")
        return URL(fileURLWithPath: path)
    }

    /// Whether Tests/FHIR/validate.py accepts `body` as FHIR (the R4B models, plus the R4 rules they leave unchecked).
    func expectValid(_ body: Data, _ what: String) async throws {
        let run = try await runProcess(try await Self.python(), [Self.folder.appendingPathComponent("validate.py").path],
                                 input: String(decoding: body, as: UTF8.self), timeout: 120)
        #expect(run.status == 0 && run.stdout.hasPrefix("ok"), "\(what): \(run.stdout)\(run.stderr)")
    }

    /// The DiagnosticReport of `id` as the clinician fetches it, checked for its media type and validated.
    func report(_ id: String, _ what: String) async throws -> [String: Any] {
        let r = try await stack.request("GET", "/api/analyses/\(id)/fhir")
        #expect(r.status == 200, "\(what): \(r.status)")
        #expect(r.header("Content-Type") == "application/fhir+json" && r.header("Cache-Control") == "no-store", "\(what)")
        try await expectValid(r.body, what)
        let json = try #require(r.json)
        #expect(json["resourceType"] as? String == "DiagnosticReport" && json["id"] as? String == id)
        return json
    }

    /// The contained resource a local reference ("#result-1") names.
    func contained(_ report: [String: Any], _ reference: Any?) throws -> [String: Any] {
        let ref = try #require((reference as? [String: Any])?["reference"] as? String)
        let all = report["contained"] as? [[String: Any]] ?? []
        return try #require(all.first { "#" + ($0["id"] as? String ?? "") == ref }, "\(ref) is not contained")
    }

    func send(_ path: String, text: String, base: Int) async throws -> Stack.Response {
        let body = try JSONSerialization.data(withJSONObject: ["text": text, "baseVersion": base])
        return try await stack.request("POST", path, body: body, contentType: "application/json")
    }

    @Test func statusFollowsTheReportAndObservationsHoldTheAnalysis() async throws {
        _ = try await Self.python()   // the venv first: its first creation may take a while
        let fields = ["patient_id": "P-FHIR-7731", "patient_name": "Odalys Fhirsample", "sex": "female", "age": "61", "modality": "MRI"]
        let upload = try await stack.upload(image: try Scans.jpeg, fields: fields)
        #expect(upload.status == 201)
        let analysis = try #require(upload.json)
        let id = try #require(analysis["id"] as? String)

        // At once: the report may still be pending, or drafted; either way preliminary and unsigned.
        let first = try await report(id, "new analysis")
        #expect(first["status"] as? String == "preliminary" && first["performer"] == nil)
        let patient = try contained(first, first["subject"])
        #expect(patient["resourceType"] as? String == "Patient")
        #expect((patient["identifier"] as? [[String: Any]])?.map { $0["value"] as? String } == ["P-FHIR-7731"])
        #expect((patient["name"] as? [[String: Any]])?.first?["text"] as? String == "Odalys Fhirsample")
        #expect(patient["gender"] as? String == "female" && patient["birthDate"] == nil, "the age is no birth date: none invented")
        #expect(first["imagingStudy"] == nil, "a JPEG has no study")
        let createdAt = try #require(analysis["createdAt"] as? String)
        #expect((first["effectiveDateTime"] as? String)?.hasPrefix(String(createdAt.prefix(19))) == true, "effective: the analysis's time")
        #expect((first["text"] as? [String: Any])?["div"].map { "\($0)" }?.contains("Decision support only, not a diagnosis.") == true)

        // Each model result is an Observation with the analysis's prediction and probabilities, by its model's Device.
        let results = try #require(analysis["results"] as? [[String: Any]])
        let references = try #require(first["result"] as? [[String: Any]])
        #expect(references.count == results.count && !results.isEmpty)
        for (result, reference) in zip(results, references) {
            let observation = try contained(first, reference)
            let title = try #require(result["title"] as? String)
            #expect(observation["resourceType"] as? String == "Observation" && observation["status"] as? String == "preliminary")
            #expect((observation["code"] as? [String: Any])?["text"] as? String == title)
            let probabilities = try #require(result["probabilities"] as? [[String: Any]])
            let predicted = probabilities.first { $0["label"] as? String == result["prediction"] as? String }
            #expect((observation["valueCodeableConcept"] as? [String: Any])?["text"] as? String == predicted?["title"] as? String)
            var expected: [String: Double] = [:]
            for p in probabilities { expected[try #require(p["title"] as? String)] = try #require(p["probability"] as? Double) }
            var found: [String: Double] = [:]
            for component in observation["component"] as? [[String: Any]] ?? [] {
                let quantity = try #require(component["valueQuantity"] as? [String: Any])
                #expect(quantity["unit"] as? String == "1" && quantity["code"] as? String == "1"
                        && quantity["system"] as? String == "http://unitsofmeasure.org")
                found[try #require((component["code"] as? [String: Any])?["text"] as? String)] = quantity["value"] as? Double
            }
            #expect(found == expected, "\(title): the analysis's probabilities, exactly")
            let notes = (observation["note"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String }
            let verdict = try #require((analysis["inputCheck"] as? [String: Any])?["verdict"] as? String)
            #expect(notes.contains { $0.hasPrefix("Input check: ") } && notes.contains { $0.contains("not a diagnosis") })
            #expect((observation["interpretation"] as? [[String: Any]])?.first?["text"] as? String
                    == "Input check: " + verdict.replacingOccurrences(of: "_", with: " "))
            let device = try contained(first, observation["device"])
            #expect(device["resourceType"] as? String == "Device")
            #expect((device["identifier"] as? [[String: Any]])?.first?["value"] as? String == result["model"] as? String)
        }

        let draft = try await stack.draft(id)
        let drafted = try await report(id, "draft")
        #expect(drafted["status"] as? String == "preliminary" && drafted["conclusion"] as? String == draft["text"] as? String)

        let path = "/api/analyses/\(id)/report"
        let base = try #require(draft["version"] as? Int)
        #expect(try await send(path + "/sign", text: "Signed for the FHIR test.", base: base).status == 200)
        let signed = try await report(id, "signed")
        #expect(signed["status"] as? String == "final" && signed["conclusion"] as? String == "Signed for the FHIR test.")
        let performers = try #require(signed["performer"] as? [[String: Any]])
        #expect(performers.count == 1 && performers.first?["display"] as? String == "clinician")
        let signer = try contained(signed, performers.first)
        #expect(signer["resourceType"] as? String == "Practitioner"
                && (signer["name"] as? [[String: Any]])?.first?["text"] as? String == "clinician")
        #expect((try contained(signed, (signed["result"] as? [[String: Any]])?.first))["status"] as? String == "final")

        #expect(try await send(path + "/amend", text: "Amended for the FHIR test.", base: base + 1).status == 200)
        let amended = try await report(id, "amended")
        #expect(amended["status"] as? String == "amended" && amended["conclusion"] as? String == "Amended for the FHIR test.")
        #expect((amended["issued"] as? String ?? "") > (signed["issued"] as? String ?? "~"), "issued: the amendment's time")

        let fhir = "/api/analyses/\(id)/fhir"
        let refused = try await stack.request("GET", fhir, auth: .bearer(otherOrgToken))
        #expect(refused.status == 404 && refused.header("Content-Type")?.hasPrefix("application/problem+json") == true)
        #expect(try await stack.request("GET", fhir, auth: .bearer(adminToken)).status == 403, "admins see no patients")
        #expect(try await stack.request("GET", "/api/analyses/01NOSUCHANALYSIS0000000000/fhir").status == 404)

        // Four views by the clinician, and the other organisation's attempt, in this organisation's trail.
        let audit = try await stack.request("GET", "/api/audit?action=analysis.fhir&limit=1000", auth: .bearer(adminToken))
        let entries = try #require(audit.json?["entries"] as? [[String: Any]])
        let outcomes = entries.filter { $0["recordId"] as? String == id }
            .map { "\($0["actorUsername"] as? String ?? "-") \($0["outcome"] as? String ?? "?")" }
        #expect(outcomes.sorted() == Array(repeating: "clinician success", count: 4) + ["fhir-admin denied", "fhir-other denied"],
                "\(outcomes)")
    }

    @Test func aDicomUploadNamesItsStudy() async throws {
        let uid = "1.2.826.0.1.3680043.2.1143.10"   // DicomUploadTests.file()'s Study Instance UID
        stack.remember([uid, "DCM-FHIR-1"])
        let (body, type) = Multipart.body(fields: ["patient_id": "DCM-FHIR-1"], files: [("image", "slice.dcm", Data(DicomUploadTests.file()))])
        let upload = try await stack.request("POST", "/api/analyses", body: body, contentType: type)
        #expect(upload.status == 201, "\(String(decoding: upload.body, as: UTF8.self))")
        let analysis = try #require(upload.json)
        let id = try #require(analysis["id"] as? String)

        let fhir = try await report(id, "DICOM upload")
        let references = try #require(fhir["imagingStudy"] as? [[String: Any]])
        #expect(references.count == 1)
        let study = try contained(fhir, references.first)
        #expect(study["resourceType"] as? String == "ImagingStudy" && study["started"] as? String == "2026-11-20")
        let identifiers = try #require(study["identifier"] as? [[String: Any]])
        #expect(identifiers.count == 1 && identifiers.first?["system"] as? String == "urn:dicom:uid"
                && identifiers.first?["value"] as? String == "urn:oid:" + uid)
        // The patient as the analysis has them: no more, no less.
        let patient = try contained(fhir, fhir["subject"])
        let recorded = try #require(analysis["patient"] as? [String: Any])
        #expect((patient["identifier"] as? [[String: Any]])?.first?["value"] as? String == "DCM-FHIR-1")
        #expect(patient["gender"] as? String == recorded["sex"] as? String)
        #expect((patient["name"] as? [[String: Any]])?.first?["text"] as? String == recorded["name"] as? String)
    }
}
