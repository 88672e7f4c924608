import Foundation
import MediscopeDicomNet
import MediscopeDicomOut
import Testing
import TestSupport

/// The C-STORE sender of results (`CStoreSender`, MediscopeDicomOut) against the same real peers: what each
/// DIMSE status means for the queue (stored, refused, the PACS out of resources: later), an object DCMTK
/// cannot read refused alone while the rest are sent, and an unreachable PACS.
@Suite(.serialized) struct CStoreSenderTests {
    func sender(port: UInt16, calledAE: String) -> CStoreSender {
        CStoreSender(host: "127.0.0.1", port: port, callingAETitle: "MEDISCOPE", calledAETitle: calledAE, timeout: 10)
    }

    func object(_ bytes: [UInt8], _ uid: String) -> DicomObject { DicomObject(bytes: bytes, sopInstanceUID: uid) }

    @Test func statusesBecomeStoredRefusedOrLater() throws {
        let objects = Objects()
        let statuses: [UInt16] = [0x0000, 0xB007, 0xC000, 0x0000, 0xA700, 0x0000]
        let instances = statuses.indices.map { "1.2.826.0.1.3680043.8.498.71\($0)" }
        let listener = try Listener { instance in statuses[instances.firstIndex(of: instance.sopInstanceUID) ?? 0] }
        let sent = try sender(port: listener.port, calledAE: Listener.aeTitle)
            .send(try instances.map { object(try objects.sc(instance: $0), $0) })
        #expect(sent.count == 6 && Array(sent.prefix(2)) == [.stored, .stored] && sent[3] == .stored)
        guard case .refused(let reason) = sent[2] else { Issue.record("0xC000: \(sent[2])"); return }
        #expect(reason.contains("C000"))
        guard case .later = sent[4], case .later = sent[5] else {
            Issue.record("out of resources: the PACS's state, and what follows waits: \(sent)")
            return
        }
    }

    @Test func anUnreadableObjectIsRefusedAloneAndTheRestAreSent() throws {
        let objects = Objects()
        let peer = try Storescp()
        let sr = try objects.sr(instance: "1.2.826.0.1.3680043.8.498.721"), sc = try objects.sc(instance: "1.2.826.0.1.3680043.8.498.722")
        let sent = try sender(port: peer.port, calledAE: "PACS")
            .send([object(sr, "sr"), object(Array(sr.prefix(sr.count - 7)), "cut"), object(sc, "sc")])
        #expect(sent.count == 3 && sent[0] == .stored && sent[2] == .stored, "\(sent)")
        guard case .refused(let reason) = sent[1] else { Issue.record("\(sent[1])"); return }
        #expect(reason.contains("object 2 of 3"))
        #expect(try peer.received(count: 2) != nil && peer.files.count == 2)
    }

    @Test func anUnreachablePACSIsTheDestinationsFailure() throws {
        let port = try StorageSCUTests.freePort()
        #expect(throws: DestinationUnreachable.self) {
            try sender(port: port, calledAE: "PACS").send([object(try Objects().sr(instance: "1.2.826.0.1.3680043.8.498.731"), "sr")])
        }
    }
}
