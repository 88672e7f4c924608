import Foundation
import MediscopeDicomWrite
import Testing
import TestSupport

/// Results sent back to the PACS (`dicom.destinations`, `dicom.send_results`) with Debian's Orthanc as the
/// PACS: by C-STORE an analysis of a study Orthanc sent lands in that study as an UNVERIFIED SR and a
/// Secondary Capture per result, and the VERIFIED SR follows the signature, naming the first; by STOW-RS
/// an upload's results land through Orthanc's DICOMweb plugin; a PACS that is down for a while loses
/// nothing and gets each object once. What Orthanc holds passes dciodvfy and holds the analysis's numbers.
@Suite(.serialized) final class DicomSendingTests {
    static let srClass = "1.2.840.10008.5.1.4.1.1.88.33", scClass = "1.2.840.10008.5.1.4.1.1.7"
    let folder = TemporaryFolder("mediscope-dicom-sending")
    var checks: DicomFileChecks { DicomFileChecks(folder: folder) }

    /// Orthanc (not started) and a stack whose listener takes Orthanc's studies and which sends results to
    /// Orthanc as `sendTo` names: "pacs" by C-STORE, "pacs-web" by STOW-RS.
    func start(sendTo: String) async throws -> (Stack, OrthancServer) {
        let listen = try Stack.freePort()
        let orthanc = try OrthancServer(modalities: ["mediscope": ["MEDISCOPE", "127.0.0.1", listen]])
        let token = folder.file("stow-token", "not-checked-by-this-orthanc\n").path
        let destinations: [[String: Any]] = [
            ["name": "pacs", "kind": "c-store", "ae_title": orthanc.aeTitle, "host": "127.0.0.1", "port": orthanc.dicomPort],
            ["name": "pacs-web", "kind": "stow-rs", "url": "http://127.0.0.1:\(orthanc.httpPort)/dicom-web", "token_file": token],
        ]
        let stack = try await Stack.start(settings: [
            "DICOM_LISTEN": String(listen),
            "DICOM_PEERS": #"[{"ae_title": "ORTHANC", "host": "127.0.0.1", "organization": "default"}]"#,
            "DICOM_DESTINATIONS": String(decoding: try JSONSerialization.data(withJSONObject: destinations), as: UTF8.self),
            "DICOM_SEND_RESULTS": sendTo, "DICOM_SEND_RETRY_MAX_SECONDS": "1",
        ])
        return (stack, orthanc)
    }

    /// `mediscope dicom-out status`'s figures for `destination`.
    func status(_ stack: Stack, _ destination: String) throws -> [String: Any] {
        let run = try runProcess(Repository.executable, ["dicom-out", "status"], environment: stack.environment)
        try #require(run.status == 0, "dicom-out status: \(run.stderr)")
        let all = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        #expect((all["queue"] as? String)?.hasSuffix("/var/store/dicom-out.sqlite") == true)
        let destinations = try #require(all["destinations"] as? [String: Any])
        return try #require((destinations[destination] as? [String: Any])?["stats"] as? [String: Any], "\(run.stdout)")
    }

