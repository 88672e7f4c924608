import Foundation
import MediscopeDicomNet
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The C-STORE SCU and C-ECHO (StorageSCU) against real peers on loopback ports: DCMTK's storescp, this
/// module's own listener (StorageSCP, for chosen statuses and a peer that never answers a C-STORE), and
/// plain sockets (a peer that takes the connection and never answers, one that sends A-ASSOCIATE-RJ).
/// Objects are made with dump2dcm from dump text, so every byte sent is known.
@Suite(.serialized) struct StorageSCUTests {
    // MARK: Sending

    /// An SR and a Secondary Capture reach storescp with Success, over one association, and storescp (in
    /// bit-preserving mode) wrote exactly the data sets sent.
    @Test func anSRAndASecondaryCaptureArriveByteForByte() throws {
        let objects = Objects()
        let sr = try objects.sr(instance: "1.2.826.0.1.3680043.8.498.101"), sc = try objects.sc(instance: "1.2.826.0.1.3680043.8.498.102")
        let peer = try Storescp()
        let delivery = try scu(port: peer.port).send([sr, sc])
        #expect(delivery.outcomes == [.responded(0x0000), .responded(0x0000)])
        #expect(delivery.note == nil)
        #expect(delivery.allStored)
        let received = try #require(try peer.received(count: 2))
        let sent = [try dataSet(sr), try dataSet(sc)]
        #expect(Set(try received.map { try dataSet($0) }) == Set(sent), "storescp wrote the data sets sent, byte for byte")
        #expect(received.allSatisfy { Self.transferSyntax($0) == "1.2.840.10008.1.2.1" })
        #expect(peer.associations == 1, "\(peer.log)")
    }

    /// Objects of several kinds in one association: each outcome at its object's place, including one
    /// whose SOP class the peer refuses (not sent, the rest still sent).
    @Test func outcomesComeBackInOrderOverOneAssociation() throws {
        let objects = Objects()
        let peer = try Storescp()
        let batch = [
            try objects.sr(instance: "1.2.826.0.1.3680043.8.498.201"),
            try objects.sc(instance: "1.2.826.0.1.3680043.8.498.202"),
            try objects.sc(instance: "1.2.826.0.1.3680043.8.498.203", sopClass: "1.2.826.0.1.3680043.8.498.999"),   // no storage class
            try objects.sr(instance: "1.2.826.0.1.3680043.8.498.204"),
            try objects.sc(instance: "1.2.826.0.1.3680043.8.498.205"),
        ]
        let delivery = try scu(port: peer.port).send(batch)
        #expect(delivery.outcomes == [.responded(0), .responded(0), .notSent(.sopClassNotAccepted), .responded(0), .responded(0)])
        #expect(delivery.note?.contains("object 3 of 5") == true, "\(delivery.note ?? "")")
        #expect(!delivery.allStored)
        #expect(try peer.received(count: 4) != nil)
        #expect(peer.associations == 1, "\(peer.log)")
    }

