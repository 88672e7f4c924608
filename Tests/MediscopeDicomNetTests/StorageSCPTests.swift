import Foundation
import MediscopeDicomNet
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The listener (StorageSCP) against peers that stall: it takes one association at a time, so a peer that
/// sends part of an association request, or a PDU, and then waits must not hold it. The association
/// request is a real one, recorded from this module's StorageSCU.
@Suite(.serialized) struct StorageSCPTests {
    /// A request cut after its PDU header and four bytes, the connection kept open: dropped once the ACSE
    /// timeout has passed since the connection, and a C-ECHO waiting behind it is answered.
    @Test func anAssociationRequestThatStallsIsDroppedAndTheNextPeerIsServed() throws {
        let request = try Self.recordedAssociationRequest()
        let listener = try Listener(acseTimeout: 2) { _ in 0 }
        let staller = try PeerSocket(port: listener.port)
        try staller.send(Array(request.prefix(10)))
        // Waits in the listener's backlog behind the stalled request; DCMTK alone would never read past it.
        var settings = StorageSCU.Settings(host: "127.0.0.1", port: listener.port, callingAETitle: "MEDISCOPE",
                                           calledAETitle: Listener.aeTitle)
        settings.acseTimeout = 40
        try StorageSCU(settings: settings).echo()
        #expect(staller.closedByPeer(within: 30), "the stalled connection was dropped")
        #expect(listener.delegate.accepted.value == 1, "only the C-ECHO's association was accepted")
    }

    /// The request sent a byte at a time, each within DCMTK's per-read timeout: cut off at the ACSE timeout
    /// counted from the connection, long before the last byte.
    @Test func aRequestTricklingInIsCutOffAtTheDeadline() throws {
        let request = try Self.recordedAssociationRequest()
        let listener = try Listener(acseTimeout: 2) { _ in 0 }
        let trickler = try PeerSocket(port: listener.port)
        let deadline = Date().addingTimeInterval(60)
        var sent = 0
        while sent < request.count, Date() < deadline, !trickler.closedByPeer(within: 0.25) {
            guard (try? trickler.send([request[sent]])) != nil else { break }
            sent += 1
        }
        #expect(sent < request.count, "cut off after \(sent) of \(request.count) bytes")
        #expect(trickler.closedByPeer(within: 30))
        try StorageSCUTests().scu(port: listener.port, calledAE: Listener.aeTitle).echo()
        #expect(listener.delegate.accepted.value == 1)
    }

    /// After a whole request and the listener's A-ASSOCIATE-AC, a P-DATA-TF that announces 4096 bytes and
    /// brings 4: the association ends at the DIMSE timeout (the idle limit), and the listener goes on.
    @Test func aPDUThatStallsAfterTheAssociationEndsItAtTheIdleLimit() throws {
        let request = try Self.recordedAssociationRequest()
        let listener = try Listener(acseTimeout: 10, dimseTimeout: 2) { _ in 0 }
        let peer = try PeerSocket(port: listener.port)
        try peer.send(request)
        let answer = try #require(peer.receive(within: 30), "an answer to the association request")
        #expect(answer.first == 0x02, "A-ASSOCIATE-AC, got PDU type \(answer.first.map { String($0) } ?? "none")")
        try peer.send([0x04, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x0F, 0xFC])
        #expect(peer.closedByPeer(within: 30), "the stalled association was ended")
        try StorageSCUTests().scu(port: listener.port, calledAE: Listener.aeTitle).echo()
        #expect(listener.delegate.accepted.value == 2)
    }

    /// An associated peer sending one PDU a byte at a time, each within the idle limit: cut at the
    /// association's time limit, counted as too long, long before the PDU's end.
    @Test func aPDUTricklingInEndsTheAssociationAtItsTimeLimit() throws {
        let request = try Self.recordedAssociationRequest()
        let listener = try Listener(acseTimeout: 10, dimseTimeout: 10, associationTimeout: 3) { _ in 0 }
        let peer = try PeerSocket(port: listener.port)
        try peer.send(request)
        #expect(try #require(peer.receive(within: 30)).first == 0x02, "A-ASSOCIATE-AC")
        try peer.send([0x04, 0x00, 0x00, 0x00, 0x10, 0x00])   // a P-DATA-TF of 4096 bytes
        let deadline = Date().addingTimeInterval(60)
        var sent = 0
        while sent < 4096, Date() < deadline, !peer.closedByPeer(within: 0.25) {
            guard (try? peer.send([0])) != nil else { break }
            sent += 1
        }
        #expect(sent < 4096, "cut off after \(sent) bytes")
        #expect(peer.closedByPeer(within: 30))
        #expect(listener.delegate.tooLong.value == 1)
        try StorageSCUTests().scu(port: listener.port, calledAE: Listener.aeTitle).echo()
    }