    /// A brain MR slice (an evaluation image of the model, `make model-int8`) as a DICOM file, made by DCMTK's
    /// img2dcm with its patient and MR modality: an image inside the model's scope, as a PACS would hold it.
    func inScopeSlice() throws -> URL {
        let images = Repository.root.appendingPathComponent("models/cache/evaluation")
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: images.path).filter { $0.hasSuffix(".jpg") }.sorted().first)
        let out = folder.appending("slice.dcm")
        let run = try runProcess(URL(fileURLWithPath: "/usr/bin/img2dcm"),
                                 ["-k", "PatientID=P-SEND-3301", "-k", "PatientName=Sendtest^Orla", "-k", "Modality=MR",
                                  "-k", "BodyPartExamined=BRAIN", images.appendingPathComponent(name).path, out.path], timeout: 60)
        try #require(run.status == 0, "img2dcm: \(run.stderr)")
        return out
    }

    /// `mediscope dicom-out <arguments>` against `stack`'s configuration.
    func command(_ stack: Stack, _ arguments: [String]) throws -> ProcessResult {
        try runProcess(Repository.executable, ["dicom-out"] + arguments, environment: stack.environment, timeout: 120)
    }

    /// Orthanc's instances of `study` once it holds `count` of them (a deadline of 120 s).
    func instances(_ orthanc: OrthancServer, study: String, count: Int) async throws -> [String: [String: Any]] {
        var found: [String: [String: Any]] = [:]
        let arrived = try await eventually(timeout: 120, every: .milliseconds(250)) {
            found = (try? orthanc.instances(study: study)) ?? [:]
            return found.count >= count
        }
        #expect(arrived, "Orthanc holds \(found.count) of \(count) instances of the study: \(orthanc.log)")
        return found
    }

    /// The instance Orthanc holds as `id`, checked like a download (dciodvfy, pydicom).
    func read(_ orthanc: OrthancServer, _ id: String, _ name: String) throws -> [String: Any] {
        let file = try orthanc.call("GET", "/instances/\(id)/file")
        try #require(file.status == 200)
        return try checks.check(file.body, name)
    }

    /// Signs analysis `id`'s report (its draft first written) and returns the signed version's number.
    func sign(_ stack: Stack, _ id: String, _ text: String) async throws -> Int {
        let draft = try await stack.draft(id)
        let base = try #require(draft["version"] as? Int)
        let body = try JSONSerialization.data(withJSONObject: ["text": text, "baseVersion": base])
        let signed = try await stack.request("POST", "/api/analyses/\(id)/report/sign", body: body, contentType: "application/json")
        #expect(signed.status == 200)
        return base + 1
    }

    @Test func aStudyFromOrthancGetsItsSRAndHeatmapsBackThenTheVerifiedSR() async throws {
        let (stack, orthanc) = try await start(sendTo: "pacs")
        defer { orthanc.stop(); stack.stop() }
        stack.remember(["P-SEND-3301", "Sendtest^Orla", "1CT1", "CompressedSamples^CT1"])
        try await orthanc.start()
        // The operator's check of both destinations: C-ECHO, and an authorised QIDO-RS query.
        for name in ["pacs", "pacs-web"] {
            let echo = try command(stack, ["echo", name])
            #expect(echo.status == 0 && echo.stdout.contains("\(name) answered"), "\(name): \(echo.stderr)")
        }
        let mr = try orthanc.store(try inScopeSlice())
        let ct = try orthanc.store(URL(fileURLWithPath: "\(DicomListenerTests.testFiles)/CT_small.dcm"))
        let study = try #require(try orthanc.call("GET", "/instances/\(mr)/tags?simplify").json?["StudyInstanceUID"] as? String)
        let ctStudy = try #require(try orthanc.call("GET", "/instances/\(ct)/tags?simplify").json?["StudyInstanceUID"] as? String)
        #expect(try await eventually(timeout: 60, every: .milliseconds(250)) {
            (try? orthanc.call("POST", "/modalities/mediscope/store", body: try JSONSerialization.data(withJSONObject: [mr, ct])).status) == 200
        }, "Orthanc could not send the study: \(orthanc.log)")
        var analysis: [String: Any] = [:]
        #expect(try await eventually(timeout: 120, every: .milliseconds(250)) {
            let items = try await stack.request("GET", "/api/analyses?limit=10&patient_id=P-SEND-3301").json?["items"] as? [[String: Any]] ?? []
            analysis = items.first ?? [:]
            return items.count == 1
        })
        let id = try #require(analysis["id"] as? String)
        let full = try #require(try await stack.request("GET", "/api/analyses/\(id)").json)
        let results = try #require(full["results"] as? [[String: Any]])

        // The slice, the analysis's SR and one Secondary Capture per result, all in the slice's study.
        var held = try await instances(orthanc, study: study, count: 2 + results.count)
        let srs = held.filter { $0.value["SOPClassUID"] as? String == Self.srClass }
        let scs = held.filter { $0.key != mr && $0.value["SOPClassUID"] as? String == Self.scClass }   // the slice is one too
        #expect(srs.count == 1 && scs.count == results.count)
        let first = try #require(srs.first)
        #expect(first.value["SOPInstanceUID"] as? String == DicomUID.derived(analysisId: id, kind: "sr", part: "0"))
        let sr = try read(orthanc, first.key, "first-sr.dcm")
        #expect(sr["VerificationFlag"] as? String == "UNVERIFIED" && sr["PatientID"] as? String == "P-SEND-3301")
        try checks.expectResults(sr, full)
        for (orthancId, tags) in scs {
            let sc = try read(orthanc, orthancId, "sc-\(orthancId).dcm")
            #expect(sc["BurnedInAnnotation"] as? String == "YES" && sc["StudyInstanceUID"] as? String == study)
            #expect(tags["SeriesInstanceUID"] as? String != first.value["SeriesInstanceUID"] as? String, "a series of its own")
        }

        // The CT is outside the model's scope: its SR (with the verdict) goes back, no heatmap.
        let ctHeld = try await instances(orthanc, study: ctStudy, count: 2)
        #expect(ctHeld.values.map { $0["SOPClassUID"] as? String ?? "" }.sorted() == ["1.2.840.10008.5.1.4.1.1.2", Self.srClass], "the CT and its SR alone")

        // A PACS rule that routes the study back to Mediscope: its own heatmap is acknowledged, never analysed.
        let routed = try orthanc.call("POST", "/modalities/mediscope/store", body: try JSONSerialization.data(withJSONObject: [try #require(scs.first?.key)]))
        #expect(routed.status == 200 && routed.json?["FailedInstancesCount"] as? Int == 0)
        #expect(try await eventually(timeout: 60, every: .milliseconds(250)) {
            let dicom = try stack.status()["dicom"] as? [String: Any]
            return ((dicom?["instances"] as? [String: Any])?["c-store"] as? [String: Any])?["own_result"] as? Int == 1
        }, "the listener counts the routed-back heatmap")
        let mrAnalyses = try await stack.request("GET", "/api/analyses?limit=10&patient_id=P-SEND-3301").json?["items"] as? [[String: Any]] ?? []
        #expect(mrAnalyses.count == 1, "no analysis of its own heatmap")

        // Signed: the VERIFIED SR joins the study, the first one named as its predecessor.
        let version = try await sign(stack, id, "Signed: no acute finding on this slice.")
        held = try await instances(orthanc, study: study, count: 3 + results.count)
        let verified = try #require(held.first { $0.value["SOPInstanceUID"] as? String == DicomUID.derived(analysisId: id, kind: "sr", part: String(version)) })
        let signed = try read(orthanc, verified.key, "signed-sr.dcm")
        #expect(signed["VerificationFlag"] as? String == "VERIFIED")
        #expect(signed["predecessors"] as? [String] == [DicomUID.derived(analysisId: id, kind: "sr", part: "0")])
        try checks.expectResults(signed, full)

        // Each object once: Orthanc holds exactly these, and the queue says so.
        #expect(try orthanc.instances(study: study).count == 3 + results.count)
        let stats = try status(stack, "pacs")
        // Delivered: the MR's SR and heatmaps, its VERIFIED SR, the CT's SR.
        #expect(stats["delivered"] as? Int == 3 + results.count && stats["waiting"] as? Int == 0 && stats["parked"] as? Int == 0, "\(stats)")
        let metrics = String(decoding: try stack.syncRequest("GET", "/api/metrics").body, as: UTF8.self)
        #expect(metrics.contains("mediscope_dicom_out_delivered_total{host=\"\(Stack.hostName)\",destination=\"pacs\"} \(3 + results.count)\n"))
        #expect(metrics.contains("mediscope_dicom_destination_up{host=\"\(Stack.hostName)\",destination=\"pacs\"} 1\n"))
        let shown = try #require(((try stack.status()["dicom"] as? [String: Any])?["destinations"] as? [[String: Any]])?.first)
        #expect(shown["name"] as? String == "pacs" && shown["delivered"] as? Int == 3 + results.count && shown["waiting"] as? Int == 0)
    }

    @Test func anUploadsResultsReachOrthancByStowRS() async throws {
        let (stack, orthanc) = try await start(sendTo: "pacs-web")
        defer { orthanc.stop(); stack.stop() }
        try await orthanc.start()
        let upload = try await stack.upload(image: try Scans.jpeg, fields: ["patient_id": "P-STOW-7730", "patient_name": "Wenna Stowsample"])
        #expect(upload.status == 201)
        let analysis = try #require(upload.json)
        let id = try #require(analysis["id"] as? String)
        let results = try #require(analysis["results"] as? [[String: Any]])
        let study = DicomUID.derived(analysisId: id, kind: "study")
        let held = try await instances(orthanc, study: study, count: 1 + results.count)
        #expect(held.count == 1 + results.count)
        let srId = try #require(held.first { $0.value["SOPClassUID"] as? String == Self.srClass }?.key)
        let sr = try read(orthanc, srId, "stow-sr.dcm")
        #expect(sr["PatientID"] as? String == "P-STOW-7730")
        try checks.expectResults(sr, analysis)
        let stats = try status(stack, "pacs-web")
        #expect(stats["delivered"] as? Int == 1 + results.count && stats["reachable"] as? Bool == true, "\(stats)")
    }

    @Test func aPACSDownForAWhileLosesNothingAndGetsEachObjectOnce() async throws {
        let (stack, orthanc) = try await start(sendTo: "pacs")
        defer { orthanc.stop(); stack.stop() }
        // Orthanc is not running: the operator's check says so, the upload still succeeds, its objects wait.
        let echo = try command(stack, ["echo", "pacs"])
        #expect(echo.status != 0 && echo.stderr.contains("pacs: C-ECHO"), "\(echo.stdout) \(echo.stderr)")
        let unknown = try command(stack, ["requeue", "--destination", "nowhere"])
        #expect(unknown.status != 0 && unknown.stderr.contains("no destination named nowhere"))
        let upload = try await stack.upload(image: try Scans.jpeg, fields: ["patient_id": "P-DOWN-4471"])
        #expect(upload.status == 201)
        let analysis = try #require(upload.json)
        let id = try #require(analysis["id"] as? String)
        let count = 1 + (analysis["results"] as? [[String: Any]] ?? []).count
        var stats: [String: Any] = [:]
        #expect(try await eventually(timeout: 60, every: .milliseconds(250)) {
            stats = try self.status(stack, "pacs")
            return stats["reachable"] as? Bool == false && (stats["unreachableAttempts"] as? Int ?? 0) >= 2
        }, "\(stats)")
        #expect(stats["waiting"] as? Int == count && stats["parked"] as? Int == 0 && stats["delivered"] as? Int == 0)
        #expect((stats["lastError"] as? String)?.isEmpty == false)
        let metrics = String(decoding: try stack.syncRequest("GET", "/api/metrics").body, as: UTF8.self)
        #expect(metrics.contains("mediscope_dicom_destination_up{host=\"\(Stack.hostName)\",destination=\"pacs\"} 0\n"))
        #expect(metrics.contains("mediscope_dicom_out_waiting{host=\"\(Stack.hostName)\",destination=\"pacs\"} \(count)\n"))

        // Back: everything arrives, once.
        try await orthanc.start()
        let study = DicomUID.derived(analysisId: id, kind: "study")
        _ = try await instances(orthanc, study: study, count: count)
        #expect(try await eventually(timeout: 60, every: .milliseconds(250)) {
            stats = try self.status(stack, "pacs")
            return stats["waiting"] as? Int == 0
        }, "\(stats)")
        #expect(stats["delivered"] as? Int == count && stats["parked"] as? Int == 0 && stats["reachable"] as? Bool == true)
        #expect(try orthanc.instances(study: study).count == count, "each object once")
        let log = (try? String(contentsOf: stack.logFile, encoding: .utf8)) ?? ""
        #expect(log.contains("dicom_destination_unreachable") && log.contains("dicom_destination_reachable"))
    }
}