    /// The listener answers each C-STORE with the status its delegate picks: Success, warnings and
    /// failures come back at their objects' places.
    @Test func eachObjectGetsItsOwnStatusInOrder() throws {
        let objects = Objects()
        let statuses: [UInt16] = [0x0000, 0xB000, 0xA700, 0xB007, 0xC000, 0x0000]
        let instances = statuses.indices.map { "1.2.826.0.1.3680043.8.498.3\($0)" }
        let listener = try Listener { instance in statuses[instances.firstIndex(of: instance.sopInstanceUID) ?? 0] }
        let batch = try instances.map { try objects.sc(instance: $0) }
        let delivery = try scu(port: listener.port, calledAE: Listener.aeTitle).send(batch)
        #expect(delivery.outcomes == statuses.map { .responded($0) })
        #expect(delivery.outcomes.map(\.stored) == [true, true, false, true, false, true])
        #expect(listener.delegate.accepted.value == 1, "one association")
        #expect(listener.delegate.received.value == instances)
        #expect(StorageSCU.StatusCategory(0x0000) == .success && StorageSCU.StatusCategory(0xB006) == .warning
            && StorageSCU.StatusCategory(0xA900) == .failure && StorageSCU.StatusCategory(0x0122) == .failure)
    }

    /// Explicit VR objects to a peer that takes Implicit VR Little Endian only: converted (lossless), and
    /// the data sets' values arrive unchanged. A JPEG Lossless object is not decompressed (no codec here):
    /// not sent, for its transfer syntax.
    @Test func transferSyntaxesAreConvertedOnlyWhereLossless() throws {
        let objects = Objects()
        let sr = try objects.sr(instance: "1.2.826.0.1.3680043.8.498.401")
        let jpegFile = Repository.root.appendingPathComponent("Tests/Fuzz/corpus/dicom/jpeg_lossless_sv1_rgb.dcm")
        let jpeg = Array(try Data(contentsOf: jpegFile))
        let peer = try Storescp(["+xi"])
        let delivery = try scu(port: peer.port).send([jpeg, sr])
        #expect(delivery.outcomes == [.notSent(.transferSyntaxNotAccepted), .responded(0)])
        let received = try #require(try peer.received(count: 1))
        #expect(Self.transferSyntax(received[0]) == "1.2.840.10008.1.2")
        #expect(try dump(received[0], in: objects.folder) == dump(sr, in: objects.folder))
    }

    /// A batch with one buffer cut mid-element, or garbage: nothing is sent, not even the good objects
    /// before it (storescp never sees an association).
    @Test func anObjectThatCannotBeParsedSendsNothing() throws {
        let objects = Objects()
        let sr = try objects.sr(instance: "1.2.826.0.1.3680043.8.498.501")
        let peer = try Storescp()
        var garbage = [UInt8](repeating: 0, count: 128) + Array("DICM".utf8)
        garbage += (0..<400).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        for bad in [Array(sr.prefix(sr.count - 7)), garbage, Array(sr.prefix(100)), []] {
            let failure = #expect(throws: StorageSCU.Failure.self) { try scu(port: peer.port).send([sr, bad]) }
            #expect(failure?.kind == .badInput, "\(String(describing: failure))")
            #expect(failure?.message.contains("object 2 of 2") == true, "\(String(describing: failure))")
        }
        #expect(try scu(port: peer.port).send([]).outcomes.isEmpty, "no objects, nothing to do")
        #expect(peer.associations == 0, "\(peer.log)")
        #expect(peer.files.isEmpty)
    }

    /// storescp aborting the association after taking an object: that object has no response (whether it
    /// was kept is unknown to the sender), the next is not sent.
    @Test func aPeerAbortEndsTheAssociation() throws {
        let objects = Objects()
        let peer = try Storescp(["--abort-after"])
        let batch = [try objects.sr(instance: "1.2.826.0.1.3680043.8.498.551"), try objects.sc(instance: "1.2.826.0.1.3680043.8.498.552")]
        let delivery = try scu(port: peer.port).send(batch)
        #expect(delivery.outcomes == [.noResponse, .notSent(.associationEnded)])
        #expect(delivery.note?.contains("the peer aborted the association") == true, "\(delivery.note ?? "")")
    }

    // MARK: Failing to associate

    /// Nothing listens: unreachable, at once.
    @Test func nothingListeningIsUnreachable() throws {
        let objects = Objects()
        let port = try Self.freePort()
        let sr = try objects.sr(instance: "1.2.826.0.1.3680043.8.498.601")
        let started = Date()
        let failure = #expect(throws: StorageSCU.Failure.self) { try scu(port: port).send([sr]) }
        #expect(failure?.kind == .unreachable, "\(String(describing: failure))")
        #expect(failure?.message.contains("cannot connect to 127.0.0.1:\(port)") == true, "\(String(describing: failure))")
        let echoed = #expect(throws: StorageSCU.Failure.self) { try scu(port: port).echo() }
        #expect(echoed?.kind == .unreachable)
        #expect(Date().timeIntervalSince(started) < 5)
    }

    /// storescp --refuse: rejected, permanently, with the reason in the message.
    @Test func aRefusingPeerRejectsPermanently() throws {
        let objects = Objects()
        let peer = try Storescp(["--refuse"])
        let sr = try objects.sr(instance: "1.2.826.0.1.3680043.8.498.701")
        let failure = #expect(throws: StorageSCU.Failure.self) { try scu(port: peer.port).send([sr]) }
        #expect(failure?.kind == .rejected(permanent: true), "\(String(describing: failure))")
        #expect(failure?.message.contains("permanent") == true && failure?.message.contains("no reason given") == true,
                "\(String(describing: failure))")
        #expect(peer.files.isEmpty)
    }

    /// The listener rejects a called AE title it does not answer to, and a calling AE title its delegate
    /// refuses, each with its reason.
    @Test func aWrongAETitleIsRejectedWithItsReason() throws {
        let objects = Objects()
        let listener = try Listener { _ in 0 }
        let sc = try objects.sc(instance: "1.2.826.0.1.3680043.8.498.801")
        let called = #expect(throws: StorageSCU.Failure.self) { try scu(port: listener.port, calledAE: "SOMEONE").send([sc]) }
        #expect(called?.kind == .rejected(permanent: true), "\(String(describing: called))")
        #expect(called?.message.contains("called AE title not recognized") == true, "\(String(describing: called))")
        let calling = #expect(throws: StorageSCU.Failure.self) {
            try scu(port: listener.port, callingAE: "STRANGER", calledAE: Listener.aeTitle).send([sc])
        }
        #expect(calling?.kind == .rejected(permanent: true), "\(String(describing: calling))")
        #expect(calling?.message.contains("calling AE title not recognized") == true, "\(String(describing: calling))")
        #expect(listener.delegate.received.value.isEmpty)
        try scu(port: listener.port, calledAE: Listener.aeTitle).echo()
    }

    /// A peer that answers the association request with a transient A-ASSOCIATE-RJ (temporary congestion).
    @Test func aTransientRejectionSaysSo() throws {
        let objects = Objects()
        // A-ASSOCIATE-RJ: type 3, length 4, reserved, result 2 (transient), source 3 (presentation), reason 1.
        let peer = try RawPeer(answer: [0x03, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x02, 0x03, 0x01])
        let sr = try objects.sr(instance: "1.2.826.0.1.3680043.8.498.901")
        let failure = #expect(throws: StorageSCU.Failure.self) { try scu(port: peer.port).send([sr]) }
        #expect(failure?.kind == .rejected(permanent: false), "\(String(describing: failure))")
        #expect(failure?.message.contains("transient") == true && failure?.message.contains("temporary congestion") == true,
                "\(String(describing: failure))")
        withExtendedLifetime(peer) {}
    }

    /// A peer that takes the TCP connection and never answers: a failure after the ACSE timeout, not a hang.
    @Test func aPeerThatNeverAnswersFailsWithinTheTimeout() throws {
        let objects = Objects()
        let peer = try RawPeer(answer: nil)
        var settings = StorageSCU.Settings(host: "127.0.0.1", port: peer.port, callingAETitle: "MEDISCOPE", calledAETitle: "PACS")
        settings.acseTimeout = 2
        let sr = try objects.sr(instance: "1.2.826.0.1.3680043.8.498.1001")
        let started = Date()
        let failure = #expect(throws: StorageSCU.Failure.self) { try StorageSCU(settings: settings).send([sr]) }
        let elapsed = Date().timeIntervalSince(started)
        #expect(failure?.kind == .failed, "\(String(describing: failure))")
        #expect(failure?.message.contains("no association response within 2 s") == true, "\(String(describing: failure))")
        #expect(elapsed >= 1.5 && elapsed < 15, "\(elapsed) s")
        #expect(throws: StorageSCU.Failure.self) { try StorageSCU(settings: settings).echo() }
        withExtendedLifetime(peer) {}
    }

    /// A listener that takes a C-STORE and never answers it: that object has no response after the DIMSE
    /// timeout, the association is aborted (DCMTK then waits up to the ACSE timeout for the peer to close),
    /// and the objects after it are not sent.
    @Test func aC_STOREWithoutResponseEndsTheAssociation() throws {
        let objects = Objects()
        let release = DispatchSemaphore(value: 0)
        let listener = try Listener { instance in
            if instance.sopInstanceUID.hasSuffix(".1102") { _ = release.wait(timeout: .now() + 30) }
            return 0
        }
        defer { release.signal() }
        var settings = StorageSCU.Settings(host: "127.0.0.1", port: listener.port, callingAETitle: "MEDISCOPE",
                                           calledAETitle: Listener.aeTitle)
        settings.dimseTimeout = 2
        settings.acseTimeout = 2   // after its A-ABORT, DCMTK waits this long for the peer to close
        let batch = try (1101...1103).map { try objects.sc(instance: "1.2.826.0.1.3680043.8.498.\($0)") }
        let started = Date()
        let delivery = try StorageSCU(settings: settings).send(batch)
        let elapsed = Date().timeIntervalSince(started)
        #expect(delivery.outcomes == [.responded(0), .noResponse, .notSent(.associationEnded)])
        #expect(delivery.note?.contains("object 2 of 3") == true && delivery.note?.contains("no C-STORE response within 2 s") == true,
                "\(delivery.note ?? "")")
        #expect(elapsed >= 1.5 && elapsed < 20, "\(elapsed) s")
        withExtendedLifetime(listener) {}
    }

    // MARK: C-ECHO and settings

    /// C-ECHO against storescp.
    @Test func echoWorksAgainstStorescp() throws {
        let peer = try Storescp()
        try scu(port: peer.port).echo()
        #expect(peer.log.contains("Received Echo Request"), "\(peer.log)")
    }

    /// Settings the C code refuses before any connection: a failure that says which.
    @Test func badSettingsFailBeforeConnecting() {
        var settings = StorageSCU.Settings(host: "127.0.0.1", port: 104, callingAETitle: "A_TITLE_LONGER_THAN_16", calledAETitle: "PACS")
        let title = #expect(throws: StorageSCU.Failure.self) { try StorageSCU(settings: settings).echo() }
        #expect(title?.kind == .failed && title?.message.contains("calling AE title") == true, "\(String(describing: title))")
        settings.callingAETitle = "MEDISCOPE"
        settings.host = "::1"
        let host = #expect(throws: StorageSCU.Failure.self) { try StorageSCU(settings: settings).echo() }
        #expect(host?.message.contains("IPv6") == true, "\(String(describing: host))")
        settings.host = "127.0.0.1"
        settings.dimseTimeout = 0
        let timeout = #expect(throws: StorageSCU.Failure.self) { try StorageSCU(settings: settings).echo() }
        #expect(timeout?.message.contains("timeout") == true, "\(String(describing: timeout))")
    }

    // MARK: Helpers

    /// A sender to 127.0.0.1:`port`.
    func scu(port: UInt16, callingAE: String = "MEDISCOPE", calledAE: String = "PACS") -> StorageSCU {
        var settings = StorageSCU.Settings(host: "127.0.0.1", port: port, callingAETitle: callingAE, calledAETitle: calledAE)
        settings.connectTimeout = 5
        settings.acseTimeout = 10
        settings.dimseTimeout = 10
        return StorageSCU(settings: settings)
    }

    /// The data set of a PS3.10 file: what follows the File Meta Information (its length is (0002,0000)'s value).
    func dataSet(_ file: [UInt8]) throws -> [UInt8] {
        try #require(file.count > 144 && Array(file[128..<132]) == Array("DICM".utf8) && Array(file[132..<136]) == [2, 0, 0, 0])
        let metaLength = Int(file[140]) | Int(file[141]) << 8 | Int(file[142]) << 16 | Int(file[143]) << 24
        return Array(file[(144 + metaLength)...])
    }

    /// The Transfer Syntax UID in a PS3.10 file's meta information.
    static func transferSyntax(_ file: [UInt8]) -> String? {
        let tag: [UInt8] = [0x02, 0x00, 0x10, 0x00, 0x55, 0x49]   // (0002,0010) UI
        guard let at = (132..<max(132, file.count - 8)).first(where: { Array(file[$0..<$0 + 6]) == tag }) else { return nil }
        let length = Int(file[at + 6]) | Int(file[at + 7]) << 8
        guard at + 8 + length <= file.count else { return nil }
        return String(decoding: file[(at + 8)..<(at + 8 + length)].filter { $0 != 0 }, as: UTF8.self)
    }

    /// dcmdump's lines for a file's data set: tags, VRs and values, without the lengths (a sequence's
    /// differs between explicit and implicit VR) and the line naming the transfer syntax.
    func dump(_ file: [UInt8], in folder: TemporaryFolder) throws -> [String] {
        let path = folder.file("dump-\(UUID().uuidString).dcm", file).path
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/dcmdump"), ["-q", "+L", path], timeout: 30)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.components(separatedBy: "\n")
        let start = lines.firstIndex(of: "# Dicom-Data-Set") ?? 0
        return lines[start...].filter { !$0.hasPrefix("# Used TransferSyntax") }.map { $0.components(separatedBy: " #").first ?? $0 }
    }

    /// A free TCP port on the loopback address (bound to port 0 and released).
    static func freePort() throws -> UInt16 {
        let socket = try RawPeer.listeningSocket()
        defer { close(socket.fd) }
        return socket.port
    }
}

