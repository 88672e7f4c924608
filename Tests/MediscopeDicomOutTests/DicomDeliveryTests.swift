import FirebaseTestKit
import Foundation
import MediscopeStore
import Testing
import TestSupport
@testable import MediscopeDicomOut

/// The delivery loop over STOW-RS's wire format, against a local HTTP server that answers as PS3.18 says
/// a STOW-RS service does (200, 202 with a Failed SOP Sequence, 409, 503): what is stored is settled once,
/// in order; a refused object backs off and is parked; a service that is down is tried again, nothing lost.
@Suite(.serialized) final class DicomDeliveryTests {
    let folder = TemporaryFolder("mediscope-dicom-delivery")

    /// A STOW-RS response body with a Failed SOP Sequence naming `uids` with Failure Reason 0xA900.
    static func failed(_ uids: [String]) -> String {
        let items = uids.map { #"{"00081150":{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.88.33"]},"00081155":{"vr":"UI","Value":["\#($0)"]},"00081197":{"vr":"US","Value":[43264]}}"# }
        return #"{"00081198":{"vr":"SQ","Value":[\#(items.joined(separator: ","))]}}"#
    }

    /// The parts of a multipart/related body, split at `boundary` from its Content-Type.
    static func parts(_ request: ScriptedHTTPServer.Request) throws -> [[UInt8]] {
        let contentType = try #require(request.headers["content-type"])
        #expect(contentType.hasPrefix("multipart/related") && contentType.contains("type=\"application/dicom\""))
        let boundary = try #require(contentType.components(separatedBy: "boundary=").last)
        let text = String(decoding: request.body, as: UTF8.self)
        #expect(text.hasSuffix("--\(boundary)--\r\n"))
        return text.components(separatedBy: "--\(boundary)").dropFirst().dropLast().map { part in
            let body = part.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
            #expect(part.contains("Content-Type: application/dicom"))
            return Array(Array(body.utf8).dropLast(2))   // "\r\n" is one Character: cut bytes
        }
    }

    func delivery(_ server: ScriptedHTTPServer, token: String? = "secret-token",
                  authorization: DicomDestination.Authorization = .bearer) throws -> DicomDelivery {
        let tokenFile = token.map { folder.file("token", $0 + "\n").path }
        let sender = StowRSSender(url: server.baseURL.appendingPathComponent("dicom-web"), tokenFile: tokenFile, authorization: authorization)
        let destination = DicomDestination(name: "pacs", transport: .stowRS(url: server.baseURL, tokenFile: tokenFile, authorization: authorization))
        let delivery = DicomDelivery(outbox: try DicomOutbox(directory: folder.url), destinations: [destination], senders: ["pacs": sender]) { entry in
            entry.analysisId == "deleted" ? .gone("the analysis was deleted") : .object(Array("object \(entry.sopInstanceUID)".utf8))
        }
        delivery.initialBackoff = 0.01
        delivery.maxBackoff = 0.01
        delivery.maxAttempts = 2
        return delivery
    }

    func enqueue(_ delivery: DicomDelivery, _ names: [String]) throws {
        try delivery.outbox.enqueue(names.map { DicomOutbox.NewEntry(analysisId: $0 == "deleted" ? "deleted" : "a1", organizationId: "org-a",
                                                                    object: .sr, part: "0", sopInstanceUID: $0) },
                                    destinations: ["pacs"])
    }

    @Test func storedObjectsAreSentInOrderInOneRequestWithTheCredential() throws {
        let server = try ScriptedHTTPServer { _, _ in .json(200, "{}") }
        defer { server.stop() }
        let delivery = try delivery(server)
        try enqueue(delivery, ["u1", "deleted", "u2", "u3"])
        let (rounds, _) = try delivery.runOnce()
        #expect(rounds == [DicomDelivery.Round(destination: "pacs", delivered: 3, gone: 1)])
        let request = try #require(server.requests.first)
        #expect(server.requests.count == 1 && request.method == "POST" && request.path == "/dicom-web/studies")
        #expect(request.headers["authorization"] == "Bearer secret-token" && request.headers["accept"] == "application/dicom+json")
        #expect(try Self.parts(request).map { String(decoding: $0, as: UTF8.self) } == ["object u1", "object u2", "object u3"])
        #expect(try delivery.outbox.entries().map(\.state) == [.delivered, .gone, .delivered, .delivered])
        #expect(try delivery.runOnce().rounds.isEmpty && server.requests.count == 1, "nothing is sent twice")
    }

    @Test func basicCredentialsAreSentAsRFC7617Says() throws {
        let server = try ScriptedHTTPServer { _, _ in .json(200, "{}") }
        defer { server.stop() }
        let delivery = try delivery(server, token: "mediscope:pa ss", authorization: .basic)
        try enqueue(delivery, ["u1"])
        _ = try delivery.runOnce()
        #expect(server.requests.first?.headers["authorization"] == "Basic " + Data("mediscope:pa ss".utf8).base64EncodedString())
    }

    @Test func aServiceThatIsDownKeepsEverythingAndGetsItOnceItIsBack() throws {
        let server = try ScriptedHTTPServer { _, n in n < 2 ? .json(503, "{}") : .json(200, "{}") }
        defer { server.stop() }
        let delivery = try delivery(server)
        try enqueue(delivery, ["u1", "u2"])
        let first = try delivery.runOnce().rounds
        #expect(first.first?.unreachable == "STOW-RS answered 503" && first.first?.delivered == 0)
        var stats = try #require(try delivery.outbox.stats(destinations: ["pacs"]).first)
        #expect(stats.reachable == false && stats.waiting == 2 && stats.parked == 0 && stats.lastError == "STOW-RS answered 503")
        let deadline = Date().addingTimeInterval(10)
        while try delivery.outbox.stats(destinations: ["pacs"]).first?.waiting != 0, Date() < deadline {
            _ = try delivery.runOnce(now: Date().addingTimeInterval(1))
        }
        stats = try #require(try delivery.outbox.stats(destinations: ["pacs"]).first)
        #expect(stats.reachable == true && stats.delivered == 2 && stats.parked == 0 && stats.unreachableAttempts == 2)
        #expect(server.requests.count == 3, "two 503s, then one request with both")
        #expect(try Self.parts(server.requests[2]).count == 2)
    }

    @Test func anObjectTheServiceRefusesIsParkedAfterTheLimitAndTheRestGoOn() throws {
        // 202: u2 refused (0xA900), the others stored; then u2 alone refused again.
        let server = try ScriptedHTTPServer { request, _ in .json(202, Self.failed(["u2"])) }
        defer { server.stop() }
        let delivery = try delivery(server)
        try enqueue(delivery, ["u1", "u2", "u3"])
        let first = try #require(try delivery.runOnce().rounds.first)
        #expect(first.delivered == 1 && first.refused == 1, "u3 waits behind u2: order is kept")
        #expect(try delivery.outbox.entries().map(\.state) == [.delivered, .waiting, .waiting])
        let second = try #require(try delivery.runOnce(now: Date().addingTimeInterval(1)).rounds.first)
        #expect(second.parked == 1 && second.delivered == 1, "the second refusal parks u2; u3 goes")
        let entries = try delivery.outbox.entries()
        #expect(entries.map(\.state) == [.delivered, .parked, .delivered])
        #expect(entries[1].attempts == 2 && entries[1].lastError == "STOW-RS 202: Failure Reason 0xA900")
        #expect(try Self.parts(server.requests[1]).map { String(decoding: $0, as: UTF8.self) } == ["object u2", "object u3"])
    }

    @Test func aRequestTheServiceRefusesWholeRefusesEachObject() throws {
        let server = try ScriptedHTTPServer { _, _ in .json(415, "{}") }
        defer { server.stop() }
        let delivery = try delivery(server)
        delivery.maxAttempts = 1
        try enqueue(delivery, ["u1", "u2"])
        let round = try #require(try delivery.runOnce().rounds.first)
        #expect(round.parked == 2 && round.unreachable == nil)
        #expect(try delivery.outbox.entries().allSatisfy { $0.state == .parked && $0.lastError == "STOW-RS 415" })
    }

    @Test func aMissingCredentialIsTheDestinationsProblemNotTheObjects() throws {
        let server = try ScriptedHTTPServer { _, _ in .json(200, "{}") }
        defer { server.stop() }
        let delivery = try delivery(server)
        try FileManager.default.removeItem(at: folder.appending("token"))
        try enqueue(delivery, ["u1"])
        let round = try #require(try delivery.runOnce().rounds.first)
        #expect(round.unreachable?.contains("cannot be read") == true && server.requests.isEmpty)
        #expect(try delivery.outbox.entries().first?.attempts == 0)
    }
}
