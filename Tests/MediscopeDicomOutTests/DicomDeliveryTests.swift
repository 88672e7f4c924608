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

    /// A Store Instances Response naming every part of `request` stored (a test object's bytes are
    /// "object <uid>").
    static func stored(_ request: ScriptedHTTPServer.Request, status: Int = 200, except failed: [String] = []) -> ScriptedHTTPServer.Response {
        let uids = ((try? parts(request)) ?? []).map { String(decoding: $0, as: UTF8.self).replacingOccurrences(of: "object ", with: "") }
        let items = uids.filter { !failed.contains($0) }.map { #"{"00081150":{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.88.33"]},"00081155":{"vr":"UI","Value":["\#($0)"]}}"# }
        var body = #"{"00081199":{"vr":"SQ","Value":[\#(items.joined(separator: ","))]}"#
        if !failed.isEmpty { body = String(Self.failed(failed).dropLast()) + "," + body.dropFirst() }
        body += "}"
        return .json(status, body)
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
        let delivery = DicomDelivery(outbox: try DicomOutbox(directory: folder.url), destinations: [destination], senders: ["pacs": sender]) { entry throws(StoreError) in
            switch entry.analysisId {
            case "deleted": return .gone("the analysis was deleted")
            case "unreadable": throw StoreError(.io, "a row this build cannot read")
            case "store-down": throw StoreError(.unavailable, "the store is out of reach")
            default: return .object(Array("object \(entry.sopInstanceUID)".utf8))
            }
        }
        delivery.initialBackoff = 0.01
        delivery.maxBackoff = 0.01
        delivery.maxAttempts = 2
        return delivery
    }

    /// Queues one SR per name (its SOP Instance UID), each of an analysis of its own unless `analysis` names
    /// one; "deleted", "unreadable" and "store-down" are analyses the write closure cannot write.
    func enqueue(_ delivery: DicomDelivery, _ names: [String], analysis: String? = nil) throws {
        try delivery.outbox.enqueue(names.map { name in
            let special = ["deleted", "unreadable", "store-down"].contains(name)
            return DicomOutbox.NewEntry(analysisId: special ? name : analysis ?? "a-\(name)", organizationId: "org-a", object: .sr,
                                        part: String(names.firstIndex(of: name) ?? 0), sopInstanceUID: name)
        }, destinations: ["pacs"])
    }

    func uids(_ request: ScriptedHTTPServer.Request) throws -> [String] {
        try Self.parts(request).map { String(decoding: $0, as: UTF8.self).replacingOccurrences(of: "object ", with: "") }
    }

    @Test func storedObjectsAreSentInOrderInOneRequestWithTheCredential() throws {
        let server = try ScriptedHTTPServer { request, _ in Self.stored(request) }
        defer { server.stop() }
        let delivery = try delivery(server)
        try enqueue(delivery, ["u1", "deleted", "u2", "u3"])
        let (rounds, _) = try delivery.runOnce()
        #expect(rounds == [DicomDelivery.Round(destination: "pacs", delivered: 3, gone: 1, contacted: true)])
        let request = try #require(server.requests.first)
        #expect(server.requests.count == 1 && request.method == "POST" && request.path == "/dicom-web/studies")
        #expect(request.headers["authorization"] == "Bearer secret-token" && request.headers["accept"] == "application/dicom+json")
        #expect(try Self.parts(request).map { String(decoding: $0, as: UTF8.self) } == ["object u1", "object u2", "object u3"])
        #expect(try delivery.outbox.entries().map(\.state) == [.delivered, .gone, .delivered, .delivered])
        #expect(try delivery.runOnce().rounds.isEmpty && server.requests.count == 1, "nothing is sent twice")
    }

    @Test func basicCredentialsAreSentAsRFC7617Says() throws {
        let server = try ScriptedHTTPServer { request, _ in Self.stored(request) }
        defer { server.stop() }
        let delivery = try delivery(server, token: "mediscope:pa ss", authorization: .basic)
        try enqueue(delivery, ["u1"])
        _ = try delivery.runOnce()
        #expect(server.requests.first?.headers["authorization"] == "Basic " + Data("mediscope:pa ss".utf8).base64EncodedString())
    }

    @Test func aServiceThatIsDownKeepsEverythingAndGetsItOnceItIsBack() throws {
        let server = try ScriptedHTTPServer { request, n in n < 2 ? .json(503, "{}") : Self.stored(request) }
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
        let server = try ScriptedHTTPServer { request, _ in Self.stored(request, status: 202, except: ["u2"]) }
        defer { server.stop() }
        let delivery = try delivery(server)
        try enqueue(delivery, ["u1", "u2", "u3"])
        let first = try #require(try delivery.runOnce().rounds.first)
        #expect(first.delivered == 1 && first.refused == 1, "u3 waits behind u2: order is kept")
        #expect(try delivery.outbox.entries().map(\.state) == [.delivered, .waiting, .waiting])
        let second = try #require(try delivery.runOnce(now: Date().addingTimeInterval(1)).rounds.first)
        #expect(second.parked.map(\.sopInstanceUID) == ["u2"] && second.delivered == 1, "the second refusal parks u2; u3 goes")
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
        #expect(round.parked.count == 2 && round.unreachable == nil)
        #expect(try delivery.outbox.entries().allSatisfy { $0.state == .parked && $0.lastError == "STOW-RS 415" })
    }

    @Test func aMissingCredentialIsTheDestinationsProblemNotTheObjects() throws {
        let server = try ScriptedHTTPServer { request, _ in Self.stored(request) }
        defer { server.stop() }
        let delivery = try delivery(server)
        try FileManager.default.removeItem(at: folder.appending("token"))
        try enqueue(delivery, ["u1"])
        let round = try #require(try delivery.runOnce().rounds.first)
        #expect(round.unreachable?.contains("cannot be read") == true && server.requests.isEmpty)
        #expect(try delivery.outbox.entries().first?.attempts == 0)
    }

    @Test func aDestinationThatKeepsFailingAfterTheAssociationBacksOffLongerEachTime() throws {
        // Every object answered "out of resources" (0xA700): the PACS's state, not the objects'.
        let server = try ScriptedHTTPServer { request, _ in
            .json(202, Self.failed(((try? Self.parts(request)) ?? []).map { String(decoding: $0, as: UTF8.self).replacingOccurrences(of: "object ", with: "") })
                .replacingOccurrences(of: "43264", with: "42752"))
        }
        defer { server.stop() }
        let delivery = try delivery(server)
        delivery.initialBackoff = 1
        delivery.maxBackoff = 100
        try enqueue(delivery, ["u1"])
        let t0 = Date()
        var waits: [Double] = []
        for round in 0..<4 {
            let now = t0.addingTimeInterval(Double(round) * 200)
            let result = try #require(try delivery.runOnce(now: now).rounds.first)
            #expect(result.unreachable?.contains("0xA700") == true && result.contacted)
            let retryAt = try #require(try delivery.outbox.stats(destinations: ["pacs"]).first?.retryAt)
            waits.append(retryAt.timeIntervalSince(now))
        }
        #expect(waits[0] <= 1.01 && waits[1] >= 1.49 && waits[2] >= 2.99 && waits[3] >= 5.99, "doubling: \(waits)")
        let entry = try #require(try delivery.outbox.entries().first)
        #expect(entry.state == .waiting && entry.attempts == 0, "the PACS's state is not the object's refusal")
    }

    @Test func aPageThatIsNoStoreInstancesResponseStoresNothing() throws {
        let server = try ScriptedHTTPServer { _, _ in
            ScriptedHTTPServer.Response(status: 200, headers: [("Content-Type", "text/html")], body: Array("<html>Sign in</html>".utf8))
        }
        defer { server.stop() }
        let delivery = try delivery(server)
        try enqueue(delivery, ["u1"])
        let round = try #require(try delivery.runOnce().rounds.first)
        #expect(round.delivered == 0 && round.unreachable?.contains("without a Store Instances Response") == true)
        #expect(try delivery.outbox.entries().first?.state == .waiting)
    }

    @Test func anObjectTheResponseDoesNotNameIsNotCountedStored() throws {
        // The response names u1 only.
        let server = try ScriptedHTTPServer { _, _ in
            .json(200, #"{"00081199":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["u1"]}}]}}"#)
        }
        defer { server.stop() }
        let delivery = try delivery(server)
        try enqueue(delivery, ["u1", "u2"])
        let round = try #require(try delivery.runOnce().rounds.first)
        #expect(round.delivered == 1 && round.refused == 1)
        #expect(try delivery.outbox.entries().map(\.state) == [.delivered, .waiting])
        #expect(try delivery.outbox.entries()[1].lastError?.contains("neither stored nor failed") == true)
    }

    @Test func aRequestTooLargeForTheDestinationIsSplitUntilEachFits() throws {
        // A proxy in front of the PACS takes at most two parts per request.
        let server = try ScriptedHTTPServer { request, _ in
            ((try? Self.parts(request).count) ?? 0) > 2 ? .json(413, "{}") : Self.stored(request)
        }
        defer { server.stop() }
        let delivery = try delivery(server)
        try enqueue(delivery, ["u1", "u2", "u3", "u4", "u5"])
        let round = try #require(try delivery.runOnce().rounds.first)
        #expect(round.delivered == 5 && round.parked.isEmpty)
        let accepted = try server.requests.filter { try Self.parts($0).count <= 2 }.flatMap(uids)
        #expect(accepted == ["u1", "u2", "u3", "u4", "u5"], "in order, each once")
    }

    @Test func twoSRsOfOneAnalysisNeverShareAnExchange() throws {
        let server = try ScriptedHTTPServer { request, _ in Self.stored(request) }
        defer { server.stop() }
        let delivery = try delivery(server)
        try enqueue(delivery, ["first-sr", "verified-sr", "amended-sr"], analysis: "a1")
        for _ in 0..<3 { _ = try delivery.runOnce() }
        #expect(try server.requests.map(uids) == [["first-sr"], ["verified-sr"], ["amended-sr"]])
    }

    @Test func aRecordThatCannotBeReadIsParkedAndTheRestGoOn() throws {
        let server = try ScriptedHTTPServer { request, _ in Self.stored(request) }
        defer { server.stop() }
        let delivery = try delivery(server)
        try enqueue(delivery, ["u1", "unreadable", "u2"])
        let round = try #require(try delivery.runOnce().rounds.first)
        #expect(round.delivered == 2 && round.parked.map(\.sopInstanceUID) == ["unreadable"])
        #expect(try delivery.outbox.entries()[1].lastError == "the record cannot be read (io)")
        // A store out of reach ends the round with nothing settled: the entry waits, the destination too.
        try enqueue(delivery, ["store-down", "u3"])
        #expect(throws: StoreError.self) { try delivery.runOnce() }
        #expect(try delivery.outbox.entries(state: .waiting).map(\.sopInstanceUID) == ["store-down", "u3"])
    }
}