/// Test objects made with dump2dcm (Explicit VR Little Endian, DCMTK's default encoding).
final class Objects {
    let folder = TemporaryFolder("mediscope-scu")

    /// A Comprehensive SR with a title and one TEXT item.
    func sr(instance: String) throws -> [UInt8] {
        try make(instance, """
            (0008,0005) CS [ISO_IR 192]
            (0008,0016) UI =ComprehensiveSRStorage
            (0008,0018) UI [\(instance)]
            (0008,0060) CS [SR]
            (0010,0010) PN [Test^Patient]
            (0010,0020) LO [SCU-TEST]
            (0020,000d) UI [1.2.826.0.1.3680043.8.498.1.1]
            (0020,000e) UI [1.2.826.0.1.3680043.8.498.1.2]
            (0040,a040) CS [CONTAINER]
            (0040,a043) SQ (Sequence)
            (fffe,e000) na (Item)
            (0008,0100) SH [126000]
            (0008,0102) SH [DCM]
            (0008,0104) LO [Imaging Measurement Report]
            (fffe,e00d) na (ItemDelimitationItem)
            (fffe,e0dd) na (SequenceDelimitationItem)
            (0040,a050) CS [SEPARATE]
            (0040,a730) SQ (Sequence)
            (fffe,e000) na (Item)
            (0040,a010) CS [CONTAINS]
            (0040,a040) CS [TEXT]
            (0040,a043) SQ (Sequence)
            (fffe,e000) na (Item)
            (0008,0100) SH [121071]
            (0008,0102) SH [DCM]
            (0008,0104) LO [Finding]
            (fffe,e00d) na (ItemDelimitationItem)
            (fffe,e0dd) na (SequenceDelimitationItem)
            (0040,a160) UT [No abnormality seen: \(instance)]
            (fffe,e00d) na (ItemDelimitationItem)
            (fffe,e0dd) na (SequenceDelimitationItem)
            """)
    }

