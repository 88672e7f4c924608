import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Debian's Orthanc as the hospital's PACS, on free loopback ports with a configuration of its own,
/// sending a study to Mediscope by C-STORE to the listener with its own REST call
/// (`POST /modalities/{name}/store`) and by STOW-RS with its DICOMweb plugin's client
/// (`POST /dicom-web/servers/{name}/stow`, a clinician's API token in its HTTP headers): every instance
/// becomes exactly one analysis with the numbers the CLI gives, also when the PACS sends the study again.
@Suite(.serialized) final class OrthancTests {
    let stack: Stack
    let orthanc: OrthancServer
    static let testFiles = DicomListenerTests.testFiles

    init() async throws {
        let dicomPort = try Stack.freePort()
        stack = try await Stack.start(settings: ["DICOM_LISTEN": String(dicomPort),
                                     "DICOM_PEERS": #"[{"ae_title": "ORTHANC", "host": "127.0.0.1", "organization": "default"}]"#])
        guard case .bearer(let token) = stack.defaultAuth else { throw StackError("the stack has no clinician token") }
        orthanc = try OrthancServer(modalities: ["mediscope": ["MEDISCOPE", "127.0.0.1", dicomPort]],
                                    dicomWebServers: ["mediscope": ["Url": stack.baseURL + "/dicom-web/", "HttpHeaders": ["Authorization": "Bearer " + token]]])
    }

    deinit {
        orthanc.stop()
        stack.stop()
    }

    var orthancLog: String { orthanc.log }

    func orthancCall(_ method: String, _ path: String, body: Data? = nil) throws -> Stack.Response {
        try orthanc.call(method, path, body: body)
    }

    func records(patient: String) async throws -> [[String: Any]] {
        let r = try await stack.request("GET", "/api/analyses?limit=100&patient_id=\(patient)")
        return r.json?["items"] as? [[String: Any]] ?? []
    }

    /// Orthanc answers, and holds the pydicom CT and MR test files; their Orthanc ids.
    func studyInOrthanc() async throws -> [String] {
        stack.remember(["1CT1", "4MR1", "CompressedSamples^CT1", "CompressedSamples^MR1"])
        try await orthanc.start()
        return try ["CT_small.dcm", "MR_small.dcm"].map { try orthanc.store(URL(fileURLWithPath: "\(Self.testFiles)/\($0)")) }
    }

    /// Both instances analysed once each, nothing left to analyse, the MR's numbers the CLI's.
    func expectAnalysedOnce() async throws {
        let analysed = try await eventually(timeout: 120, every: .milliseconds(250)) {
            let ct = try await self.records(patient: "1CT1"), mr = try await self.records(patient: "4MR1")
            return ct.count == 1 && mr.count == 1
        }
        #expect(analysed)
        let spool = stack.varDir.appendingPathComponent("dicom/default").path
        #expect(try await eventually(timeout: 60) { ((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []).isEmpty })
        #expect(try await records(patient: "1CT1").count == 1)
        let mr = try await records(patient: "4MR1")
        #expect(mr.count == 1)
        try DicomListenerTests.expectCLINumbers(try #require(mr.first), file: "\(Self.testFiles)/MR_small.dcm")
    }

    @Test func aStudySentByOrthancIsAnalysedOnceEachInstance() async throws {
        let ids = try await studyInOrthanc()
        // C-ECHO from the PACS (the listener starts a moment after the stack).
        #expect(try await eventually(timeout: 60, every: .milliseconds(250)) {
            (try? self.orthancCall("POST", "/modalities/mediscope/echo", body: Data("{}".utf8)).status) == 200
        })
        let body = try JSONSerialization.data(withJSONObject: ids)
        for _ in 0..<2 {   // the PACS sends the study twice
            let sent = try orthancCall("POST", "/modalities/mediscope/store", body: body)
            #expect(sent.status == 200, "\(String(decoding: sent.body, as: UTF8.self))")
            #expect(sent.json?["FailedInstancesCount"] as? Int == 0)
        }
        try await expectAnalysedOnce()
    }

    @Test func aStudySentByOrthancsDICOMwebClientIsAnalysedOnceEachInstance() async throws {
        let ids = try await studyInOrthanc()
        let body = try JSONSerialization.data(withJSONObject: ["Resources": ids])
        for _ in 0..<2 {   // the PACS sends the study twice
            let sent = try orthancCall("POST", "/dicom-web/servers/mediscope/stow", body: body)
            #expect(sent.status == 200, "\(String(decoding: sent.body, as: UTF8.self)) \(orthancLog)")
        }
        try await expectAnalysedOnce()
        // Mediscope lists it as received by STOW-RS, analysed.
        let study = try await stack.request("GET", "/api/studies?limit=10")
        let transports = (study.json?["studies"] as? [[String: Any]] ?? []).flatMap { $0["series"] as? [[String: Any]] ?? [] }
            .compactMap { ($0["summary"] as? [String: Any])?["state"] as? String }
        #expect(transports == ["done", "done"])
    }
}
