import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// DICOMweb STOW-RS (issue 24 part 2), the Studies API with its series cap and summaries (parts 3 and 4)
/// and DICOM receiving's status and metrics (part 5), through the real stack: nginx, the pools, the
/// listener, DCMTK's storescu/echoscu/dcmodify/dcmdump.
@Suite(.serialized) final class DicomWebTests {
    let stack: Stack
    let port: Int
    let folder = TemporaryFolder("mediscope-stow")
    static let testFiles = DicomListenerTests.testFiles
    static let mr = "\(testFiles)/MR_small.dcm"
    static let ct = "\(testFiles)/CT_small.dcm"

    init() async throws {
        port = try Stack.freePort()
        stack = try await Stack.start(settings: DicomListenerTests.listening(on: port, ["DICOM_MAX_INSTANCES_PER_SERIES": "3"]))
        // Study Instance UIDs are patient data: no log may hold them (the stack checks at stop).
        stack.remember(["1CT1", "4MR1", "CompressedSamples^CT1", "CompressedSamples^MR1",
                        "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457", "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"])
    }
    deinit { stack.stop() }

    // MARK: - Helpers

    func dcmtk(_ tool: String, _ arguments: [String]) throws -> ProcessResult {
        try runProcess(URL(fileURLWithPath: "/usr/bin/" + tool), arguments, timeout: 60)
    }

    /// An attribute of `file` as dcmdump prints it (`+P tag`, value only).
    func attribute(_ tag: String, of file: String) throws -> String {
        let out = try dcmtk("dcmdump", ["-q", "+P", tag, file]).stdout
        guard let open = out.firstIndex(of: "["), let close = out[open...].firstIndex(of: "]") else {
            throw StackError("no \(tag) in \(file): \(out)")
        }
        return String(out[out.index(after: open)..<close])
    }

    /// A copy of `source` with attributes changed by dcmodify (`-m "(gggg,eeee)=value"` each).
    func copy(_ source: String, _ name: String, _ changes: [String: String]) throws -> String {
        let path = folder.appending(name).path
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.copyItem(atPath: source, toPath: path)
        let run = try dcmtk("dcmodify", ["-nb"] + changes.sorted { $0.key < $1.key }.flatMap { ["-m", "\($0.key)=\($0.value)"] } + [path])
        guard run.status == 0 else { throw StackError("dcmodify: \(run.stderr)") }
        return path
    }

    /// A multipart/related body of `parts` (each `application/dicom`) and its Content-Type.
    static func related(_ parts: [Data], type: String = "application/dicom") -> (Data, String) {
        let boundary = "mediscope-stow-\(UUID().uuidString)"
        var body = Data()
        for part in parts {
            body.append(Data("--\(boundary)\r\nContent-Type: application/dicom\r\n\r\n".utf8))
            body.append(part)
            body.append(Data("\r\n".utf8))
        }
        body.append(Data("--\(boundary)--\r\n".utf8))
        return (body, "multipart/related; type=\"\(type)\"; boundary=\(boundary)")
    }

    func stow(_ files: [String], path: String = "/dicom-web/studies", auth: Stack.Auth? = nil) async throws -> Stack.Response {
        let (body, type) = Self.related(try files.map { try Data(contentsOf: URL(fileURLWithPath: $0)) })
        return try await stack.request("POST", path, body: body, contentType: type, auth: auth, headers: ["Accept": "application/dicom+json"])
    }

    /// The SOP Instance UIDs of a Store Instances Response's sequence `tag` (00081199 or 00081198), with
    /// each item's Failure Reason (nil in the referenced sequence).
    static func items(_ response: Stack.Response, _ tag: String) -> [(uid: String?, reason: Int?)] {
        let seq = (response.json?[tag] as? [String: Any])?["Value"] as? [[String: Any]] ?? []
        return seq.map { item in
            (((item["00081155"] as? [String: Any])?["Value"] as? [String])?.first,
             ((item["00081197"] as? [String: Any])?["Value"] as? [Int])?.first)
        }
    }

