import Foundation
import FirestoreTestKit
import MediscopeEncoding
import MediscopeFirestore
import MediscopeFirestoreStore
import MediscopeOutbox
import MediscopeSQLite
import Testing
import TestSupport
@testable import MediscopeStore

/// A backend the `AnalysisStore` contract runs against. The suite below is written against the protocol
/// only; a new backend (Firestore) joins by adding itself to `all` and must pass it unchanged.
struct AnalysisBackend: Sendable, CustomTestStringConvertible {
    let name: String
    /// A fresh, empty store, and a second, independent instance over the same data (another worker).
    let make: @Sendable () throws -> (store: any AnalysisStore, second: () throws -> any AnalysisStore, keepAlive: AnyObject)
    var testDescription: String { name }

    static let all: [AnalysisBackend] = [.sqlite, .firestore, .firestoreOutbox]

    static let sqlite = AnalysisBackend(name: "SQLite") {
        let folder = TemporaryFolder()
        return (try SQLiteAnalysisStore(directory: folder.url), { try SQLiteAnalysisStore(directory: folder.url) }, folder)
    }

    /// The real Firestore emulator the suite runs beside; a project of its own per store, so stores
    /// never see each other's data.
    static let firestore = AnalysisBackend(name: "Firestore (emulator)") {
        let emulator = try SharedEmulator.get()
        let project = "contract-\(UUID().uuidString.prefix(8).lowercased())"
        return (FirestoreAnalysisStore(client: emulator.client(projectId: project)),
                { FirestoreAnalysisStore(client: emulator.client(projectId: project)) }, emulator)
    }
}

extension AnalysisBackend {
    /// Firestore through this host's outbox, delivered after every write (the delivery process keeping
    /// up): the same contract must hold for what reaches Firestore. The second instance is another host,
    /// reading Firestore with an outbox of its own.
    static let firestoreOutbox = AnalysisBackend(name: "Firestore through the outbox") {
        let emulator = try SharedEmulator.get()
        let project = "outbox-\(UUID().uuidString.prefix(8).lowercased())"
        let folder = TemporaryFolder(), otherHost = TemporaryFolder()
        let store = try DeliveringStore(folder: folder.url, client: emulator.client(projectId: project))
        return (store, { try DeliveringStore(folder: otherHost.url, client: emulator.client(projectId: project)) }, [folder, otherHost, emulator] as NSArray)
    }
}

/// An outbox store whose writes are delivered before they return.
final class DeliveringStore: AnalysisStore, @unchecked Sendable {
    let store: OutboxAnalysisStore
    let delivery: OutboxDelivery

    init(folder: URL, client: FirestoreClient) throws {
        let remote = FirestoreAnalysisStore(client: client)
        store = OutboxAnalysisStore(outbox: try Outbox(directory: folder), remote: remote)
        delivery = OutboxDelivery(outbox: store.outbox, analyses: remote, audit: FirestoreAuditLogStore(client: client))
    }

    func deliver() throws(StoreError) {
        guard try delivery.drain(timeout: 30) else { throw StoreError(.unavailable, "the outbox did not drain") }
    }

    func create(_ analysis: NewAnalysis) throws(StoreError) -> AnalysisRecord {
        let record = try store.create(analysis)
        try deliver()
        return record
    }
    func get(id: String, organizationId: String) throws(StoreError) -> AnalysisRecord? { try store.get(id: id, organizationId: organizationId) }
    func list(_ query: AnalysisQuery) throws(StoreError) -> AnalysisPage { try store.list(query) }
    func delete(id: String, organizationId: String) throws(StoreError) -> Bool {
        let deleted = try store.delete(id: id, organizationId: organizationId)
        try deliver()
        return deleted
    }
    func owner(id: String) throws(StoreError) -> String? { try store.owner(id: id) }
    func imagePath(key: String) -> String? { store.imagePath(key: key) }
    func imageBytes(key: String) throws(StoreError) -> [UInt8]? { try store.imageBytes(key: key) }
    func keepDrawn(_ ref: ImageRef, bytes: [UInt8]) throws(StoreError) { try store.keepDrawn(ref, bytes: bytes) }
    func checkReady() throws(StoreError) { try store.checkReady() }
}

