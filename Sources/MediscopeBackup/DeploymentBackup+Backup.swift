import Foundation
import Glibc
import MediscopeAuth
import MediscopeJobs
import MediscopeSQLite
import MediscopeStore

// Taking a backup: the store copied into a staging folder inside it, described, authenticated, synced,
// then moved (or copied) into place and checked.
extension DeploymentBackup {
    /// Copies the store into `destination`, which must not exist or be an empty folder, outside the
    /// store, in an existing folder; then checks the copy (`verify`). `host` goes into the manifest,
    /// which is authenticated with the backup key (made now, 0600, if there is none yet).
    /// - Throws: `BackupError(.stopped)` when there is no SQLite deployment, the destination is not
    ///   free, the key cannot be read or made, or a file cannot be read or written (nothing is left at
    ///   `destination` then); `BackupError(.damaged)` when the finished copy does not pass its check.
    package func create(at destination: URL, host: String) throws(BackupError) -> BackupManifest {
        let store = BackupFiles.resolved(storeDirectory)
        let present = Self.databaseFiles.filter { BackupFiles.exists(store.appendingPathComponent($0).path) }
        guard !present.isEmpty else {
            throw BackupError(.stopped, "no SQLite deployment in \(store.path) (none of \(Self.databaseFiles.joined(separator: ", ")))")
        }
        let destination = try freeDestination(destination, store: store)
        // Run as root for a store of the service's user: the key is the service's too (its nightly backups read it).
        var storeInfo = stat()
        let keyOwner = geteuid() == 0 && stat(store.path, &storeInfo) == 0 ? (storeInfo.st_uid, storeInfo.st_gid) : nil
        let key = try BackupKey.loadOrCreate(at: keyFile, owner: keyOwner).key
        Self.removeAbandoned(in: store, prefix: Self.stagingPrefix) { _ in true }
        let staging = store.appendingPathComponent("\(Self.stagingPrefix)\(getpid())-\(UInt64.random(in: 0...UInt64.max))")
        guard mkdir(staging.path, 0o700) == 0 else { throw BackupFiles.posix(.stopped, "create the staging folder", staging.path) }
        let claim = try BackupFiles.claim(staging.path)
        defer {
            try? FileManager.default.removeItem(at: staging)
            close(claim)
        }

        var manifest = BackupManifest(format: BackupManifest.currentFormat, createdAt: Date(), host: host,
                                      databases: [], analyses: 0, images: 0, missingImages: [])
        func copy(_ name: String) throws {
            try SQLiteDatabase.backup(path: store.appendingPathComponent(name).path, toNewFile: staging.appendingPathComponent(name).path)
        }
        let underLock = [SQLiteReportStore.fileName, JobQueue.fileName].filter(present.contains)
        do {
            if present.contains(SQLiteAnalysisStore.databaseFileName) {
                let counts = try SQLiteAnalysisStore.snapshot(storeDirectory: store, into: staging) {
                    for name in underLock { try copy(name) }
                }
                (manifest.analyses, manifest.images, manifest.missingImages) = (counts.records, counts.images, counts.missingImages)
            } else {
                for name in underLock { try copy(name) }
            }
            if present.contains(AccountStores.sqliteFileName) { try copy(AccountStores.sqliteFileName) }
        } catch {
            throw BackupError(.stopped, "copy the store: \(error)")
        }
        for name in present {
            manifest.databases.append(try describe(name, at: staging.appendingPathComponent(name).path))
        }
        let manifestBytes: [UInt8]
        do { manifestBytes = Array(try BackupManifest.encoder.encode(manifest)) } catch {
            throw BackupError(.stopped, "encode the manifest: \(error)")
        }
        let mac = BackupMAC(algorithm: BackupMAC.algorithmName, keyId: key.id, mac: key.mac(manifestBytes))
        let macBytes: [UInt8]
        do { macBytes = Array(try BackupManifest.encoder.encode(mac)) } catch { throw BackupError(.stopped, "encode the MAC: \(error)") }
        try BackupFiles.writeNew(macBytes, to: staging.appendingPathComponent(Self.macName).path)
        try BackupFiles.writeNew(manifestBytes, to: staging.appendingPathComponent(Self.manifestName).path)   // the manifest last
        try BackupFiles.syncFileSystem(staging.path)
        try place(staging, at: destination)
        return try Self.verify(destination, key: key)
    }

    /// Renames `staging` to `destination` (same file system) or copies it there file by file, fsync'd,
    /// the manifest last, so that an interrupted copy reads as unfinished, never as damaged.
    private func place(_ staging: URL, at destination: URL) throws(BackupError) {
        if BackupFiles.exists(destination.path) { rmdir(destination.path) }   // an empty folder, checked before
        if rename(staging.path, destination.path) == 0 {
            try BackupFiles.syncFolder(destination.deletingLastPathComponent().path)
            return
        }
        // Another file system, or an empty mount point (EBUSY): copy file by file.
        guard errno == EXDEV || errno == EBUSY else { throw BackupFiles.posix(.stopped, "move the backup into place", destination.path) }
        do {
            try BackupFiles.copyTree(from: staging, to: destination, fileMode: 0o600, folderMode: 0o700, last: Self.manifestName)
            try BackupFiles.syncFolder(destination.deletingLastPathComponent().path)
        } catch {
            try? FileManager.default.removeItem(at: destination)
            throw error
        }
    }

    /// The destination, symlinks resolved, when it is free: missing or an empty folder, its parent
    /// there, and outside the store folder.
    private func freeDestination(_ destination: URL, store: URL) throws(BackupError) -> URL {
        let parent = BackupFiles.resolved(destination.standardizedFileURL.deletingLastPathComponent())
        guard POSIXFiles.isFolder(parent.path) else {
            throw BackupError(.stopped, "\(parent.path) is not an existing folder: create it first")
        }
        let target = POSIXFiles.isFolder(destination.path) ? BackupFiles.resolved(destination) : parent.appendingPathComponent(destination.lastPathComponent)
        guard target.path != store.path, !target.path.hasPrefix(store.path + "/") else {
            throw BackupError(.stopped, "\(target.path) is inside the store folder \(store.path): put backups elsewhere")
        }
        var info = stat()
        guard lstat(target.path, &info) == 0 else { return target }
        guard info.st_mode & S_IFMT == S_IFDIR,
              (try? FileManager.default.contentsOfDirectory(atPath: target.path))?.isEmpty == true else {
            throw BackupError(.stopped, "\(target.path) exists and is not an empty folder: a backup never overwrites anything")
        }
        return target
    }

    /// The manifest's line for the copied database `name` at `path`: its size and SHA-256.
    private func describe(_ name: String, at path: String) throws(BackupError) -> BackupManifest.DatabaseFile {
        do {
            let read = try BackupFiles.fileDigest(path)
            return BackupManifest.DatabaseFile(name: name, bytes: read.bytes, sha256: read.sha256)
        } catch {
            throw BackupError(.stopped, "read the copy of \(name): \(error)")
        }
    }
}