    /// A 128x128 8-bit monochrome Secondary Capture (or, with `sopClass`, the same data set claiming another
    /// class). Its pixel data (16 KB) is longer than the values DCMTK loads at once when reading a file.
    func sc(instance: String, sopClass: String = "1.2.840.10008.5.1.4.1.1.7") throws -> [UInt8] {
        let pixels = folder.file("\(instance).raw", (0..<(128 * 128)).map { UInt8(truncatingIfNeeded: $0 / 128 + $0 % 128) })
        return try make(instance, """
            (0008,0016) UI [\(sopClass)]
            (0008,0018) UI [\(instance)]
            (0008,0060) CS [OT]
            (0008,0064) CS [WSD]
            (0010,0010) PN [Test^Patient]
            (0010,0020) LO [SCU-TEST]
            (0020,000d) UI [1.2.826.0.1.3680043.8.498.1.1]
            (0020,000e) UI [1.2.826.0.1.3680043.8.498.1.3]
            (0028,0002) US 1
            (0028,0004) CS [MONOCHROME2]
            (0028,0010) US 128
            (0028,0011) US 128
            (0028,0100) US 8
            (0028,0101) US 8
            (0028,0102) US 7
            (0028,0103) US 0
            (7fe0,0010) OB =\(pixels.path)
            """)
    }