    /// One study as the Studies API shows it to `auth`'s organisation, nil while it is not there.
    func study(_ uid: String, auth: Stack.Auth? = nil) async throws -> [String: Any]? {
        let r = try await stack.request("GET", "/api/studies/\(uid)", auth: auth)
        return r.status == 200 ? r.json : nil
    }

    /// Waits until every series of the study is `done` (nothing waits for analysis), returning it.
    func analysedStudy(_ uid: String, auth: Stack.Auth? = nil) async throws -> [String: Any]? {
        var found: [String: Any]?
        let done = try await eventually(timeout: 180, every: .milliseconds(250)) {
            found = try await self.study(uid, auth: auth)
            let series = found?["series"] as? [[String: Any]] ?? []
            return !series.isEmpty && series.allSatisfy { (($0["summary"] as? [String: Any])?["state"] as? String) == "done" }
        }
        return done ? found : nil
    }

    func records(patient: String, auth: Stack.Auth? = nil) async throws -> [[String: Any]] {
        let r = try await stack.request("GET", "/api/analyses?limit=100&patient_id=\(patient)", auth: auth)
        return r.json?["items"] as? [[String: Any]] ?? []
    }

    func metrics() async throws -> String {
        String(decoding: try await stack.request("GET", "/api/metrics").body, as: UTF8.self)
    }

    /// The value of the metric sample whose line starts with `prefix` (name and labels), 0 when absent.
    static func sample(_ text: String, _ prefix: String) -> Double {
        text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { $0.split(separator: " ").last.flatMap { Double($0) } } ?? 0
    }

    // MARK: - STOW-RS

    @Test func allStoredIs200WithTheReferencedSOPSequenceAndEachInstanceIsAnalysedOnce() async throws {
        let sent = try await stow([Self.mr, Self.ct])
        #expect(sent.status == 200, "\(String(decoding: sent.body, as: UTF8.self))")
        #expect(sent.header("Content-Type") == "application/dicom+json")
        let referenced = Self.items(sent, "00081199").compactMap(\.uid).sorted()
        #expect(referenced == [try attribute("0008,0018", of: Self.mr), try attribute("0008,0018", of: Self.ct)].sorted())
        #expect(Self.items(sent, "00081198").isEmpty)
        let study = try #require(try await analysedStudy(try attribute("0020,000D", of: Self.mr)))
        let items = ((study["series"] as? [[String: Any]])?.first?["items"] as? [[String: Any]]) ?? []
        #expect(items.count == 1 && items.first?["transport"] as? String == "stow-rs")
        // Sent again: 200 again, and still one analysis each.
        #expect(try await stow([Self.mr, Self.ct]).status == 200)
        _ = try #require(try await analysedStudy(try attribute("0020,000D", of: Self.ct)))
        #expect(try await records(patient: "4MR1").count == 1)
        #expect(try await records(patient: "1CT1").count == 1)
        // The analysis the study lists is the patient's record.
        let analysisId = try #require(items.first?["analysisId"] as? String)
        #expect(try await records(patient: "4MR1").first?["id"] as? String == analysisId)
    }

