import Foundation
import FirestoreTestKit
import MediscopeAuth
import MediscopeEncoding
import MediscopeFirestore
import MediscopeFirestoreStore
@testable import MediscopeOutbox
import MediscopeSQLite
import Testing
import TestSupport
@testable import MediscopeStore

/// One host's outbox in front of a Firestore (the emulator, or the fault proxy before it), plus a
/// reader that sees only Firestore (another host).
struct OutboxHost {
    let folder = TemporaryFolder()
    let store: OutboxAnalysisStore
    let delivery: OutboxDelivery
    let firestore: FirestoreAnalysisStore
    let project: String

    /// `via`: host:port the host reaches Firestore at; `direct`: the emulator itself, for checking.
    init(project: String, via: String, direct emulator: FirestoreEmulator) throws {
        let (config, _) = FirestoreConfiguration.fromEnvironment(projectId: project, environment: ["FIRESTORE_EMULATOR_HOST": via])
        var fast = config
        fast.maxAttempts = 1
        // Short enough for a delay fault to be an outage, long enough that an emulator's GC pause on a
        // loaded machine is not one (reads go through this client too).
        fast.callTimeout = 8
        fast.connectTimeout = 1
        let client = FirestoreClient(configuration: fast, credentials: EmulatorCredentials())
        let remote = FirestoreAnalysisStore(client: client)
        store = OutboxAnalysisStore(outbox: try Outbox(directory: folder.url), remote: remote)
        delivery = OutboxDelivery(outbox: store.outbox, analyses: remote, audit: FirestoreAuditLogStore(client: client))
        delivery.initialBackoff = 0.05
        delivery.maxBackoff = 0.2
        delivery.probeInterval = 0
        firestore = FirestoreAnalysisStore(client: emulator.client(projectId: project))
        self.project = project
    }

    /// Every record of `org` as Firestore alone lists it, newest first, paging by `pageSize`.
    func firestoreIDs(org: String = "org-a", pageSize: Int = 100) throws -> [String] {
        try Self.allIDs(firestore, org: org, pageSize: pageSize)
    }

    static func allIDs(_ store: any AnalysisStore, org: String = "org-a", patientId: String? = nil, pageSize: Int) throws -> [String] {
        var ids: [String] = []
        var cursor: String?
        repeat {
            let page = try store.list(AnalysisQuery(organizationId: org, patientId: patientId, limit: pageSize, cursor: cursor))
            ids += page.items.map(\.id)
            cursor = page.nextCursor
        } while cursor != nil
        return ids
    }
}

@Suite(.firestoreEmulator) struct OutboxTests {
    func project() -> String { "outbox-\(UUID().uuidString.prefix(8).lowercased())" }

    /// Before delivery a record is readable on its host only; reads merge waiting and delivered records
    /// in the contract's order, and a waiting delete hides a delivered record at once.
    @Test func waitingWritesAreLaidOverFirestore() throws {
        let emulator = try SharedEmulator.get()
        let host = try OutboxHost(project: project(), via: emulator.host, direct: emulator)
        var created: [AnalysisRecord] = []
        for i in 0..<3 { created.append(try host.store.create(makeAnalysis(patientId: i == 1 ? "P-ODD" : "P-EVEN", imageSize: 64))) }
        #expect(try host.delivery.drain(timeout: 30))
        for i in 3..<7 { created.append(try host.store.create(makeAnalysis(patientId: i % 2 == 1 ? "P-ODD" : "P-EVEN", imageSize: 64))) }
        let newestFirst = created.reversed().map(\.id)

        #expect(try host.firestoreIDs() == Array(newestFirst.suffix(3)), "another host sees the delivered ones only")
        #expect(try OutboxHost.allIDs(host.store, pageSize: 2) == newestFirst, "pages of 2 merge both, in order")
        #expect(try OutboxHost.allIDs(host.store, pageSize: 3) == newestFirst)
        #expect(try OutboxHost.allIDs(host.store, patientId: "P-ODD", pageSize: 1) == created.filter { $0.patient.patientId == "P-ODD" }.reversed().map(\.id))
        #expect(try host.store.get(id: created[6].id, organizationId: "org-a") == created[6])
        #expect(try host.store.get(id: created[6].id, organizationId: "org-b") == nil, "organisations stay apart")
        #expect(try host.store.imageBytes(key: created[6].scan.key) != nil, "a waiting record's images are served")
        #expect(try host.firestore.get(id: created[6].id, organizationId: "org-a") == nil)

        // Deletes: one waiting record, one delivered one; both gone at once on this host.
        #expect(try host.store.delete(id: created[6].id, organizationId: "org-a"))
        #expect(try host.store.delete(id: created[0].id, organizationId: "org-a"))
        #expect(try host.store.delete(id: created[0].id, organizationId: "org-a") == false)
        #expect(try host.store.outbox.enqueueDelete(id: created[0].id, organizationId: "org-a") == false,
                "a racing second delete that passed the read finds the first one waiting")
        let remaining = newestFirst.filter { $0 != created[6].id && $0 != created[0].id }
        #expect(try OutboxHost.allIDs(host.store, pageSize: 2) == remaining)
        #expect(try host.firestore.get(id: created[0].id, organizationId: "org-a") != nil, "not delivered yet")