    private func make(_ name: String, _ dump: String) throws -> [UInt8] {
        let text = folder.file("\(name).dump", dump + "\n")
        let output = folder.appending("\(name).dcm")
        let result = try runProcess(URL(fileURLWithPath: "/usr/bin/dump2dcm"), ["--write-xfer-little", text.path, output.path],
                                    timeout: 30)
        try #require(result.status == 0, "dump2dcm: \(result.stderr)")
        return Array(try Data(contentsOf: output))
    }
}

/// DCMTK's storescp on a free loopback port, bit-preserving, writing into a folder of its own; killed when
/// the value goes away. Its log says "Association Received" for any TCP connection (the readiness probe
/// too), "Association Acknowledged" for each association.
final class Storescp {
    let port: UInt16
    let folder = TemporaryFolder("mediscope-storescp")
    private let process = Process()
    private let logFile: URL

    /// Starts storescp with `options` and waits (by deadline) until it takes connections.
    init(_ options: [String] = []) throws {
        port = try StorageSCUTests.freePort()
        let output = folder.appending("received")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        logFile = folder.file("storescp.log", "")
        process.executableURL = URL(fileURLWithPath: "/usr/bin/storescp")
        process.arguments = ["-v", "+B", "-aet", "PACS", "-od", output.path] + options + [String(port)]
        let log = try FileHandle(forWritingTo: logFile)
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? log.close()
        guard RawPeer.waitUntilListening(port: port, timeout: 30) else {
            stop()
            throw StorescpError(message: "storescp did not listen on \(port): \(self.log)")
        }
    }