    /// Timeouts the C code cannot honour are refused when the listener starts, with the range.
    @Test func aZeroOrHugeTimeoutIsRefusedAtStart() throws {
        let folder = TemporaryFolder("mediscope-scp-settings")
        for (acse, dimse) in [(UInt32(0), UInt32(60)), (30, 0), (86_401, 60), (30, 3_000_000)] {
            var settings = StorageSCP.Settings(port: try StorageSCUTests.freePort(), aeTitle: "LISTENER",
                                               incomingDirectory: folder.appending("incoming").path)
            settings.acseTimeout = acse
            settings.dimseTimeout = dimse
            let delegate = Listener.Delegate { _ in 0 }
            let failure = #expect(throws: StorageSCP.Failure.self) { try StorageSCP(settings: settings, delegate: delegate).run() }
            #expect(failure?.description.contains("1 to 86400 seconds") == true, "\(String(describing: failure))")
        }
    }

    /// The A-ASSOCIATE-RQ PDU StorageSCU sends for a C-ECHO to the test listener's AE title, read from a
    /// socket that records it and never answers.
    static func recordedAssociationRequest() throws -> [UInt8] {
        let (fd, port) = try RawPeer.listeningSocket()
        defer { close(fd) }
        var settings = StorageSCU.Settings(host: "127.0.0.1", port: port, callingAETitle: "MEDISCOPE", calledAETitle: Listener.aeTitle)
        settings.acseTimeout = 2
        let sender = Thread { [settings] in try? StorageSCU(settings: settings).echo() }
        sender.start()
        let client = accept(fd, nil, nil)
        guard client >= 0 else { throw StorescpError(message: "accept: \(errno)") }
        let peer = PeerSocket(connected: client)
        var bytes: [UInt8] = []
        // The PDU's length is in its header: read until it is all there.
        while bytes.count < 6 || bytes.count < 6 + Int(UInt32(bytes[2]) << 24 | UInt32(bytes[3]) << 16 | UInt32(bytes[4]) << 8 | UInt32(bytes[5])) {
            guard let more = peer.receive(within: 30) else { throw StorescpError(message: "the request stopped after \(bytes.count) bytes") }
            bytes += more
        }
        try #require(bytes[0] == 0x01, "an A-ASSOCIATE-RQ")
        return bytes
    }
}

/// A TCP client socket on loopback that can stop anywhere in a PDU.
final class PeerSocket {
    private let fd: Int32

    init(port: UInt16) throws {
        fd = RawPeer.connectedSocket(port: port)
        guard fd >= 0 else { throw StorescpError(message: "connect to \(port): \(errno)") }
    }

    init(connected: Int32) { fd = connected }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw StorescpError(message: "send: \(errno)") }
            sent += n
        }
    }

    /// What arrives within `seconds`; nil when nothing does, or the peer closed.
    func receive(within seconds: Double) -> [UInt8]? {
        guard readable(within: seconds) else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n > 0 ? Array(buffer[..<n]) : nil
    }

    /// Whether the peer closes (or resets) the connection within `seconds`; what it sends first is read past.
    func closedByPeer(within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var buffer = [UInt8](repeating: 0, count: 65536)
        repeat {
            guard readable(within: max(0, deadline.timeIntervalSinceNow)) else { return false }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) { return true }
        } while Date() < deadline
        return false
    }

    /// Whether data (or the close) is there within `seconds`; a signal interrupting the wait does not end it.
    private func readable(within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            var socket = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&socket, 1, Int32(max(0, deadline.timeIntervalSinceNow) * 1000))
            if ready >= 0 || errno != EINTR { return ready > 0 }
        }
    }
}