        #expect(try host.delivery.drain(timeout: 30))
        #expect(try host.firestoreIDs(pageSize: 2) == remaining, "Firestore ends with exactly what this host showed")
        #expect(try OutboxHost.allIDs(host.store, pageSize: 2) == remaining)
        for record in created[1...5] { #expect(try host.firestore.get(id: record.id, organizationId: "org-a") == record) }
        let stats = try host.store.outbox.stats()
        #expect(stats.depth == 0 && stats.parked == 0 && stats.deliveries == 9 && stats.remoteReachable == true)
        #expect(try host.store.outbox.imageBytes(key: created[5].scan.key) == nil, "delivered images leave the outbox")
    }

    /// Firestore refusing, slow, overloaded or losing answers: uploads still succeed, the entries wait,
    /// and once it heals every record is in Firestore exactly once.
    @Test(arguments: [FirestoreFaultProxy.Mode.refuse, .status(503), .status(429), .delay(12), .cutAfterForward])
    func anOutageDelaysDeliveryAndLosesNothing(_ fault: FirestoreFaultProxy.Mode) throws {
        let emulator = try SharedEmulator.get()
        let proxy = try FirestoreFaultProxy(emulator: emulator)
        let host = try OutboxHost(project: project(), via: proxy.host, direct: emulator)
        proxy.mode = fault
        var ids: [String] = []
        for i in 0..<5 { ids.append(try host.store.create(makeAnalysis(patientId: "P-\(i)", imageSize: 64)).id) }
        try host.store.outbox.enqueueAudit(Self.auditEntry(id: 42))
        #expect(try host.store.outbox.stats().depth == 6)

        _ = try host.delivery.runOnce(deadline: Date().addingTimeInterval(4))
        let during = try host.store.outbox.stats()
        if fault == .cutAfterForward {
            #expect(during.retries >= 1, "a lost answer is retried")
        } else {
            #expect(during.depth == 6 && during.retries >= 1 && during.deliveries == 0, "\(during)")
            #expect(during.remoteReachable == false)
        }
        for id in ids { #expect(try host.store.get(id: id, organizationId: "org-a")?.id == id) }

        proxy.mode = .pass
        #expect(try host.delivery.drain(timeout: 60))
        #expect(try host.firestoreIDs() == ids.reversed(), "every record once, in order")
        let stats = try host.store.outbox.stats()
        #expect(stats.depth == 0 && stats.parked == 0 && stats.deliveries == 6 && stats.remoteReachable == true)
        let audit = try emulator.client(projectId: host.project)
            .runQuery(FirestoreQuery(collectionId: "audit"))
        #expect(audit.map(\.id) == [String(repeating: "0", count: 17) + "42"], "the audit entry once")
    }

    /// An entry Firestore refuses for good is parked, counted and kept; the queue moves on; an operator
    /// can requeue it.
    @Test func aRefusedEntryIsParkedAndTheQueueMovesOn() throws {
        let emulator = try SharedEmulator.get()
        let proxy = try FirestoreFaultProxy(emulator: emulator)
        let host = try OutboxHost(project: project(), via: proxy.host, direct: emulator)
        let first = try host.store.create(makeAnalysis(patientId: "P-1", imageSize: 64))
        proxy.mode = .status(400)
        _ = try host.delivery.runOnce(deadline: Date().addingTimeInterval(2))
        proxy.mode = .pass
        let second = try host.store.create(makeAnalysis(patientId: "P-2", imageSize: 64))
        #expect(try host.delivery.drain(timeout: 30))

        let stats = try host.store.outbox.stats()
        #expect(stats.parked == 1 && stats.parkedTotal == 1 && stats.depth == 0 && stats.deliveries == 1, "\(stats)")
        let parked = try host.store.outbox.parkedEntries()
        #expect(parked.map(\.key) == [first.id])
        #expect(parked.first?.lastError?.contains("INVALID_ARGUMENT") == true)
        #expect(try host.firestoreIDs() == [second.id])
        #expect(try host.store.get(id: first.id, organizationId: "org-a") == first, "a parked record is kept and shown here")

        #expect(try host.store.outbox.requeueParked() == 1)
        #expect(try host.delivery.drain(timeout: 30))
        #expect(try host.firestoreIDs() == [second.id, first.id])
        #expect(try host.store.outbox.stats().parked == 0)
    }

    /// ALREADY_EXISTS is decided by what is stored: this record (an earlier attempt landed, its answer
    /// lost, even across a requeue) is delivered; another record under the id parks the entry.
    @Test func alreadyExistsIsDecidedByTheStoredRecord() throws {
        let emulator = try SharedEmulator.get()
        let host = try OutboxHost(project: project(), via: emulator.host, direct: emulator)
        let mine = makeAnalysis(patientId: "P-MINE", imageSize: 64).newRecord()
        // Our own record landed already (as when an answer was cut): the entry is delivered, not parked.
        // (Images are beside the point here: the record alone decides.)
        try host.firestore.insert(mine, images: [])
        try host.store.outbox.enqueueCreate(mine, images: [])
        #expect(try host.delivery.drain(timeout: 30))
        #expect(try host.store.outbox.stats().parked == 0 && host.store.outbox.stats().deliveries == 1)

        // Another record under the same id: parked, with Firestore's reason.
        var other = mine
        other.patient.patientId = "P-OTHER"
        try host.store.outbox.enqueueCreate(other, images: [])
        #expect(try host.delivery.drain(timeout: 30))
        let parked = try host.store.outbox.parkedEntries()
        #expect(parked.map(\.key) == [mine.id] && parked.first?.lastError?.contains("another record") == true)
        #expect(try host.firestore.get(id: mine.id, organizationId: mine.organizationId) == mine, "the stored record is untouched")
    }

    /// Two hosts that both took one request under one Idempotency-Key (a retry sent to the other host
    /// before the first delivered) made records under one derived id: the first delivered stands and the
    /// other host's copy, the same request, counts as delivered. A different request under the key parks.
    @Test func oneKeysCopiesFromTwoHostsAreDeliveredOnce() throws {
        let emulator = try SharedEmulator.get()
        let project = project()
        let a = try OutboxHost(project: project, via: emulator.host, direct: emulator)
        let b = try OutboxHost(project: project, via: emulator.host, direct: emulator)
        let c = try OutboxHost(project: project, via: emulator.host, direct: emulator)
        let keyed = IdempotentCreate(id: SortableID.derived(from: Array(repeating: 0x3C, count: 16)),
                                     fingerprint: String(repeating: "cd", count: 32))
        var new = makeAnalysis(patientId: "P-KEY", imageSize: 64)
        new.idempotency = keyed
        // Each host takes its copy before any is delivered (Firestore cannot tell them it is taken yet).
        let onA = try a.store.create(new)
        let onB = try b.store.create(new)
        #expect(onA.id == keyed.id && onB.id == keyed.id && onA != onB)   // made apart: other times
        var other = makeAnalysis(patientId: "P-KEY-OTHER", imageSize: 64)
        other.idempotency = IdempotentCreate(id: keyed.id, fingerprint: String(repeating: "ef", count: 32))
        _ = try c.store.create(other)

        #expect(try a.delivery.drain(timeout: 30) && b.delivery.drain(timeout: 30) && c.delivery.drain(timeout: 30))
        #expect(try a.store.outbox.stats().parked == 0 && b.store.outbox.stats().parked == 0)
        #expect(try a.firestoreIDs() == [keyed.id])
        #expect(try a.firestore.get(id: keyed.id, organizationId: "org-a") == onA, "the first delivered stands")
        #expect(try b.store.get(id: keyed.id, organizationId: "org-a") == onA, "b reads the shared record now")
        // Another request under the same key: parked (kept on its host), never overwriting.
        let parked = try c.store.outbox.parkedEntries()
        #expect(parked.map(\.key) == [keyed.id] && parked.first?.lastError?.contains("Idempotency-Key") == true)
        // Once delivered, a host asked to make the id again is told it is taken.
        #expect { try b.store.create(new) } throws: { ($0 as? StoreError)?.kind == .conflict }
    }

    @Test func firestoreStatusesDecideRetryOrPark() {
        for status in [FirestoreError.Status.unavailable, .deadlineExceeded, .resourceExhausted, .aborted, .internalError, .unauthenticated] {
            if case .retry = OutboxDelivery.outcome(FirestoreError(status, httpStatus: 503, "")) {} else { Issue.record("\(status) must retry") }
        }
        for status in [FirestoreError.Status.invalidArgument, .failedPrecondition, .permissionDenied, .notFound, .alreadyExists] {
            if case .park(let reason) = OutboxDelivery.outcome(FirestoreError(status, httpStatus: 400, "why")) {
                #expect(reason.contains(status.rawValue) && reason.contains("why"), "the reason keeps Firestore's status and message")
            } else {
                Issue.record("\(status) must park")
            }
        }
    }

    static func auditEntry(id: Int64) -> AuditEntry {
        var entry = AuditEntry(actorUserId: "U1", actorUsername: nil, organizationId: "org-a", action: "analysis.create",
                               recordId: nil, address: "127.0.0.1", outcome: "success")
        entry.id = id
        return entry
    }
}
