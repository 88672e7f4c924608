import Foundation
import Testing
import TestSupport
@testable import MediscopeStore

/// Who may read what a store writes: patient data in the database is the service user's alone; images
/// are files nginx (another user) reads by exact path, in folders no one else may list.
@Suite struct StoreFileModeTests {
    static func mode(_ path: String) -> mode_t? {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o777 : nil
    }

    @Test func theDatabaseIsTheServiceUsersAloneAndImageFoldersCannotBeListed() throws {
        let folder = TemporaryFolder()
        let store = try SQLiteAnalysisStore(directory: folder.url)
        let record = try store.create(makeAnalysis(imageSize: 16))
        let database = folder.path + "/" + SQLiteAnalysisStore.databaseFileName
        for path in [database, database + "-wal", database + "-shm"] {
            #expect(Self.mode(path) == 0o600, "\(path): \(String(Self.mode(path) ?? 0, radix: 8))")
        }
        let image = try #require(store.imagePath(key: record.scan.key))
        #expect(Self.mode(image) == 0o644, "nginx reads the image itself")
        let keyFolder = (image as NSString).deletingLastPathComponent
        for path in [folder.path + "/blobs", (keyFolder as NSString).deletingLastPathComponent, keyFolder] {
            #expect(Self.mode(path) == 0o711, "\(path): \(String(Self.mode(path) ?? 0, radix: 8))")
        }
    }

    @Test func aDatabaseLeftReadableByAnEarlierVersionIsTightenedWhenOpened() throws {
        let folder = TemporaryFolder()
        let database = folder.path + "/" + SQLiteAnalysisStore.databaseFileName
        let record = try SQLiteAnalysisStore(directory: folder.url).create(makeAnalysis(imageSize: 16))
        for path in [database, database + "-wal", database + "-shm"] where Self.mode(path) != nil {
            #expect(chmod(path, 0o644) == 0)
        }
        let reopened = try SQLiteAnalysisStore(directory: folder.url)
        for path in [database, database + "-wal", database + "-shm"] where Self.mode(path) != nil {
            #expect(Self.mode(path) == 0o600, "\(path): \(String(Self.mode(path) ?? 0, radix: 8))")
        }
        #expect(try reopened.get(id: record.id, organizationId: "org-a") == record, "nothing lost")
    }
}