    @Test func oneBadPartIs202WithItsFailureReasonAndTheGoodOneIsStored() async throws {
        let good = try copy(Self.mr, "good.dcm", ["(0008,0018)": "1.2.826.0.1.3680043.8.498.2401"])
        // Rows saying more than the Pixel Data holds: the reader refuses it (0xC000, 49152).
        let bad = try copy(Self.mr, "bad.dcm", ["(0008,0018)": "1.2.826.0.1.3680043.8.498.2402", "(0028,0010)": "4096"])
        let sent = try await stow([good, bad])
        #expect(sent.status == 202, "\(String(decoding: sent.body, as: UTF8.self))")
        #expect(Self.items(sent, "00081199").map(\.uid) == ["1.2.826.0.1.3680043.8.498.2401"])
        let failed = Self.items(sent, "00081198")
        #expect(failed.count == 1 && failed.first?.uid == "1.2.826.0.1.3680043.8.498.2402" && failed.first?.reason == 0xC000)
        #expect(sent.header("Warning")?.hasPrefix("299 mediscope \"") == true, "why, for the sender's log: \(sent.headers)")
        // Nothing stored at all: 409.
        let none = try await stow([bad])
        #expect(none.status == 409 && Self.items(none, "00081198").first?.reason == 0xC000)

        // A part in base64 is refused with the reason in a Warning; the binary part beside it is stored.
        let boundary = "mediscope-stow-cte"
        let binary = try Data(contentsOf: URL(fileURLWithPath: try copy(Self.mr, "binary.dcm", ["(0008,0018)": "1.2.826.0.1.3680043.8.498.2403"])))
        var body = Data("--\(boundary)\r\nContent-Type: application/dicom\r\n\r\n".utf8) + binary
        body += Data("\r\n--\(boundary)\r\nContent-Type: application/dicom\r\nContent-Transfer-Encoding: base64\r\n\r\n".utf8)
        body += Data(binary.base64EncodedString().utf8) + Data("\r\n--\(boundary)--\r\n".utf8)
        let type = "multipart/related; type=\"application/dicom\"; boundary=\(boundary)"
        let mixed = try await stack.request("POST", "/dicom-web/studies", body: body, contentType: type)
        #expect(mixed.status == 202, "\(String(decoding: mixed.body, as: UTF8.self))")
        #expect(Self.items(mixed, "00081199").map(\.uid) == ["1.2.826.0.1.3680043.8.498.2403"])
        #expect(Self.items(mixed, "00081198").map(\.reason) == [0xC000])
        #expect(mixed.header("Warning")?.contains("Content-Transfer-Encoding base64 is not supported") == true, "\(mixed.headers)")
        // A response type the sender refuses with q=0 is a 406, before anything is stored.
        let refused = try await stack.request("POST", "/dicom-web/studies", body: body, contentType: type,
                                              headers: ["Accept": "application/dicom+json;q=0, */*"])
        #expect(refused.status == 406)
    }