/// The contract documented on `AnalysisStore`, for every backend in `AnalysisBackend.all`.
@Suite(.firestoreEmulator) struct AnalysisStoreContractTests {
    @Test(arguments: AnalysisBackend.all)
    func createReturnsWhatGetAndAnotherInstanceRead(_ backend: AnalysisBackend) throws {
        let (store, second, keep) = try backend.make()
        defer { withExtendedLifetime(keep) {} }
        try store.checkReady()
        var new = makeAnalysis(patientId: "Müller-7")
        new.source = ScanSource(format: "jpeg", exifOrientation: 6, orientationApplied: "rotated 90° clockwise")
        let created = try store.create(new)
        #expect(created.id.count == 26 && created.organizationId == "org-a" && created.patient == new.patient)
        #expect(created.results == new.results && created.scan == new.scan && created.source == new.source)
        #expect(abs(created.createdAt.timeIntervalSinceNow) < 60)
        #expect(try store.get(id: created.id, organizationId: "org-a") == created)
        #expect(try second().get(id: created.id, organizationId: "org-a") == created, "durable and shared")
        for blob in new.images { #expect(try store.imageBytes(key: blob.ref.key) == blob.bytes) }
        #expect(try store.imageBytes(key: String(repeating: "0", count: 64)) == nil)
        #expect(try store.imageBytes(key: "../../etc/passwd") == nil)
    }

    /// A create under an Idempotency-Key takes the id given and keeps the fingerprint; a second create
    /// under that id is a conflict and stores nothing.
    @Test(arguments: AnalysisBackend.all)
    func anIdempotentCreateTakesItsIdOnce(_ backend: AnalysisBackend) throws {
        let (store, second, keep) = try backend.make()
        defer { withExtendedLifetime(keep) {} }
        let keyed = IdempotentCreate(id: SortableID.derived(from: Array(repeating: 0xA5, count: 16)),
                                     fingerprint: String(repeating: "ab", count: 32))
        var new = makeAnalysis(patientId: "P-KEYED")
        new.idempotency = keyed
        let created = try store.create(new)
        #expect(created.id == keyed.id && created.idempotencyFingerprint == keyed.fingerprint)
        #expect(try second().get(id: keyed.id, organizationId: "org-a") == created)
        var again = makeAnalysis(patientId: "P-KEYED-AGAIN")
        again.idempotency = keyed
        #expect { try store.create(again) } throws: { ($0 as? StoreError)?.kind == .conflict }
        #expect(try store.get(id: keyed.id, organizationId: "org-a") == created)
        #expect(try store.list(AnalysisQuery(organizationId: "org-a", patientId: "P-KEYED-AGAIN")).items.isEmpty)
        // A record made without a key has none.
        #expect(try store.create(makeAnalysis(patientId: "P-PLAIN")).idempotencyFingerprint == nil)
        var bad = makeAnalysis(patientId: "P-BAD")
        bad.idempotency = IdempotentCreate(id: "not an id", fingerprint: keyed.fingerprint)
        #expect { try store.create(bad) } throws: { ($0 as? StoreError)?.kind == .invalidRecord }
    }

    /// A DICOM analysis keeps the window it was rendered with and its study identifiers (JSON in the record).
    @Test(arguments: AnalysisBackend.all)
    func dicomSourceRoundTrips(_ backend: AnalysisBackend) throws {
        let (store, second, keep) = try backend.make()
        defer { withExtendedLifetime(keep) {} }
        var new = makeAnalysis(patientId: "DCM-1")
        new.source = ScanSource(
            format: "dicom",
            dicom: DicomWindow(frame: 2, numberOfFrames: 3, photometricInterpretation: "MONOCHROME1", modalityLUT: "rescale",
                               rescaleSlope: 0.5, rescaleIntercept: -1000, voi: "window", windowCenter: 40, windowWidth: 400,
                               voiLUTFunction: "LINEAR", transferSyntaxUID: "1.2.840.10008.1.2.4.70"),
            study: DicomStudy(studyInstanceUID: "1.2.3", seriesInstanceUID: "1.2.3.4", sopInstanceUID: "1.2.3.4.5",
                              studyDate: "20240131", seriesDescription: "T2 axial"))
        let created = try store.create(new)
        #expect(created.source == new.source)
        #expect(try second().get(id: created.id, organizationId: "org-a")?.source == new.source)
    }

    @Test(arguments: AnalysisBackend.all)
    func organisationsSeeOnlyTheirOwn(_ backend: AnalysisBackend) throws {
        let (store, _, keep) = try backend.make()
        defer { withExtendedLifetime(keep) {} }
        let mine = try store.create(makeAnalysis(org: "org-a"))
        #expect(try store.get(id: mine.id, organizationId: "org-b") == nil)
        #expect(try store.list(AnalysisQuery(organizationId: "org-b")).items.isEmpty)
        #expect(try store.delete(id: mine.id, organizationId: "org-b") == false)
        #expect(try store.get(id: mine.id, organizationId: "org-a") != nil)
    }

    /// `owner` names a record's organisation to anyone (for filing a refused attempt in the owner's audit
    /// trail), and nothing for a record that is not there (never stored, deleted, not an id).
    @Test(arguments: AnalysisBackend.all)
    func ownerNamesTheRecordsOrganisationOnly(_ backend: AnalysisBackend) throws {
        let (store, second, keep) = try backend.make()
        defer { withExtendedLifetime(keep) {} }
        let mine = try store.create(makeAnalysis(org: "org-a"))
        #expect(try store.owner(id: mine.id) == "org-a")
        #expect(try second().owner(id: mine.id) == "org-a", "another worker or host")
        #expect(try store.owner(id: "01J00000000000000000000099") == nil)
        #expect(try store.owner(id: "../../etc/passwd") == nil)
        #expect(try store.delete(id: mine.id, organizationId: "org-a"))
        #expect(try store.owner(id: mine.id) == nil)
    }

    @Test(arguments: AnalysisBackend.all)
    func listPagesNewestFirstFilteredByExactPatient(_ backend: AnalysisBackend) throws {
        let (store, _, keep) = try backend.make()
        defer { withExtendedLifetime(keep) {} }
        var ids: [String] = []
        for i in 0..<7 { ids.append(try store.create(makeAnalysis(patientId: i % 2 == 0 ? "P-EVEN" : "P-ODD", imageSize: 64)).id) }
        var seen: [String] = []
        var cursor: String?
        repeat {
            let page = try store.list(AnalysisQuery(organizationId: "org-a", limit: 3, cursor: cursor))
            #expect(page.items.count <= 3)
            seen += page.items.map(\.id)
            cursor = page.nextCursor
        } while cursor != nil
        #expect(seen == ids.reversed(), "newest first, nothing repeated or skipped")
        let even = try store.list(AnalysisQuery(organizationId: "org-a", patientId: "P-EVEN", limit: 100))
        #expect(even.items.map(\.id) == [ids[6], ids[4], ids[2], ids[0]] && even.nextCursor == nil)
        #expect(try store.list(AnalysisQuery(organizationId: "org-a", patientId: "p-even")).items.isEmpty, "exact match")
        #expect(try store.list(AnalysisQuery(organizationId: "org-a", patientId: "P-EVE")).items.isEmpty)
        #expect { try store.list(AnalysisQuery(organizationId: "org-a", cursor: "not-a-cursor")) } throws: {
            ($0 as? StoreError)?.kind == .invalidCursor
        }
    }

