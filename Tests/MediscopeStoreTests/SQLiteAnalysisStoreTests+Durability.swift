import Foundation
import Testing
import TestSupport
@testable import MediscopeStore

// Durability, concurrency and failures of the database and its folder.
extension SQLiteAnalysisStoreTests {
    // MARK: - Durability and concurrency

    @Test func dataSurvivesReopening() throws {
        let folder = TemporaryFolder()
        var records: [AnalysisRecord] = []
        do {
            let store = try SQLiteAnalysisStore(directory: folder.url)
            for i in 0..<5 { records.append(try store.create(makeAnalysis(patientId: "P-\(i)", imageSize: 300))) }
            #expect(try store.delete(id: records[0].id, organizationId: "org-a"))
        }
        let reopened = try SQLiteAnalysisStore(directory: folder.url)
        #expect(try reopened.get(id: records[0].id, organizationId: "org-a") == nil)
        for record in records.dropFirst() {
            #expect(try reopened.get(id: record.id, organizationId: "org-a") == record)
            #expect(reopened.imagePath(key: record.scan.key) != nil)
        }
        #expect(try reopened.list(AnalysisQuery(organizationId: "org-a")).items.map(\.id) == records.dropFirst().reversed().map(\.id))
        try reopened.checkReady()
        // The journal is WAL (so concurrent readers and one writer across processes).
        #expect(fileExists(folder.path + "/mediscope.sqlite-wal"))
    }

    @Test func twoConnectionsWritingAtOnceLoseNothing() async throws {
        let folder = TemporaryFolder()
        let url = folder.url
        let storeA = try SQLiteAnalysisStore(directory: url)
        let storeB = try SQLiteAnalysisStore(directory: url)   // a second, independent SQLite connection
        let ids = try await withThrowingTaskGroup(of: [String].self) { group in
            for store in [storeA, storeB] {
                group.addTask {
                    // Plain threads, not the cooperative pool: create() blocks on fsync and on SQLite's lock.
                    try await withCheckedThrowingContinuation { continuation in
                        Thread.detachNewThread {
                            do {
                                var ids: [String] = []
                                for i in 0..<50 { ids.append(try store.create(makeAnalysis(patientId: "P-\(i)", imageSize: 512)).id) }
                                continuation.resume(returning: ids)
                            } catch {
                                continuation.resume(throwing: error)
                            }
                        }
                    }
                }
            }
            var all: [String] = []
            for try await ids in group { all += ids }
            return all
        }
        #expect(ids.count == 100)
        #expect(Set(ids).count == 100)
        var listed: [String] = []
        var cursor: String?
        repeat {
            let page = try storeA.list(AnalysisQuery(organizationId: "org-a", limit: 100, cursor: cursor))
            listed += page.items.map(\.id)
            cursor = page.nextCursor
        } while cursor != nil
        #expect(Set(listed) == Set(ids))
        #expect(listed.count == 100)
    }

    @Test func concurrentFirstOpensAllMigrate() async throws {
        let folder = TemporaryFolder()
        let url = folder.url
        let results = await withTaskGroup(of: String?.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    await withCheckedContinuation { continuation in
                        Thread.detachNewThread {
                            do {
                                let store = try SQLiteAnalysisStore(directory: url)
                                _ = try store.create(makeAnalysis(imageSize: 32))
                                continuation.resume(returning: nil)
                            } catch {
                                continuation.resume(returning: "\(error)")
                            }
                        }
                    }
                }
            }
            var errors: [String] = []
            for await result in group { if let result { errors.append(result) } }
            return errors
        }
        #expect(results.isEmpty, "\(results)")
        let store = try SQLiteAnalysisStore(directory: url)
        #expect(try store.list(AnalysisQuery(organizationId: "org-a")).items.count == 6)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/sqlite3"),
                   "needs the sqlite3 command-line tool (Debian package sqlite3)"))
    func waitsForAnotherProcessHoldingTheWriteLock() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)
        let marker = folder.path + "/locked"
        // Another process takes the write lock, signals, holds it for a second, then commits.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        process.arguments = [folder.path + "/mediscope.sqlite"]
        let stdin = Pipe()
        process.standardInput = stdin
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        stdin.fileHandleForWriting.write(Data("""
            .timeout 5000
            BEGIN IMMEDIATE;
            .shell touch \(marker)
            .shell sleep 3
            COMMIT;
            .quit

            """.utf8))
        try stdin.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(10)
        while !fileExists(marker) && Date() < deadline { usleep(10_000) }
        #expect(fileExists(marker))

        let start = Date()
        let record = try store.create(makeAnalysis(imageSize: 64))
        let waited = Date().timeIntervalSince(start)
        process.waitUntilExit()
        #expect(waited > 0.5, "create did not wait for the other process's lock (\(waited) s)")
        #expect(try store.get(id: record.id, organizationId: "org-a") == record)
    }

    // MARK: - Failures

    @Test func corruptDatabaseFileGivesUnavailable() throws {
        let folder = TemporaryFolder()
        var garbage = randomBytes(16_384)
        garbage.replaceSubrange(0..<6, with: Array("GARBGE".utf8))
        _ = FileManager.default.createFile(atPath: folder.path + "/mediscope.sqlite", contents: Data(garbage))
        do {
            _ = try SQLiteAnalysisStore(directory: folder.url)
            Issue.record("opened a corrupt database")
        } catch {
            #expect(error.kind == .unavailable, "\(error)")
        }
    }

    @Test func databaseCorruptedAfterTheHeaderGivesAnErrorNotACrash() throws {
        let folder = TemporaryFolder()
        do {
            let store = try SQLiteAnalysisStore(directory: folder.url)
            for _ in 0..<3 { _ = try store.create(makeAnalysis(imageSize: 32)) }
        }
        // Keep SQLite's header, trash the pages after it (and drop the WAL so the trash is what is read).
        let path = folder.path + "/mediscope.sqlite"
        try? FileManager.default.removeItem(atPath: path + "-wal")
        try? FileManager.default.removeItem(atPath: path + "-shm")
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(bytes.count > 200)
        for i in 100..<bytes.count { bytes[i] = UInt8.random(in: 0...255) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        do {
            let store = try SQLiteAnalysisStore(directory: folder.url)
            _ = try store.list(AnalysisQuery(organizationId: "org-a"))
            Issue.record("read a corrupt database without error")
        } catch {
            #expect([StoreError.Kind.unavailable, .io].contains(error.kind), "\(error)")
        }
    }

    @Test func checkReadyFailsWhenTheImageFolderIsNotWritable() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)
        try store.checkReady()
        // Replace the folder by a plain file: nothing can be created below it (even as root).
        try FileManager.default.removeItem(atPath: folder.path + "/blobs")
        _ = FileManager.default.createFile(atPath: folder.path + "/blobs", contents: Data())
        #expect(throws: StoreError.self) { try store.checkReady() }
        do {
            _ = try store.create(makeAnalysis(imageSize: 32))
            Issue.record("create succeeded without an image folder")
        } catch {
            #expect(error.kind == .io, "\(error)")
        }
    }

    @Test func storeFolderThatIsAFileGivesAnError() throws {
        let folder = TemporaryFolder()
        let file = folder.url.appendingPathComponent("file")
        _ = FileManager.default.createFile(atPath: file.path, contents: Data("x".utf8))
        #expect(throws: StoreError.self) { _ = try SQLiteAnalysisStore(directory: file) }
    }
}