    deinit { stop() }

    /// Kills storescp (it keeps nothing worth a clean exit) and waits for it.
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// What storescp logged so far.
    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// How many associations storescp accepted.
    var associations: Int { log.components(separatedBy: "Association Acknowledged").count - 1 }

    /// The files storescp wrote.
    var files: [URL] {
        let output = folder.appending("received")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: output.path)) ?? []
        return names.sorted().map { output.appendingPathComponent($0) }
    }

    /// The files' bytes once `count` files are there and whole (waited for by deadline), else nil.
    func received(count: Int, timeout: Double = 30) throws -> [[UInt8]]? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if files.count >= count, log.components(separatedBy: "Received Store Request").count - 1 >= count {
                return try files.map { Array(try Data(contentsOf: $0)) }
            }
            usleep(20_000)
        }
        return nil
    }
}

/// storescp could not be started.
struct StorescpError: Error { let message: String }

/// This module's own listener (StorageSCP) on a free loopback port, in a thread of its own, answering each
/// C-STORE with the status `status` picks; stopped (and waited for) when the value goes away.
final class Listener {
    /// The AE title it answers to.
    static let aeTitle = "LISTENER"
    let port: UInt16
    let delegate: Delegate
    let folder = TemporaryFolder("mediscope-listener")
    private let finished = DispatchSemaphore(value: 0)