    @Test(arguments: AnalysisBackend.all)
    func deleteKeepsImagesAnotherRecordUses(_ backend: AnalysisBackend) throws {
        let (store, _, keep) = try backend.make()
        defer { withExtendedLifetime(keep) {} }
        let sharedScan = randomBytes(128)
        let first = makeAnalysis(scanBytes: sharedScan, imageSize: 64)
        let second = makeAnalysis(scanBytes: sharedScan, imageSize: 64)
        let a = try store.create(first), b = try store.create(second)
        #expect(try store.delete(id: a.id, organizationId: "org-a"))
        #expect(try store.delete(id: a.id, organizationId: "org-a") == false, "a second delete finds nothing")
        #expect(try store.get(id: a.id, organizationId: "org-a") == nil)
        #expect(try store.imageBytes(key: b.scan.key) == sharedScan, "the shared scan stays")
        for heatmap in first.images.dropFirst() { #expect(try store.imageBytes(key: heatmap.ref.key) == nil) }
        #expect(try store.get(id: b.id, organizationId: "org-a") != nil)
    }

    @Test(arguments: AnalysisBackend.all)
    func invalidRecordsAreRefusedBeforeAnythingIsStored(_ backend: AnalysisBackend) throws {
        let (store, _, keep) = try backend.make()
        defer { withExtendedLifetime(keep) {} }
        var wrongHash = makeAnalysis(imageSize: 64)
        wrongHash.images[1].bytes[0] ^= 0xFF
        var noPatient = makeAnalysis(imageSize: 64)
        noPatient.patient.patientId = ""
        var missingScan = makeAnalysis(imageSize: 64)
        missingScan.images.removeFirst()
        for (name, bad) in [("wrongHash", wrongHash), ("noPatient", noPatient), ("missingScan", missingScan)] {
            #expect(throws: StoreError.self, "\(name)") { try store.create(bad) }
            for blob in bad.images { #expect(try store.imageBytes(key: blob.ref.key) == nil, "\(name): an image was stored") }
        }
        #expect(try store.list(AnalysisQuery(organizationId: "org-a")).items.isEmpty)
    }

    /// A blob made by `make` is trusted to carry its digest; any change to it makes it checked again.
    @Test func blobsFromMakeAreHashedOnceAndCheckedWhenChanged() {
        var blob = ImageBlob.make(bytes: [1, 2, 3], contentType: "image/png", width: 1, height: 1)
        #expect(blob.keyIsDigest && blob.ref.key == SHA256Hex.digest([1, 2, 3]))
        blob.bytes[0] = 9
        #expect(!blob.keyIsDigest)
        #expect(!ImageBlob(ref: blob.ref, bytes: blob.bytes).keyIsDigest)
    }
}
