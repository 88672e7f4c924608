import Foundation
import GRDB
import MediscopeEncoding
import MediscopeImaging
import MediscopeSQLite

/// The embedded store: one SQLite file (WAL, synchronous=FULL) plus a content-addressed image folder.
///
/// Layout under `directory`: `mediscope.sqlite` (+ `-wal`, `-shm`), `blobs/ab/cd/<sha256>.<ext>` and the
/// heatmaps drawn when first looked at, `blobs/drawn/ab/cd/<key>.<ext>` (a cache of what their records'
/// drawings give: no backup holds them, and they go with the last record that names them).
///
/// One instance per process, opened after fork: several worker processes share the files, and SQLite's
/// write lock (taken with BEGIN IMMEDIATE) is the cross-process lock. Image files are only ever
/// unlinked while that lock is held, and create() re-checks its images under the lock, so a concurrent
/// delete or garbage collection can never remove an image that a committed record uses.
///
/// `+Schema` holds the migrations, `+Rows` the decoding of a row back into a record.
package final class SQLiteAnalysisStore: AnalysisStore {
    /// Points where tests simulate a crash or a failure. Empty in production.
    struct Hooks: Sendable {
        /// After every image is durable, before the database transaction starts.
        var afterImagesWritten: (@Sendable () throws -> Void)?
        /// Inside the transaction, after the inserts, before COMMIT.
        var beforeCommit: (@Sendable () throws -> Void)?
    }

    package static let databaseFileName = "mediscope.sqlite"
    package static let blobFolderName = "blobs"
    /// The folder of drawn heatmaps under `blobFolderName` (not a hex pair: never taken for images).
    package static let drawnFolderName = "drawn"
    /// The extensions image files under `blobFolderName` may have (`<sha256>.<ext>`).
    package static var imageFileExtensions: [String] { BlobFolder.extensions }
    /// Orphan images younger than this survive the collection run at open (they may belong to a create in flight).
    package static let defaultGarbageAge: TimeInterval = 3600

    package let directory: URL
    package let databasePath: String
    let blobs: BlobFolder
    /// Heatmaps drawn when first looked at, by their drawing's key.
    let drawn: BlobFolder
    let database: SQLiteStoreFile<StoreError>
    private let hooks: Hooks

    package convenience init(directory: URL) throws(StoreError) {
        try self.init(directory: directory, hooks: Hooks())
    }

    init(directory: URL, hooks: Hooks) throws(StoreError) {
        self.directory = directory.standardizedFileURL
        self.hooks = hooks
        // WAL, synchronous=FULL (a COMMIT is durable before we answer 201), 5 s busy timeout, and
        // statement arguments (health data) kept out of errors.
        database = try SQLiteStoreFile(directory: self.directory, fileName: Self.databaseFileName, name: "store",
                                       label: "mediscope.store", migrator: Self.migrator, mapFailure: Self.storeError)
        databasePath = database.path
        blobs = BlobFolder(root: self.directory.path + "/" + Self.blobFolderName)
        try blobs.createRoot()
        drawn = BlobFolder(root: blobs.root + "/" + Self.drawnFolderName)
        try drawn.createRoot()
        // Leftovers of crashed creates (images written, record never committed) and stale temp files.
        _ = try? collectGarbage(olderThan: Self.defaultGarbageAge)
    }

    // MARK: - AnalysisStore

    package func create(_ analysis: NewAnalysis) throws(StoreError) -> AnalysisRecord {
        let images = try analysis.validatedImages()
        // Everything that can reject the input happens before the first file is written.
        let patientJSON = try encode(analysis.patient, "patient")
        let scanJSON = try encode(analysis.scan, "scan")
        let resultsJSON = try encode(analysis.results, "results")
        let timingsJSON = try encode(analysis.timingsMs, "timings")
        let sourceJSON = try analysis.source.map { source throws(StoreError) in try encode(source, "source") }
        let inputCheckJSON = try encode(analysis.inputCheck, "inputCheck")

        // 1. Images first, each durable on its own.
        for (blob, ext) in images {
            try blobs.write(key: blob.ref.key, ext: ext, bytes: blob.bytes)
        }
        if let hook = hooks.afterImagesWritten { try runHook(hook) }

        // 2. Record and its image references in one transaction.
        let record = analysis.newRecord()
        let (id, ms) = (record.id, record.createdAt.millisecondsSince1970)
        let blobs = self.blobs
        let hooks = self.hooks

        try database.writeImmediate("create analysis") { db in
            // A delete or garbage collection in another process may have unlinked an unreferenced file
            // we found in place before we held the write lock; it cannot do so now. Put back what is gone.
            for (blob, ext) in images {
                let path = blobs.path(forKey: blob.ref.key, ext: ext)
                if blobs.modificationDate(path: path) == nil {
                    try blobs.write(key: blob.ref.key, ext: ext, bytes: blob.bytes)
                }
            }
            // An id derived from an Idempotency-Key may be taken: that request's record, made already.
            if analysis.idempotency != nil,
               try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM analyses WHERE id = ?)", arguments: [id]) == true {
                throw StoreError(.conflict, "a record with the id of this Idempotency-Key exists")
            }
            try db.execute(
                sql: """
                    INSERT INTO analyses (id, created_at, organization_id, created_by, patient_id, patient,
                                          image_width, image_height, scan, results, timings, report, source, input_check,
                                          idempotency_fingerprint)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)
                    """,
                arguments: [id, ms, record.organizationId, record.createdBy, record.patient.patientId, patientJSON,
                            record.imageWidth, record.imageHeight, scanJSON, resultsJSON, timingsJSON, sourceJSON,
                            inputCheckJSON, record.idempotencyFingerprint])
            for (blob, _) in images {
                try db.execute(sql: "INSERT OR IGNORE INTO image_refs (analysis_id, key) VALUES (?, ?)",
                               arguments: [id, blob.ref.key])
            }
            for key in analysis.drawnHeatmapKeys {
                try db.execute(sql: "INSERT OR IGNORE INTO drawn_refs (analysis_id, key) VALUES (?, ?)", arguments: [id, key])
            }
            if let hook = hooks.beforeCommit { try hook() }
        }
        return record
    }

    package func get(id: String, organizationId: String) throws(StoreError) -> AnalysisRecord? {
        let row = try database.read("read analysis") { db in
            try Row.fetchOne(db, sql: "SELECT * FROM analyses WHERE id = ? AND organization_id = ?",
                             arguments: [id, organizationId])
        }
        guard let row else { return nil }
        return try Self.record(from: row)
    }

    package func list(_ query: AnalysisQuery) throws(StoreError) -> AnalysisPage {
        let limit = min(max(query.limit, 1), 100)
        var sql = "SELECT * FROM analyses WHERE organization_id = ?"
        var arguments: StatementArguments = [query.organizationId]
        if let patientId = query.patientId {
            sql += " AND patient_id = ?"
            _ = arguments.append(contentsOf: [patientId])
        }
        if let cursor = query.cursor {
            let (ms, id) = try Self.decodeCursor(cursor)
            sql += " AND (created_at, id) < (?, ?)"
            _ = arguments.append(contentsOf: [ms, id])
        }
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        _ = arguments.append(contentsOf: [limit + 1])

        let rows = try database.read("list analyses") { db in try Row.fetchAll(db, sql: sql, arguments: arguments) }
        var items: [AnalysisRecord] = []
        items.reserveCapacity(min(rows.count, limit))
        for row in rows.prefix(limit) { items.append(try Self.record(from: row)) }
        let next = rows.count > limit ? items.last.map { Self.encodeCursor(ms: $0.createdAt.millisecondsSince1970, id: $0.id) } : nil
        return AnalysisPage(items: items, nextCursor: next)
    }

    package func delete(id: String, organizationId: String) throws(StoreError) -> Bool {
        // 1. Record and its references, atomically.
        let keys: (images: [String], drawn: [String])? = try database.writeImmediate("delete analysis") { db in
            guard try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM analyses WHERE id = ? AND organization_id = ?)",
                                    arguments: [id, organizationId]) == true else { return nil }
            let keys = try String.fetchAll(db, sql: "SELECT key FROM image_refs WHERE analysis_id = ?", arguments: [id])
            let drawn = try String.fetchAll(db, sql: "SELECT key FROM drawn_refs WHERE analysis_id = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM image_refs WHERE analysis_id = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM drawn_refs WHERE analysis_id = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM analyses WHERE id = ? AND organization_id = ?", arguments: [id, organizationId])
            return (keys, drawn)
        }
        guard let keys else { return false }
        // 2. Images no record uses any more, under the write lock so no create can adopt one meanwhile.
        //    A failure here only leaves orphans, which garbage collection removes later.
        if !keys.images.isEmpty { _ = try? removeUnreferenced(keys: keys.images, olderThan: nil) }
        if !keys.drawn.isEmpty { _ = try? removeUnreferenced(keys: keys.drawn, olderThan: nil, in: .drawn) }
        return true
    }

    package func owner(id: String) throws(StoreError) -> String? {
        try database.read("read the owner of an analysis") { db in
            try String.fetchOne(db, sql: "SELECT organization_id FROM analyses WHERE id = ?", arguments: [id])
        }
    }

    package func imagePath(key: String) -> String? {
        guard BlobFolder.isValidKey(key) else { return nil }
        return blobs.existingPath(forKey: key) ?? drawn.existingPath(forKey: key)
    }

    package func imageBytes(key: String) throws(StoreError) -> [UInt8]? {
        guard BlobFolder.isValidKey(key) else { return nil }
        if let bytes = try blobs.read(key: key) { return bytes }
        return try drawn.read(key: key)
    }

    /// Under `blobs/drawn/`, where nginx sends it from like any image (temp file + rename: two first
    /// looks at once both write whole files, and the second finds the first's; folders not synced: an
    /// entry lost in a crash is drawn again). A record deleted while
    /// its heatmap was drawn leaves an orphan that garbage collection removes.
    package func keepDrawn(_ ref: ImageRef, bytes: [UInt8]) throws(StoreError) {
        guard ref.drawing != nil, let ext = BlobFolder.fileExtension(contentType: ref.contentType), !bytes.isEmpty else {
            throw StoreError(.invalidRecord, "only a drawn heatmap's bytes are kept this way")
        }
        try drawn.write(key: ref.key, ext: ext, bytes: bytes, syncFolders: false)
    }

    package func checkReady() throws(StoreError) {
        let one = try database.read("check database") { db in try Int.fetchOne(db, sql: "SELECT 1") }
        guard one == 1 else { throw StoreError(.unavailable, "database did not answer SELECT 1") }
        try blobs.checkWritable()
    }

    // MARK: - Snapshot

    /// What `snapshot(into:)` copied.
    package struct SnapshotCounts: Sendable, Equatable {
        /// Analysis records in the copy.
        package var records: Int
        /// Image files linked into the copy.
        package var images: Int
        /// Keys of images a record refers to that had no file in this store (damage found, not made).
        package var missingImages: [String]
    }

    /// Writes a consistent copy of the store in `storeDirectory` into `directory` (created 0700 if
    /// missing; on the store's file system) without opening the store (no migration, no garbage
    /// collection): the database as `databaseFileName` by SQLite's online backup, and every image a
    /// record refers to hard-linked under `blobFolderName`. Records and images match: the images are
    /// linked first, then, under the store's write lock (a delete removes images under it too), the
    /// database is copied, images added since are linked and those deleted since are unlinked again,
    /// and `whileLocked` runs. Uploads wait only for that part. Nothing is fsync'd here; the caller
    /// syncs the whole copy.
    /// - Throws: `StoreError(.io)` when there is no database or a file cannot be written
    ///   or linked (e.g. another file system); `.unavailable` when the database cannot be read or its
    ///   lock not taken within the busy timeout; whatever `whileLocked` throws, as `.unavailable`.
    package static func snapshot(storeDirectory: URL, into directory: URL,
                                whileLocked: () throws -> Void = {}) throws(StoreError) -> SnapshotCounts {
        let source = storeDirectory.standardizedFileURL.path, target = directory.standardizedFileURL.path
        let databasePath = source + "/" + databaseFileName
        guard FileManager.default.fileExists(atPath: databasePath) else { throw StoreError(.io, "no database at \(databasePath)") }
        if mkdir(target, 0o700) != 0 && errno != EEXIST {
            throw StoreError(.io, "cannot create \(target): \(String(cString: strerror(errno)))")
        }
        let live = BlobFolder(root: source + "/" + blobFolderName)
        let copy = BlobFolder(root: target + "/" + blobFolderName)
        let referenced = "SELECT DISTINCT key FROM image_refs"
        var counts = SnapshotCounts(records: 0, images: 0, missingImages: [])
        var linked = Set<String>(), made = Set<String>()
        do {
            let reader = try SQLiteDatabase.open(path: databasePath, label: "snapshot")
            for key in try reader.read({ try String.fetchAll($0, sql: referenced) }) {
                if try live.link(key: key, into: copy, made: &made) { linked.insert(key) }
            }
            try reader.close()
            try SQLiteDatabase.backup(path: databasePath, toNewFile: target + "/" + databaseFileName) { db in
                counts.records = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM analyses") ?? 0
                let now = Set(try String.fetchAll(db, sql: referenced))
                for key in now.subtracting(linked).sorted() {
                    if try live.link(key: key, into: copy, made: &made) { linked.insert(key) } else { counts.missingImages.append(key) }
                }
                for key in linked.subtracting(now) { try copy.remove(key: key) }
                counts.images = now.count - counts.missingImages.count
                try whileLocked()
            }
        } catch {
            if let error = error as? StoreError { throw error }
            throw storeError(SQLiteFailure(error, "snapshot the store"))
        }
        return counts
    }

    // MARK: - Garbage collection

    /// Deletes image files that no record references and that are older than `olderThan` seconds, and temp
    /// files left by interrupted writes. Returns how many files were removed.
    @discardableResult
    package func collectGarbage(olderThan age: TimeInterval) throws(StoreError) -> Int {
        let cutoff = Date().addingTimeInterval(-age)
        return try collectGarbage(in: .images, before: cutoff) + collectGarbage(in: .drawn, before: cutoff)
    }

    /// The image files of one folder, and the table that says which records use them.
    enum ImageFolder {
        case images, drawn
        var table: String { self == .images ? "image_refs" : "drawn_refs" }
    }

    /// `collectGarbage` in one folder: files older than `cutoff` that no record uses.
    private func collectGarbage(in folder: ImageFolder, before cutoff: Date) throws(StoreError) -> Int {
        let files = folder == .images ? blobs : drawn
        var removed = 0
        var candidates: [String] = []
        for entry in try files.allFiles() where entry.modified < cutoff {
            if entry.name.hasPrefix(BlobFolder.tempPrefix) {
                if unlink(entry.path) == 0 { removed += 1 }
            } else if let key = BlobFolder.key(fromFileName: entry.name) {
                candidates.append(key)
            }
        }
        var seen = Set<String>()
        candidates = candidates.filter { seen.insert($0).inserted }
        // Small batches: the write lock is held only briefly.
        var start = 0
        while start < candidates.count {
            let batch = Array(candidates[start..<min(start + 200, candidates.count)])
            removed += try removeUnreferenced(keys: batch, olderThan: cutoff, in: folder)
            start += 200
        }
        return removed
    }

    /// Under the write lock: unlinks the files of every key no record references (and, with a cutoff, whose
    /// file is older than it). Returns the number of files removed.
    private func removeUnreferenced(keys: [String], olderThan cutoff: Date?, in folder: ImageFolder = .images) throws(StoreError) -> Int {
        let blobs = folder == .images ? self.blobs : drawn
        return try database.writeImmediate("collect unreferenced images") { db in
            var removed = 0
            for key in keys {
                let used = try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM \(folder.table) WHERE key = ?)",
                                             arguments: [key]) ?? true
                if used { continue }
                for ext in BlobFolder.extensions {
                    let path = blobs.path(forKey: key, ext: ext)
                    guard let modified = blobs.modificationDate(path: path) else { continue }
                    if let cutoff, modified >= cutoff { continue }
                    if unlink(path) == 0 { removed += 1 }
                }
            }
            return removed
        }
    }

    // MARK: - Helpers

    private func runHook(_ hook: () throws -> Void) throws(StoreError) {
        do { try hook() } catch { throw database.failure(error, "create analysis") }
    }

    private func encode<T: Encodable>(_ value: T, _ field: String) throws(StoreError) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do {
            return String(decoding: try encoder.encode(value), as: UTF8.self)
        } catch {
            throw StoreError(.invalidRecord, "\(field) cannot be encoded as JSON: \(error)")
        }
    }

    // MARK: - Cursor: base64url("createdAtMs:id"), no padding

    static func encodeCursor(ms: Int64, id: String) -> String { AnalysisCursor.encode(ms: ms, id: id) }
    static func decodeCursor(_ cursor: String) throws(StoreError) -> (Int64, String) { try AnalysisCursor.decode(cursor) }

    // MARK: - Errors

    /// Every database failure as a StoreError. Messages carry SQLite's code and message, never statement
    /// arguments. Shared by every SQLite file that fails with `StoreError` (the outbox too).
    @Sendable package static func storeError(_ failure: SQLiteFailure) -> StoreError {
        switch failure.kind {
        case .storage: StoreError(.io, failure.message)
        case .duplicate, .constraint: StoreError(.invalidRecord, failure.message)
        // BUSY, LOCKED, CORRUPT, NOTADB, CANTOPEN, ..., and errors that are not SQLite's
        case .unavailable: StoreError(.unavailable, failure.message)
        }
    }
}