    /// What the listener is asked, recorded under a lock; `shouldStop` once `stop` is set.
    final class Delegate: StorageSCP.Delegate, @unchecked Sendable {
        let status: @Sendable (StorageSCP.Instance) -> UInt16
        let stop = LockedBox(false)
        let accepted = LockedBox(0)
        let tooLong = LockedBox(0)
        let received = LockedBox<[String]>([])
        init(status: @escaping @Sendable (StorageSCP.Instance) -> UInt16) { self.status = status }
        func accept(callingAETitle: String, peerAddress: String) -> Bool { callingAETitle != "STRANGER" }
        func stored(_ instance: StorageSCP.Instance) -> UInt16 {
            received.append(instance.sopInstanceUID)
            return status(instance)
        }
        func shouldStop() -> Bool { stop.value }
        func event(_ event: StorageSCP.Event) {
            if case .associationAccepted = event { accepted.mutate { $0 += 1 } }
            if case .associationTooLong = event { tooLong.mutate { $0 += 1 } }
        }
    }

    init(acseTimeout: UInt32 = 10, dimseTimeout: UInt32 = 30, associationTimeout: UInt32 = 1800,
         status: @escaping @Sendable (StorageSCP.Instance) -> UInt16) throws {
        port = try StorageSCUTests.freePort()
        delegate = Delegate(status: status)
        var settings = StorageSCP.Settings(port: port, aeTitle: Self.aeTitle, incomingDirectory: folder.appending("incoming").path)
        settings.acseTimeout = acseTimeout
        settings.dimseTimeout = dimseTimeout
        settings.associationTimeout = associationTimeout
        let delegate = delegate, finished = finished, scpSettings = settings
        Thread {
            try? StorageSCP(settings: scpSettings, delegate: delegate).run()
            finished.signal()
        }.start()
        guard RawPeer.waitUntilListening(port: port, timeout: 30) else {
            delegate.stop.mutate { $0 = true }
            throw StorescpError(message: "the listener did not listen on \(port)")
        }
    }

    deinit {
        delegate.stop.mutate { $0 = true }
        _ = finished.wait(timeout: .now() + 60)
    }
}

/// A plain TCP listener on a free loopback port: with `answer` nil it never accepts (the kernel completes
/// the handshake: the peer "takes the connection and never answers"); else it accepts one connection,
/// reads what comes and writes `answer`.
final class RawPeer {
    let port: UInt16
    private let fd: Int32

    init(answer: [UInt8]?) throws {
        (fd, port) = try Self.listeningSocket()
        if let answer {
            let fd = fd
            Thread {
                let client = accept(fd, nil, nil)
                guard client >= 0 else { return }
                var buffer = [UInt8](repeating: 0, count: 65536)
                _ = read(client, &buffer, buffer.count)
                _ = answer.withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
                usleep(500_000)
                close(client)
            }.start()
        }
    }

    deinit { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }

    /// A socket listening on 127.0.0.1 at a port the kernel picked.
    static func listeningSocket() throws -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StorescpError(message: "socket: \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound, listen(fd, 8) == 0 else {
            close(fd)
            throw StorescpError(message: "bind/listen: \(errno)")
        }
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    /// Whether a TCP connection to 127.0.0.1:`port` succeeds within `timeout` seconds (polled by deadline).
    static func waitUntilListening(port: UInt16, timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let fd = connectedSocket(port: port)
            if fd >= 0 {
                close(fd)
                return true
            }
            usleep(20_000)
        }
        return false
    }

    /// A socket connected to 127.0.0.1:`port`, or -1 (errno says why).
    static func connectedSocket(port: UInt16) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        if !connected {
            let why = errno
            close(fd)
            errno = why
            return -1
        }
        return fd
    }
}