    @Test func aWrongMediaTypeIs415NoTokenIs401AndAnotherStudysInstanceIsRefused() async throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.mr))
        let plain = try await stack.request("POST", "/dicom-web/studies", body: data, contentType: "application/dicom")
        #expect(plain.status == 415)
        let (body, _) = Self.related([data])
        let xml = try await stack.request("POST", "/dicom-web/studies", body: body,
                                          contentType: "multipart/related; type=\"application/dicom+xml\"; boundary=x")
        #expect(xml.status == 415)
        let anonymous = try await stow([Self.mr], auth: Stack.Auth.none)
        #expect(anonymous.status == 401)
        let admin = try stack.token(forNewUser: "stow-admin", role: "admin")
        #expect(try await stow([Self.mr], auth: .bearer(admin)).status == 403, "only clinicians store studies")
        // The path names another study: the instance does not belong there (0xA900).
        let other = try await stow([Self.mr], path: "/dicom-web/studies/1.2.3.4")
        #expect(other.status == 409 && Self.items(other, "00081198").first?.reason == 0xA900)
        #expect(try await stow([Self.mr], path: "/dicom-web/studies/not-a-uid").status == 400)
        let right = try await stow([Self.mr], path: "/dicom-web/studies/\(try attribute("0020,000D", of: Self.mr))")
        #expect(right.status == 200)
    }

    @Test func anotherOrganisationsCopyOfAStudyStaysItsOwn() async throws {
        let other = Stack.Auth.bearer(try stack.token(forNewUser: "other-clinician", role: "clinician", organization: "other-hospital"))
        let uid = try attribute("0020,000D", of: Self.mr)
        #expect(try await stow([Self.mr]).status == 200)
        #expect(try await stow([Self.mr], auth: other).status == 200)
        let mine = try #require(try await analysedStudy(uid))
        let theirs = try #require(try await analysedStudy(uid, auth: other))
        func analysis(_ study: [String: Any]) -> String? {
            ((study["series"] as? [[String: Any]])?.first?["items"] as? [[String: Any]])?.first?["analysisId"] as? String
        }
        #expect(analysis(mine) != nil && analysis(theirs) != nil && analysis(mine) != analysis(theirs))
        #expect(try await records(patient: "4MR1").count == 1)
        #expect(try await records(patient: "4MR1", auth: other).count == 1)
        // Neither sees the other's analysis.
        let theirId = try #require(analysis(theirs))
        #expect(try await stack.request("GET", "/api/analyses/\(theirId)").status == 404)
        let third = Stack.Auth.bearer(try stack.token(forNewUser: "third-clinician", role: "clinician", organization: "third"))
        #expect(try await stack.request("GET", "/api/studies/\(uid)", auth: third).status == 404)
        let list = try await stack.request("GET", "/api/studies", auth: third)
        #expect(list.status == 200 && (list.json?["studies"] as? [Any])?.isEmpty == true)
    }

    @Test func theSameInstanceFromAnotherRouteOrSenderIsTheSameAndAnotherPatientsStudyIsRefused() async throws {
        // By C-STORE (the listener writes its own File Meta Information), then by STOW-RS in another transfer
        // syntax: the same data set, stored once.
        let mr = try copy(Self.mr, "route.dcm", ["(0008,0018)": "1.2.826.0.1.3680043.8.498.2801"])
        #expect(try dcmtk("storescu", ["-aet", "SENDER", "-aec", "MEDISCOPE", "127.0.0.1", String(port), mr]).status == 0)
        let implicit = folder.appending("route-implicit.dcm").path
        #expect(try dcmtk("dcmconv", ["+ti", mr, implicit]).status == 0)
        let again = try await stow([implicit])
        #expect(again.status == 200, "\(String(decoding: again.body, as: UTF8.self))")
        let study = try #require(try await analysedStudy(try attribute("0020,000D", of: Self.mr)))
        let items = ((study["series"] as? [[String: Any]]) ?? []).flatMap { ($0["items"] as? [[String: Any]]) ?? [] }
        #expect(items.filter { $0["sopInstanceUID"] as? String == "1.2.826.0.1.3680043.8.498.2801" }.count == 1)
        // Another patient under this study's UID: refused, so a study never shows two patients.
        let other = try copy(Self.mr, "other-patient.dcm", ["(0008,0018)": "1.2.826.0.1.3680043.8.498.2802", "(0010,0020)": "OTHER-PATIENT-7"])
        stack.remember(["OTHER-PATIENT-7"])
        let refused = try await stow([other])
        #expect(refused.status == 409 && Self.items(refused, "00081198").first?.reason == 0xA900)
        let after = try await self.study(try attribute("0020,000D", of: Self.mr))
        #expect(after?["patientId"] as? String == "4MR1")
    }

    @Test func aDeletedAnalysisLeavesTheStudyAndItsInstanceIsAnalysedAnewWhenSentAgain() async throws {
        let uid = try attribute("0020,000D", of: Self.ct)
        #expect(try await stow([Self.ct]).status == 200)
        let first = try #require(try await analysedStudy(uid))
        let id = try #require(((first["series"] as? [[String: Any]])?.first?["items"] as? [[String: Any]])?.first?["analysisId"] as? String)
        #expect(try await stack.request("DELETE", "/api/analyses/\(id)").status == 204)
        #expect(try await stack.request("GET", "/api/studies/\(uid)").status == 404, "the study lists nothing deleted")
        #expect(try await stow([Self.ct]).status == 200)
        let again = try #require(try await analysedStudy(uid))
        let newId = ((again["series"] as? [[String: Any]])?.first?["items"] as? [[String: Any]])?.first?["analysisId"] as? String
        #expect(newId != nil)
        #expect(try await stack.request("GET", "/api/analyses/\(try #require(newId))").status == 200)
    }

    // MARK: - Series cap and summary

    @Test func aSeriesPastItsCapIsAcknowledgedListedAsSkippedAndSummarised() async throws {
        let study = "1.2.826.0.1.3680043.8.498.2500", series = "1.2.826.0.1.3680043.8.498.2500.1"
        let files = try (1...5).map { n in
            try copy(Self.mr, "slice\(n).dcm", ["(0020,000D)": study, "(0020,000E)": series, "(0020,0013)": String(n),
                                                "(0008,0018)": "1.2.826.0.1.3680043.8.498.2500.1.\(n)"])
        }
        let sent = try dcmtk("storescu", ["-aet", "SENDER", "-aec", "MEDISCOPE", "127.0.0.1", String(port)] + files)
        #expect(sent.status == 0, "\(sent.stderr)")
        let body = try #require(try await analysedStudy(study))
        let one = try #require((body["series"] as? [[String: Any]])?.first)
        let summary = try #require(one["summary"] as? [String: Any])
        let counts = summary["counts"] as? [String: Int] ?? [:]
        #expect(counts["done"] == 3 && counts["skipped"] == 2, "\(counts)")
        let items = one["items"] as? [[String: Any]] ?? []
        #expect(items.map { $0["instanceNumber"] as? Int } == [1, 2, 3, 4, 5])
        #expect(items.filter { $0["state"] as? String == "skipped" }.allSatisfy { ($0["reason"] as? String)?.contains("cap of 3") == true })
        // Counts by prediction add up to the analysed slices, per model result.
        let results = summary["results"] as? [[String: Any]] ?? []
        #expect(!results.isEmpty)
        for r in results { #expect((r["predictions"] as? [String: Int] ?? [:]).values.reduce(0, +) == 3) }
        // The highest positive probability is the largest any analysed slice has, and it points at its analysis.
        let highest = try #require((summary["highest"] as? [[String: Any]])?.first)
        let resultId = try #require(highest["result"] as? String)
        let probabilities = items.flatMap { item in
            (item["findings"] as? [[String: Any]] ?? []).filter { $0["result"] as? String == resultId }.compactMap { $0["positiveProbability"] as? Double }
        }
        #expect(probabilities.count == 3 && highest["probability"] as? Double == probabilities.max())
        let record = try await stack.request("GET", "/api/analyses/\(try #require(highest["analysisId"] as? String))")
        #expect(record.status == 200)
        let recorded = (record.json?["results"] as? [[String: Any]])?.first { $0["id"] as? String == resultId }
        let positive = (recorded?["probabilities"] as? [[String: Any]])?.last?["probability"] as? Double
        #expect(positive.map { abs($0 - (highest["probability"] as? Double ?? -1)) < 1e-9 } == true)
        // The list shows the study with its series summary and no per-instance items.
        let list = try await stack.request("GET", "/api/studies?limit=100")
        let listed = (list.json?["studies"] as? [[String: Any]])?.first { $0["studyInstanceUID"] as? String == study }
        #expect((listed?["series"] as? [[String: Any]])?.first?["items"] == nil)
        #expect(listed?["patientId"] as? String == "4MR1")
    }

    // MARK: - Status and metrics

    @Test func metricsCountAssociationsInstancesAndFailuresAndReadinessSeesTheListener() async throws {
        #expect(try await eventually(timeout: 60, every: .milliseconds(200)) {
            try self.dcmtk("echoscu", ["-aet", "SENDER", "-aec", "MEDISCOPE", "127.0.0.1", String(self.port)]).status == 0
        })
        #expect(try dcmtk("echoscu", ["-aet", "STRANGER", "-aec", "MEDISCOPE", "127.0.0.1", String(port)]).status != 0)
        let bad = try copy(Self.mr, "refused.dcm", ["(0008,0018)": "1.2.826.0.1.3680043.8.498.2601", "(0028,0010)": "4096"])
        #expect(try await stow([bad]).status == 409)
        let text = try await metrics()
        let host = "host=\"\(Stack.hostName)\""
        #expect(Self.sample(text, "mediscope_dicom_listener_up{\(host)}") == 1)
        #expect(Self.sample(text, "mediscope_dicom_associations_total{\(host),outcome=\"accepted\"}") >= 1)
        #expect(Self.sample(text, "mediscope_dicom_associations_total{\(host),outcome=\"rejected\"}") >= 1)
        #expect(Self.sample(text, "mediscope_dicom_instance_failures_total{\(host),transport=\"stow-rs\",status=\"C000\"}") >= 1)
        #expect(text.contains("mediscope_dicom_analysis_backlog{\(host)}"))
        let ready = try await stack.request("GET", "/api/ready")
        #expect((ready.json?["checks"] as? [String: String])?["dicom"] == "ok")
        let status = try await stack.request("GET", "/api/status")
        #expect(((status.json?["dicom"] as? [String: Any])?["listener"] as? String) == "listening")
    }
}

