import Foundation
import MediscopeBackup
import MediscopeStore
import Testing
import TestSupport

/// `DeploymentBackup` through its Swift API, on a store in a temporary folder: what a backup holds, its
/// check, and a restore. The commands, a serving stack and the nightly script are IntegrationTests'
/// BackupTests.
@Suite struct DeploymentBackupTests {
    /// A store folder (`var/store`) with one record of `patientId`; the store is closed again.
    static func storeWithARecord(_ folder: TemporaryFolder, _ patientId: String) throws -> (store: URL, record: AnalysisRecord) {
        let store = folder.appending("var/store")
        return (store, try SQLiteAnalysisStore(directory: store).create(makeAnalysis(patientId: patientId)))
    }

    static func mode(_ path: String) -> mode_t? {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o777 : nil
    }

    @Test func aRestoreBringsBackWhatTheBackupHeldAndKeepsTheReplacedStoreAside() throws {
        let folder = TemporaryFolder("mediscope-backup")
        let (store, kept) = try Self.storeWithARecord(folder, "P-KEPT")
        let deployment = DeploymentBackup(storeDirectory: store)
        let destination = folder.appending("backups/first")
        try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)

        let manifest = try deployment.create(at: destination, host: "unit-host")
        #expect(manifest.host == "unit-host" && manifest.analyses == 1 && manifest.images == 3 && manifest.missingImages.isEmpty)
        #expect(manifest.databases.map(\.name) == [SQLiteAnalysisStore.databaseFileName])
        #expect(try deployment.verify(destination) == manifest)
        #expect(Self.mode(deployment.keyFile.path) == 0o600, "the first backup made the key, the owner's alone")
        #expect(!FileManager.default.fileExists(atPath: destination.appendingPathComponent(deployment.keyFile.lastPathComponent).path))

        // After the backup: a new record, and the kept one deleted; the restore takes both back.
        let later: AnalysisRecord
        do {
            let live = try SQLiteAnalysisStore(directory: store)
            later = try live.create(makeAnalysis(patientId: "P-LATER"))
            #expect(try live.delete(id: kept.id, organizationId: "org-a"))
        }
        let aside = try #require(try deployment.restore(from: destination))
        #expect(aside.lastPathComponent.hasPrefix(DeploymentBackup.restoredPrefix))
        #expect(deployment.restoredStores().map(\.folder.lastPathComponent) == [aside.lastPathComponent])
        let restored = try SQLiteAnalysisStore(directory: store)
        #expect(try restored.get(id: kept.id, organizationId: "org-a") == kept)
        #expect(try restored.get(id: later.id, organizationId: "org-a") == nil)
        for key in [kept.scan.key] + kept.results.map(\.heatmap.key) {
            #expect(try restored.imageBytes(key: key) != nil, "image \(key) is back")
        }
    }

    @Test func aDatabaseCutShortFailsTheCheckAndIsNotRestored() throws {
        let folder = TemporaryFolder("mediscope-backup")
        let (store, record) = try Self.storeWithARecord(folder, "P-DAMAGED")
        let deployment = DeploymentBackup(storeDirectory: store)
        let destination = folder.appending("backup")
        _ = try deployment.create(at: destination, host: "unit-host")

        let database = destination.appendingPathComponent(SQLiteAnalysisStore.databaseFileName)
        let bytes = try Data(contentsOf: database)
        try bytes.prefix(bytes.count / 2).write(to: database)
        for error in [#expect(throws: BackupError.self) { try deployment.verify(destination) },
                      #expect(throws: BackupError.self) { try deployment.restore(from: destination) }] {
            #expect(error?.kind == .damaged && error?.problems.contains { $0.contains(SQLiteAnalysisStore.databaseFileName) } == true,
                    "\(String(describing: error?.problems))")
        }
        #expect(deployment.restoredStores().isEmpty, "nothing was swapped")
        #expect(try SQLiteAnalysisStore(directory: store).get(id: record.id, organizationId: "org-a") == record, "the live store is untouched")
    }

    @Test func aFolderWithoutAStoreIsNoDeployment() throws {
        let folder = TemporaryFolder("mediscope-backup")
        let empty = folder.appending("var/store")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let error = #expect(throws: BackupError.self) {
            try DeploymentBackup(storeDirectory: empty).create(at: folder.appending("backup"), host: "unit-host")
        }
        #expect(error?.kind == .stopped && error?.message.contains("no SQLite deployment") == true, "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: folder.appending("backup").path))
    }
}

extension DeploymentBackupTests {
    /// Heatmaps drawn when first looked at: a backup holds what they are drawn from (the lossless scan),
    /// not the drawn files, passes its check, and a restored store draws them again, the same bytes.
    @Test func aBackupHoldsWhatHeatmapsAreDrawnFromAndARestoreDrawsThemAgain() throws {
        let folder = TemporaryFolder("mediscope-backup")
        let store = folder.appending("var/store")
        let drawn = try DrawnAnalysis()
        let record: AnalysisRecord
        do {
            let live = try SQLiteAnalysisStore(directory: store)
            record = try live.create(drawn.new)
            for result in record.results { #expect(try live.bytes(of: result.heatmap) == drawn.eager[result.id]) }
        }
        let deployment = DeploymentBackup(storeDirectory: store)
        let destination = folder.appending("backup")
        let manifest = try deployment.create(at: destination, host: "unit-host")
        #expect(manifest.images == 2 && manifest.missingImages.isEmpty, "the scan and its lossless copy")
        #expect(try deployment.verify(destination) == manifest)
        #expect(!FileManager.default.fileExists(atPath: destination.appendingPathComponent("blobs/drawn").path))

        _ = try deployment.restore(from: destination)
        let restored = try SQLiteAnalysisStore(directory: store)
        for result in record.results {
            #expect(try restored.imageBytes(key: result.heatmap.key) == nil, "not in the backup")
            #expect(try restored.bytes(of: result.heatmap) == drawn.eager[result.id], "drawn again, the same bytes")
        }
    }
}
