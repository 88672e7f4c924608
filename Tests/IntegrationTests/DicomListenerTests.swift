import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The DICOM listener (issue 24 part 1) through the real stack, with DCMTK's own tools as the senders:
/// C-ECHO, a study stored once however often it is sent, callers not on `dicom.peers` rejected at
/// association, a SOP class it does not take and a file the reader refuses answered with a failure, a
/// bogus PDU and a killed listener survived.
@Suite(.serialized) final class DicomListenerTests {
    let stack: Stack
    let port: Int
    static let testFiles = "/usr/lib/python3/dist-packages/pydicom/data/test_files"

    init() async throws {
        port = try Stack.freePort()
        stack = try await Stack.start(settings: Self.listening(on: port, ["DICOM_IDLE_TIMEOUT_SECONDS": "5", "DICOM_MAX_INSTANCE_BYTES": "65536",
                                                              "DICOM_PEERS": Self.peers]))
    }
    deinit { stack.stop() }

    /// SENDER at 127.0.0.1, and ELSEWHERE listed at another address only.
    static let peers = #"[{"ae_title": "SENDER", "host": "127.0.0.1", "organization": "default"}, "#
        + #"{"ae_title": "ELSEWHERE", "host": "127.0.0.2", "organization": "default"}]"#

    /// Stack settings with the listener on `port`, taking the AE title SENDER at 127.0.0.1 for the
    /// default organisation, plus `more`.
    static func listening(on port: Int, _ more: [String: String] = [:]) -> [String: String] {
        ["DICOM_LISTEN": String(port), "DICOM_PEERS": #"[{"ae_title": "SENDER", "host": "127.0.0.1", "organization": "default"}]"#]
            .merging(more) { _, new in new }
    }

    func dcmtk(_ tool: String, _ arguments: [String]) throws -> ProcessResult {
        try runProcess(URL(fileURLWithPath: "/usr/bin/" + tool), arguments, timeout: 60)
    }

    func echo(callingAE: String = "SENDER", calledAE: String = "MEDISCOPE") throws -> ProcessResult {
        try dcmtk("echoscu", ["-aet", callingAE, "-aec", calledAE, "127.0.0.1", String(port)])
    }

    func store(_ files: [String], callingAE: String = "SENDER") throws -> ProcessResult {
        try dcmtk("storescu", ["-v", "-aet", callingAE, "-aec", "MEDISCOPE", "127.0.0.1", String(port)] + files)
    }

    /// The listener answers C-ECHO (it starts with the pools, a moment after the stack).
    func listening() async throws -> Bool {
        try await eventually(timeout: 60, every: .milliseconds(200)) { try self.echo().status == 0 }
    }

    /// The instances kept for the default organisation.
    var spooled: [String] {
        let folder = stack.varDir.appendingPathComponent("dicom/default").path
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".dcm") }.sorted()
    }

    func occurrences(_ event: String) -> Int {
        ((try? String(contentsOf: stack.logFile, encoding: .utf8)) ?? "").components(separatedBy: "\"event\":\"\(event)\"").count - 1
    }

    /// The analyses of `patient` (the file's Patient ID).
    func records(patient: String) async throws -> [[String: Any]] {
        let r = try await stack.request("GET", "/api/analyses?limit=100&patient_id=\(patient)")
        return r.json?["items"] as? [[String: Any]] ?? []
    }

    /// Waits until every received instance is analysed (the spool is empty) and `patients` have a record.
    func analysed(_ patients: [String]) async throws -> Bool {
        try await eventually(timeout: 120, every: .milliseconds(250)) {
            guard self.spooled.isEmpty else { return false }
            for patient in patients where try await self.records(patient: patient).isEmpty { return false }
            return true
        }
    }

    @Test func aListedPeersStudyIsAnalysedOnceHoweverOftenSentWithTheCLIsNumbers() async throws {
        #expect(try await listening())
        let files = ["\(Self.testFiles)/CT_small.dcm", "\(Self.testFiles)/MR_small.dcm"]
        stack.remember(["1CT1", "4MR1", "CompressedSamples^CT1", "CompressedSamples^MR1"])
        let sent = try store(files)
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(try await analysed(["1CT1", "4MR1"]), "spool: \(spooled)")
        // No draft is queued for a received instance until its analysis is looked at (reports.draft_received
        // = on_view): the spool empties only after that step, so none can still be on its way.
        #expect(try reportJobs() == ReportJobs(queued: 0, running: 0, done: 0))
        // Sent again (a sender's retry, the PACS sending the study twice): Success, and still one analysis each.
        #expect(try store(files).status == 0)
        #expect(try await analysed(["1CT1", "4MR1"]))
        #expect(occurrences("dicom_instance_received") == 4)
        let mr = try await records(patient: "4MR1"), ct = try await records(patient: "1CT1")
        #expect(mr.count == 1 && ct.count == 1, "\(mr.count) MR, \(ct.count) CT analyses")
        #expect(occurrences("dicom_instance_analysed") == 2)
        try Self.expectCLINumbers(try #require(mr.first), file: "\(Self.testFiles)/MR_small.dcm")
        // The CT is out of the model's scope, and says so.
        #expect((ct.first?["inputCheck"] as? [String: Any])?["verdict"] as? String == "out_of_scope")
        // Looking at the MR's analysis queues its draft, and only its.
        let mrId = try #require(mr.first?["id"] as? String)
        #expect(try await stack.request("GET", "/api/analyses/\(mrId)").json?["report"] != nil)
        #expect(try await stack.draft(mrId)["status"] as? String == "draft")
        var jobs = try reportJobs()
        #expect(try await eventually(timeout: 30, every: .milliseconds(200)) { jobs = try self.reportJobs(); return jobs.done == 1 })
        #expect(jobs == ReportJobs(queued: 0, running: 0, done: 1), "the CT's draft waits until it is looked at")
    }

    /// The report jobs the status page counts: waiting, running, finished (every outcome).
    struct ReportJobs: Equatable { var queued: Int, running: Int, done: Int }
    func reportJobs() throws -> ReportJobs {
        let jobs = try #require(try stack.syncRequest("GET", "/api/status", auth: Stack.Auth.none).json?["reportJobs"] as? [String: Any])
        let done = (jobs["done"] as? [String: Any] ?? [:]).values.compactMap { $0 as? Int }.reduce(0, +)
        return ReportJobs(queued: try #require(jobs["queued"] as? Int), running: try #require(jobs["running"] as? Int), done: done)
    }

    @Test func callersNotOnThePeerListAreRejectedAtAssociation() async throws {
        #expect(try await listening())
        let stranger = try echo(callingAE: "STRANGER")
        #expect(stranger.status != 0)
        #expect("\(stranger.stdout)\(stranger.stderr)".contains("Association Rejected"), "\(stranger.stderr)")
        let wrongCalled = try echo(calledAE: "SOMEONE")
        #expect(wrongCalled.status != 0)
        #expect(try store(["\(Self.testFiles)/CT_small.dcm"], callingAE: "STRANGER").status != 0)
        // A listed AE title calling from an address it is not listed at.
        #expect(try echo(callingAE: "ELSEWHERE").status != 0)
        #expect(occurrences("dicom_association_rejected") >= 3)
        #expect(try echo().status == 0, "the listener still serves its peers")
    }

    /// A TCP proxy in front of the listener for one connection: forwards the client's first `limit` bytes
    /// and then closes both sides; with `record`, also writes what the client sent there.
    func startProxy(limit: Int, record: String? = nil) throws -> (Process, Int) {
        let proxyPort = try Stack.freePort()
        let proxy = Process()
        proxy.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        proxy.arguments = ["-c", """
            import socket, sys, threading
            limit, server = int(sys.argv[3]), socket.create_server(("127.0.0.1", int(sys.argv[1])))
            record = open(sys.argv[4], "wb") if len(sys.argv) > 4 else None
            print("ready", flush=True)
            client, _ = server.accept()
            upstream = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
            def back():
                try:
                    while (data := upstream.recv(65536)): client.sendall(data)
                except OSError: pass
                client.close()
            threading.Thread(target=back, daemon=True).start()
            sent = 0
            try:
                while sent < limit and (data := client.recv(min(4096, limit - sent))):
                    upstream.sendall(data); sent += len(data)
                    if record: record.write(data); record.flush()
            except OSError: pass
            upstream.close(); client.close()
            """, String(proxyPort), String(port), String(limit)] + (record.map { [$0] } ?? [])
        let ready = Pipe()
        proxy.standardOutput = ready
        try proxy.run()
        _ = try ready.fileHandleForReading.read(upToCount: 6)   // "ready\n": it listens
        return (proxy, proxyPort)
    }

    /// A sender cut off half way through a data set (a TCP proxy that forwards the first 20,000 bytes
    /// and then closes both sides): nothing is kept, the listener counts it and goes on.
    @Test func aDataSetCutOffHalfWayIsDroppedAndTheListenerGoesOn() async throws {
        #expect(try await listening())
        let before = spooled
        let (proxy, proxyPort) = try startProxy(limit: 20000)
        defer { if proxy.isRunning { kill(proxy.processIdentifier, SIGKILL) } }
        let cut = try dcmtk("storescu", ["-aet", "SENDER", "-aec", "MEDISCOPE", "127.0.0.1", String(proxyPort), "\(Self.testFiles)/CT_small.dcm"])
        #expect(cut.status != 0)
        #expect(try await eventually(timeout: 30, every: .milliseconds(100)) {
            self.occurrences("dicom_receive_failed") + self.occurrences("dicom_association_aborted") >= 1
        })
        #expect(spooled == before, "nothing of a cut data set is kept")
        let incoming = stack.varDir.appendingPathComponent("dicom/incoming").path
        #expect(try await eventually(timeout: 30) { ((try? FileManager.default.contentsOfDirectory(atPath: incoming)) ?? []).isEmpty },
                "its partial file is removed")
        #expect(try echo().status == 0, "the listener goes on")
    }

    /// A seeded mutation fuzzer at the network layer: the bytes echoscu and storescu send (recorded through
    /// the proxy) with bytes flipped, lengths made huge or zero, cut short or padded with garbage, each on
    /// a connection of its own. The listener process never dies (same pid), keeps nothing, and answers
    /// its peers afterwards.
    @Test func mutatedAssociationsAndPDUsNeverStopTheListener() async throws {
        #expect(try await listening())
        let folder = TemporaryFolder("mediscope-pdu-fuzz")
        var streams: [[UInt8]] = []
        for (tool, extra) in [("echoscu", [String]()), ("storescu", ["\(Self.testFiles)/MR_small.dcm"])] {
            let record = folder.appending("\(tool).bin").path
            let (proxy, proxyPort) = try startProxy(limit: 1 << 30, record: record)
            defer { if proxy.isRunning { kill(proxy.processIdentifier, SIGKILL) } }
            let run = try dcmtk(tool, ["-aet", "SENDER", "-aec", "MEDISCOPE", "127.0.0.1", String(proxyPort)] + extra)
            #expect(run.status == 0, "\(tool) through the proxy: \(run.stderr)")
            #expect(try await eventually(timeout: 30) { !proxy.isRunning })
            streams.append(Array(try Data(contentsOf: URL(fileURLWithPath: record))))
        }
        #expect(streams.allSatisfy { $0.count > 68 && $0[0] == 0x01 }, "each stream opens with an A-ASSOCIATE-RQ")
        let listener = try #require(try Self.process(listening: port, among: LeanProcessTests.children(of: stack.masterPID)))
        let before = spooled
        var random = SplitMix64(seed: 24)
        for round in 0..<120 {
            var bytes = streams[round % streams.count]
            switch random.next() % 5 {
            case 0:   // flip bytes
                for _ in 0..<(1 + Int(random.next() % 8)) { bytes[Int(random.next() % UInt64(bytes.count))] ^= UInt8(truncatingIfNeeded: random.next() | 1) }
            case 1:   // a PDU or item length made huge, zero or off by some
                let at = Int(random.next() % UInt64(bytes.count - 4))
                let value: UInt32 = [0xFFFF_FFFF, 0, UInt32(truncatingIfNeeded: random.next()), 0x7FFF_FFFF][Int(random.next() % 4)]
                for k in 0..<4 { bytes[at + k] = UInt8(truncatingIfNeeded: value >> (24 - 8 * k)) }
            case 2:   // cut short
                bytes = Array(bytes.prefix(1 + Int(random.next() % UInt64(bytes.count - 1))))
            case 3:   // garbage appended after a valid prefix
                bytes = Array(bytes.prefix(Int(random.next() % UInt64(bytes.count)))) + (0..<64).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            default:  // a known PDU type with random contents
                bytes = [UInt8([1, 2, 3, 4, 5, 6, 7][Int(random.next() % 7)]), 0, 0, 0, 0, 64] + (0..<64).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            }
            let raw = try RawConnection(port: port, from: "127.0.0.1", timeout: 2)
            try? raw.send(bytes)
            raw.close()
        }
        #expect(try await listening(), "the listener answers after 120 mutated connections")
        #expect(try Self.process(listening: port, among: LeanProcessTests.children(of: stack.masterPID)) == listener, "and never died")
        #expect(Set(spooled).isSubset(of: Set(before)), "nothing of them is kept")
        #expect(try store(["\(Self.testFiles)/CT_small.dcm"]).status == 0)
    }

    @Test func anInstanceGrowingPastTheLimitIsAbortedAsItArrives() async throws {
        #expect(try await listening())
        let before = spooled
        // 197 KB of Secondary Capture against a 64 KiB limit: an A-ABORT mid-stream, not a refusal after it all arrived.
        let big = try store(["\(Self.testFiles)/SC_rgb_jpeg_dcmd.dcm"])
        let said = "\(big.stdout)\(big.stderr)"
        #expect(big.status != 0 && said.contains("Abort") && !said.contains("Store Response"), "\(said)")
        #expect(occurrences("dicom_instance_too_large") == 1)
        #expect(spooled == before)
        #expect(try echo().status == 0, "the listener goes on")
        #expect(try store(["\(Self.testFiles)/MR_small.dcm"]).status == 0)
    }

    @Test func otherBytesUnderAKnownSOPInstanceUIDAreRefusedNotMixedUp() async throws {
        #expect(try await listening())
        let folder = TemporaryFolder("mediscope-dicom-resend")
        let first = folder.appending("first.dcm").path, corrected = folder.appending("corrected.dcm").path
        for path in [first, corrected] { try FileManager.default.copyItem(atPath: "\(Self.testFiles)/MR_small.dcm", toPath: path) }
        let uid = "1.2.826.0.1.3680043.8.498.3101"
        #expect(try dcmtk("dcmodify", ["-nb", "-m", "(0008,0018)=\(uid)", first]).status == 0)
        #expect(try dcmtk("dcmodify", ["-nb", "-m", "(0008,0018)=\(uid)", "-i", "(0008,103E)=corrected", corrected]).status == 0)
        #expect(try store([first]).status == 0)
        let resent = try store([corrected])
        #expect("\(resent.stdout)\(resent.stderr)".contains("Store Response (Error: DataSetDoesNotMatchSOPClass"), "\(resent.stdout)\(resent.stderr)")
        // Before and after its analysis alike, and the first copy's analysis stands alone.
        #expect(try await analysed(["4MR1"]))
        let again = try store([corrected])
        #expect("\(again.stdout)\(again.stderr)".contains("DataSetDoesNotMatchSOPClass"))
        #expect(try store([first]).status == 0, "the same bytes again are fine")
    }

    @Test func aFileTheListenerDiedDecodingIsNotDecodedAgain() async throws {
        #expect(try await listening())
        let folder = TemporaryFolder("mediscope-dicom-poison")
        let file = folder.appending("poison.dcm").path
        try FileManager.default.copyItem(atPath: "\(Self.testFiles)/CT_small.dcm", toPath: file)
        #expect(try dcmtk("dcmodify", ["-nb", "-m", "(0008,0018)=1.2.826.0.1.3680043.8.498.3201", file]).status == 0)
        // The digest the listener keeps while decoding: of the data set, past the File Meta Information.
        let query = try await runProcess(URL(fileURLWithPath: "/usr/bin/python3"), ["-c", """
            import hashlib, struct, sys
            data = open(sys.argv[1], "rb").read()
            start = 144 + struct.unpack_from("<I", data, 140)[0]
            print(hashlib.sha256(data[start:]).hexdigest())
            """, file], timeout: 30)
        let digest = query.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(digest.count == 64, "\(query.stderr)")
        // The listener dies while this file's digest is its decoding marker (as when DCMTK crashed on it).
        try Data(digest.utf8).write(to: stack.varDir.appendingPathComponent("run/dicom-decoding"))
        let listener = try #require(try Self.process(listening: port, among: LeanProcessTests.children(of: stack.masterPID)))
        kill(listener, SIGKILL)
        #expect(try await eventually(timeout: 60, every: .milliseconds(200)) { self.occurrences("dicom_instance_poisoned") == 1 })
        #expect(try await listening())
        let refused = try store([file])
        #expect("\(refused.stdout)\(refused.stderr)".contains("Store Response (Error: CannotUnderstand)"), "\(refused.stdout)")
        #expect(try store(["\(Self.testFiles)/MR_small.dcm"]).status == 0, "other files are taken")
    }

    @Test func aSOPClassItDoesNotTakeAndAFileTheReaderRefusesGetAFailure() async throws {
        #expect(try await listening())
        #expect(try await analysed([]))
        let before = spooled
        // An RT Plan: no image, no presentation context for it.
        let plan = try store(["\(Self.testFiles)/rtplan.dcm"])
        #expect("\(plan.stdout)\(plan.stderr)".contains("No presentation context"), "\(plan.stderr)")
        // A CT whose Rows say more than its Pixel Data holds: received, refused by the reader (0xC000).
        let folder = TemporaryFolder("mediscope-dicom-bad")
        let bad = folder.appending("bad.dcm").path
        try FileManager.default.copyItem(atPath: "\(Self.testFiles)/CT_small.dcm", toPath: bad)
        #expect(try dcmtk("dcmodify", ["-nb", "-m", "(0028,0010)=4096", "-m", "(0008,0018)=1.2.826.0.1.3680043.8.498.1", bad]).status == 0)
        let refused = try store([bad])
        #expect("\(refused.stdout)\(refused.stderr)".contains("Store Response (Error: CannotUnderstand)"), "\(refused.stdout)\(refused.stderr)")
        // No Patient ID: it would be filed under nobody's (or another patient's) id: refused, not kept.
        let anonymous = folder.appending("anonymous.dcm").path
        try FileManager.default.copyItem(atPath: "\(Self.testFiles)/MR_small.dcm", toPath: anonymous)
        #expect(try dcmtk("dcmodify", ["-nb", "-ea", "(0010,0020)", "-m", "(0008,0018)=1.2.826.0.1.3680043.8.498.2", anonymous]).status == 0)
        let noID = try store([anonymous])
        #expect("\(noID.stdout)\(noID.stderr)".contains("Store Response (Error: CannotUnderstand)"), "\(noID.stdout)\(noID.stderr)")
        #expect(spooled == before, "nothing refused is kept")
        #expect(occurrences("dicom_instance_refused") >= 1)
        #expect(try echo().status == 0)
    }

    @Test func aBogusPDUAndAKilledListenerLeaveTheServiceListening() async throws {
        #expect(try await listening())
        // An A-ASSOCIATE-RQ whose length says 4 GiB, then the connection cut.
        let raw = try RawConnection(port: port, from: "127.0.0.1")
        try raw.send([0x01, 0x00, 0xFF, 0xFF, 0xFF, 0xFF] + Array(repeating: 0x41, count: 64))
        raw.close()
        #expect(try await listening(), "answers after a bogus PDU")

        // What it acknowledged before the kill is analysed; the master starts the listener again.
        stack.remember(["1CT1", "4MR1"])
        #expect(try store(["\(Self.testFiles)/CT_small.dcm"]).status == 0)
        let listener = try #require(try Self.process(listening: port, among: LeanProcessTests.children(of: stack.masterPID)))
        kill(listener, SIGKILL)
        #expect(try await listening(), "the listener is back")
        #expect(try Self.process(listening: port, among: LeanProcessTests.children(of: stack.masterPID)) != listener)
        #expect(try store(["\(Self.testFiles)/MR_small.dcm"]).status == 0)
        #expect(try await analysed(["1CT1", "4MR1"]))
        let ct = try await records(patient: "1CT1"), mr = try await records(patient: "4MR1")
        #expect(ct.count == 1 && mr.count == 1, "each instance analysed once")
    }

    /// `record` (an analysis as the API lists it) has the predictions and probabilities the command line
    /// gives for `file`.
    static func expectCLINumbers(_ record: [String: Any], file: String) throws {
        let cli = try runProcess(Repository.executable, ["analyze", "--json", "--no-images", file], timeout: 120)
        let image = try #require((try JSONSerialization.jsonObject(with: Data(cli.stdout.utf8)) as? [String: Any])?["images"] as? [[String: Any]]).first
        let expected = try #require(image?["results"] as? [[String: Any]])
        let got = try #require(record["results"] as? [[String: Any]])
        #expect(got.count == expected.count && !got.isEmpty)
        for (g, e) in zip(got, expected) {
            #expect(g["prediction"] as? String == e["prediction"] as? String)
            let gp = (g["probabilities"] as? [[String: Any]] ?? []).compactMap { $0["probability"] as? Double }
            let ep = (e["probabilities"] as? [[String: Any]] ?? []).compactMap { $0["probability"] as? Double }
            #expect(gp.count == ep.count && zip(gp, ep).allSatisfy { abs($0 - $1) < 1e-4 }, "\(gp) vs \(ep)")
        }
    }

    @Test func aListenerKilledMidAssociationLosesNothingAndTheRetryIsAccepted() async throws {
        #expect(try await listening())
        let folder = TemporaryFolder("mediscope-dicom-midkill")
        let files = try (1...60).map { n -> String in
            let path = folder.appending("s\(n).dcm").path
            try FileManager.default.copyItem(atPath: "\(Self.testFiles)/MR_small.dcm", toPath: path)
            #expect(try dcmtk("dcmodify", ["-nb", "-m", "(0008,0018)=1.2.826.0.1.3680043.8.498.3300.\(n)",
                                           "-m", "(0020,000E)=1.2.826.0.1.3680043.8.498.3300",
                                           "-m", "(0020,000D)=1.2.826.0.1.3680043.8.498.3300.0", path]).status == 0)
            return path
        }
        let received = occurrences("dicom_instance_received")
        let sender = Process()
        sender.executableURL = URL(fileURLWithPath: "/usr/bin/storescu")
        sender.arguments = ["-aet", "SENDER", "-aec", "MEDISCOPE", "127.0.0.1", String(port)] + files
        sender.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        sender.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try sender.run()
        defer { if sender.isRunning { kill(sender.processIdentifier, SIGKILL) } }
        // Killed once it has acknowledged some of the series, while the association goes on.
        #expect(try await eventually(timeout: 60, every: .milliseconds(5)) { self.occurrences("dicom_instance_received") > received })
        let listener = try #require(try Self.process(listening: port, among: LeanProcessTests.children(of: stack.masterPID)))
        kill(listener, SIGKILL)
        let acknowledged = occurrences("dicom_instance_received") - received
        #expect(try await eventually(timeout: 60) { !sender.isRunning })
        #expect(sender.terminationStatus != 0, "the association was cut mid-way")
        #expect(acknowledged < files.count)
        // The sender's retry of the whole series: every instance accepted, those acknowledged before kept once.
        #expect(try await listening())
        let retry = try store(files)
        #expect(retry.status == 0 && !"\(retry.stdout)\(retry.stderr)".contains("Error"), "\(retry.stderr)")
        func items() async throws -> [[String: Any]] {
            let r = try await stack.request("GET", "/api/studies/1.2.826.0.1.3680043.8.498.3300.0")
            return ((r.json?["series"] as? [[String: Any]]) ?? []).flatMap { ($0["items"] as? [[String: Any]]) ?? [] }
        }
        #expect(try await eventually(timeout: 240, every: .milliseconds(250)) {
            try await items().filter { $0["state"] as? String == "done" }.count == files.count
        })
        let all = try await items()
        #expect(all.count == files.count)
        #expect(Set(all.compactMap { $0["analysisId"] as? String }).count == files.count, "one analysis per instance")
        #expect(try await records(patient: "4MR1").count == files.count)
    }

    /// The process among `pids` holding the TCP socket listening on `port` (/proc/net/tcp and its fds).
    static func process(listening port: Int, among pids: [Int32]) throws -> Int32? {
        let table = LeanProcessTests.read("/proc/net/tcp") + LeanProcessTests.read("/proc/net/tcp6")
        let suffix = String(format: ":%04X", port)
        let inodes = table.split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 9, fields[1].hasSuffix(suffix), fields[3] == "0A" else { return nil }
            return String(fields[9])
        }
        for pid in pids {
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
            for fd in fds {
                if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"),
                   inodes.contains(where: { target == "socket:[\($0)]" }) {
                    return pid
                }
            }
        }
        return nil
    }
}