/// An inference worker that only analyses received instances ages as one that answers requests: the same
/// pm.max_requests recycles it (a long series must not grow one process for ever).
@Suite(.serialized) final class ReceivedSeriesRecyclingTests {
    @Test func idleWorkCountsTowardTheWorkersRequestLimit() async throws {
        let stack = try await Stack.start(settings: ["POOLS_INFERENCE_MAX_REQUESTS": "2"])
        defer { stack.stop() }
        stack.remember(["4MR1", "CompressedSamples^MR1"])
        let folder = TemporaryFolder("mediscope-recycle")
        var parts: [Data] = []
        for n in 1...5 {
            let path = folder.appending("s\(n).dcm").path
            try FileManager.default.copyItem(atPath: DicomWebTests.mr, toPath: path)
            let run = try await runProcess(URL(fileURLWithPath: "/usr/bin/dcmodify"), ["-nb", "-m", "(0008,0018)=1.2.826.0.1.3680043.8.498.2700.\(n)", path], timeout: 30)
            #expect(run.status == 0)
            parts.append(try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        let (body, type) = DicomWebTests.related(parts)
        #expect(try await stack.request("POST", "/dicom-web/studies", body: body, contentType: type).status == 200)
        func log() -> String { (try? String(contentsOf: stack.logFile, encoding: .utf8)) ?? "" }
        // One request and five analyses: without counting the analyses, the worker would never reach 2.
        #expect(try await eventually(timeout: 180, every: .milliseconds(250)) {
            log().components(separatedBy: "\"event\":\"dicom_instance_analysed\"").count - 1 == 5
        })
        #expect(log().components(separatedBy: "\"event\":\"worker_recycle\"").count - 1 >= 2)
    }
}

/// A listener that cannot listen (its port taken) makes readiness say so: degraded, not silent.
@Suite(.serialized) final class DicomListenerDownTests {
    @Test func aTakenPortMakesReadinessDegradedWithTheReason() async throws {
        let port = try Stack.freePort()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr = in_addr(s_addr: INADDR_ANY)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(bound == 0 && listen(fd, 1) == 0)
        let stack = try await Stack.start(settings: DicomListenerTests.listening(on: port))
        defer { stack.stop() }
        var checks: [String: String] = [:]
        let degraded = try await eventually(timeout: 60, every: .milliseconds(200)) {
            let ready = try await stack.request("GET", "/api/ready")
            checks = ready.json?["checks"] as? [String: String] ?? [:]
            return ready.status == 200 && ready.json?["status"] as? String == "degraded" && checks["dicom"]?.hasPrefix("down") == true
        }
        #expect(degraded, "\(checks)")
        #expect(Self.sample(String(decoding: try await stack.request("GET", "/api/metrics").body, as: UTF8.self),
                            "mediscope_dicom_listener_up{host=\"\(Stack.hostName)\"}") == 0)
    }

    static func sample(_ text: String, _ prefix: String) -> Double { DicomWebTests.sample(text, prefix) }
}
