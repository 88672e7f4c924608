import Crypto
import Foundation
import Glibc
import GRDB
import MediscopeAuth
import MediscopeEncoding
import MediscopeJobs
import MediscopeSQLite
import MediscopeStore

/// Backup, check and restore of an embedded (SQLite) deployment's store folder (`var/store`), taken while
/// the server runs (`mediscope store backup|verify|restore`).
///
/// A backup holds what the store folder holds, in its layout, plus `BACKUP.json` (`BackupManifest`):
/// - `mediscope.sqlite` and every image a record uses: one snapshot under the store's write lock, the
///   images hard-linked (`SQLiteAnalysisStore.snapshot(into:)`), so records and images always match;
/// - then `accounts.sqlite` (users, sessions, tokens, audit log), `reports.sqlite` (report versions) and
///   `jobs.sqlite` (report drafts still to write), each by SQLite's online backup under its own write lock.
/// Each database is consistent in itself; they are taken one after another, within about a second.
/// Uploads wait for the store's lock only while the analyses database is copied and its images linked.
///
/// The copy is made in a staging folder beside the store (hard links need one file system), synced with
/// sync(2), and then renamed into place or, on another file system, copied file by file with fsync.
/// Every database and image in it is checked before it counts as done.
public struct DeploymentBackup: Sendable {
    public static let manifestName = "BACKUP.json"
    /// The databases a backup holds, in the order they are copied (the analyses first, with its images).
    public static let databaseFiles = [SQLiteAnalysisStore.databaseFileName, AccountStores.sqliteFileName,
                                       SQLiteReportStore.fileName, JobQueue.fileName]

    /// The live store folder (`var/store`).
    public let storeDirectory: URL

    public init(storeDirectory: URL) {
        self.storeDirectory = storeDirectory.standardizedFileURL
    }

    // MARK: - Backup

    /// Copies the store into `destination`, which must not exist or be an empty folder, then checks the
    /// copy (`verify`). `host` goes into the manifest.
    /// - Throws: `BackupError(.stopped)` when there is no SQLite deployment, the destination is in use,
    ///   or a file cannot be read or written (nothing is left at `destination` then);
    ///   `BackupError(.damaged)` when the finished copy does not pass its check.
    public func create(at destination: URL, host: String) throws(BackupError) -> BackupManifest {
        let destination = destination.standardizedFileURL
        let present = Self.databaseFiles.filter { exists(storeDirectory.appendingPathComponent($0).path) }
        guard !present.isEmpty else {
            throw BackupError(.stopped, "no SQLite deployment in \(storeDirectory.path) (none of \(Self.databaseFiles.joined(separator: ", ")))")
        }
        try requireFreeDestination(destination)
        let staging = storeDirectory.deletingLastPathComponent()
            .appendingPathComponent(".backup-\(UInt64.random(in: 0...UInt64.max))")
        defer { try? FileManager.default.removeItem(at: staging) }
        guard mkdir(staging.path, 0o700) == 0 else { throw posix(.stopped, "create the staging folder", staging.path) }

        var manifest = BackupManifest(format: BackupManifest.currentFormat, createdAt: Date(), host: host,
                                      databases: [], analyses: 0, images: 0, missingImages: [])
        for name in present {
            let target = staging.appendingPathComponent(name).path
            do {
                if name == SQLiteAnalysisStore.databaseFileName {
                    let counts = try SQLiteAnalysisStore(directory: storeDirectory).snapshot(into: staging)
                    (manifest.analyses, manifest.images, manifest.missingImages) = (counts.records, counts.images, counts.missingImages)
                } else {
                    try SQLiteDatabase.backup(path: storeDirectory.appendingPathComponent(name).path, toNewFile: target)
                }
            } catch {
                throw BackupError(.stopped, "copy \(name): \(error)")
            }
            manifest.databases.append(try describe(name, at: target))
        }
        try write(manifest, to: staging.appendingPathComponent(Self.manifestName).path)
        try sync(staging.path)

        try place(staging, at: destination)
        let checked = try Self.verify(destination)
        return checked
    }

    /// Renames `staging` to `destination` (same file system) or copies it there file by file, fsync'd.
    private func place(_ staging: URL, at destination: URL) throws(BackupError) {
        if exists(destination.path) { rmdir(destination.path) }   // an empty folder, checked before
        if rename(staging.path, destination.path) == 0 {
            try syncFolder(destination.deletingLastPathComponent().path)
            return
        }
        guard errno == EXDEV else { throw posix(.stopped, "move the backup into place", destination.path) }
        do {
            try copyTree(from: staging, to: destination, fileMode: 0o600, folderMode: 0o700)
        } catch {
            try? FileManager.default.removeItem(at: destination)
            throw error
        }
    }

    private func requireFreeDestination(_ destination: URL) throws(BackupError) {
        guard destination.path != storeDirectory.path, !destination.path.hasPrefix(storeDirectory.path + "/") else {
            throw BackupError(.stopped, "\(destination.path) is inside the store folder \(storeDirectory.path): put backups elsewhere")
        }
        var info = stat()
        guard lstat(destination.path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFDIR,
              (try? FileManager.default.contentsOfDirectory(atPath: destination.path))?.isEmpty == true else {
            throw BackupError(.stopped, "\(destination.path) exists and is not an empty folder: a backup never overwrites anything")
        }
    }

    // MARK: - Check

    /// Checks a backup folder against its manifest: each database's size and SHA-256 and SQLite's
    /// `integrity_check`; every image file's content against its name (its SHA-256); every image a
    /// record refers to present. Returns the manifest when everything passes.
    /// - Throws: `BackupError(.damaged)` listing every problem found; `.stopped` when there is no
    ///   readable manifest.
    public static func verify(_ backup: URL) throws(BackupError) -> BackupManifest {
        let manifestPath = backup.appendingPathComponent(manifestName).path
        guard let data = FileManager.default.contents(atPath: manifestPath) else {
            throw BackupError(.stopped, "no \(manifestName) in \(backup.path): not a Mediscope backup, or an unfinished one")
        }
        let manifest: BackupManifest
        do { manifest = try BackupManifest.decoder.decode(BackupManifest.self, from: data) } catch {
            throw BackupError(.damaged, "\(manifestPath) is not a backup manifest", problems: ["\(manifestName): \(error)"])
        }
        guard manifest.format == BackupManifest.currentFormat else {
            throw BackupError(.stopped, "backup format \(manifest.format) is not known to this version (it reads \(BackupManifest.currentFormat))")
        }
        var problems: [String] = []
        var referenced: [String] = []
        for file in manifest.databases {
            let path = backup.appendingPathComponent(file.name).path
            guard let read = try? fileDigest(path) else { problems.append("\(file.name): missing or unreadable"); continue }
            let (bytes, digest) = read
            if bytes != file.bytes || digest != file.sha256 {
                problems.append("\(file.name): \(bytes) bytes, SHA-256 \(digest); the manifest says \(file.bytes) bytes, \(file.sha256)")
                continue
            }
            do {
                var config = Configuration()
                config.readonly = true
                let queue = try DatabaseQueue(path: path, configuration: config)
                let result = try queue.read { try String.fetchAll($0, sql: "PRAGMA integrity_check") }
                if result != ["ok"] { problems.append("\(file.name): integrity_check says \(result.prefix(5).joined(separator: "; "))") }
                if file.name == SQLiteAnalysisStore.databaseFileName {
                    referenced = try queue.read { try String.fetchAll($0, sql: "SELECT DISTINCT key FROM image_refs") }
                }
                try queue.close()
            } catch {
                problems.append("\(file.name): cannot be read as a database: \(error)")
            }
        }
        let images = imageFiles(under: backup.appendingPathComponent(SQLiteAnalysisStore.blobFolderName).path)
        for (key, path) in images {
            guard let digest = (try? fileDigest(path))?.1 else { problems.append("image \(key): unreadable"); continue }
            if digest != key { problems.append("image \(key): its content does not match its name (SHA-256 \(digest))") }
        }
        let missing = Set(referenced).subtracting(images.keys).subtracting(manifest.missingImages)
        for key in missing.sorted() { problems.append("image \(key): a record refers to it, the backup has no file") }
        if images.count != manifest.images { problems.append("\(images.count) image files; the manifest says \(manifest.images)") }
        guard problems.isEmpty else {
            throw BackupError(.damaged, "the backup in \(backup.path) did not pass its check (\(problems.count) problems)", problems: problems)
        }
        return manifest
    }

    // MARK: - Restore

    /// Replaces the store folder by the backup in `backup`, after checking it. The server must be
    /// stopped. The current store folder is kept beside it, renamed `store.before-restore-<UTC time>`;
    /// the new one is assembled beside it first, so an interrupted restore leaves the old store in place.
    /// Returns where the old store folder went (nil when there was none).
    /// - Throws: `BackupError(.damaged)` when the backup does not pass its check (nothing changes);
    ///   `.stopped` when a file cannot be copied or moved.
    public func restore(from backup: URL) throws(BackupError) -> URL? {
        let backup = backup.standardizedFileURL
        let manifest = try Self.verify(backup)
        let parent = storeDirectory.deletingLastPathComponent()
        let assembling = parent.appendingPathComponent(".restore-\(UInt64.random(in: 0...UInt64.max))")
        defer { try? FileManager.default.removeItem(at: assembling) }
        guard mkdir(assembling.path, 0o755) == 0 else { throw posix(.stopped, "create the restore folder", assembling.path) }
        for file in manifest.databases {
            try copyFile(from: backup.appendingPathComponent(file.name).path, to: assembling.appendingPathComponent(file.name).path, mode: 0o600)
        }
        let blobs = backup.appendingPathComponent(SQLiteAnalysisStore.blobFolderName)
        if exists(blobs.path) {
            // As the store makes them: nginx reads images by exact path; nobody else may list them.
            try copyTree(from: blobs, to: assembling.appendingPathComponent(SQLiteAnalysisStore.blobFolderName), fileMode: 0o644, folderMode: 0o711)
        }
        try sync(assembling.path)

        var keptAside: URL?
        if exists(storeDirectory.path) {
            let stamp = ISO8601DateFormatter.string(from: Date(), timeZone: TimeZone(identifier: "UTC")!,
                                                    formatOptions: [.withYear, .withMonth, .withDay, .withTime, .withTimeZone])  // 20261130T101500Z
            let aside = parent.appendingPathComponent("\(storeDirectory.lastPathComponent).before-restore-\(stamp)")
            guard rename(storeDirectory.path, aside.path) == 0 else { throw posix(.stopped, "move the current store aside", aside.path) }
            keptAside = aside
        }
        guard rename(assembling.path, storeDirectory.path) == 0 else {
            let failure = posix(.stopped, "move the restored store into place", storeDirectory.path)
            if let keptAside { rename(keptAside.path, storeDirectory.path) }
            throw failure
        }
        try syncFolder(parent.path)
        return keptAside
    }

    // MARK: - Files

    private func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    private func describe(_ name: String, at path: String) throws(BackupError) -> BackupManifest.DatabaseFile {
        do {
            let (bytes, digest) = try Self.fileDigest(path)
            return BackupManifest.DatabaseFile(name: name, bytes: bytes, sha256: digest)
        } catch {
            throw BackupError(.stopped, "read the copy of \(name): \(error)")
        }
    }

    private func write(_ manifest: BackupManifest, to path: String) throws(BackupError) {
        let data: Data
        do { data = try BackupManifest.encoder.encode(manifest) } catch { throw BackupError(.stopped, "encode the manifest: \(error)") }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw posix(.stopped, "write the manifest", path) }
        defer { close(fd) }
        try Self.writeAll(fd, Array(data), path)
        guard fsync(fd) == 0 else { throw posix(.stopped, "fsync the manifest", path) }
    }

    /// Size and lowercase hex SHA-256 of a file, read in 1 MiB pieces.
    static func fileDigest(_ path: String) throws -> (Int, String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw posix(.stopped, "open", path) }
        defer { close(fd) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var total = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw posix(.stopped, "read", path) }
            if n == 0 { break }
            hasher.update(data: buffer[0..<n])
            total += n
        }
        return (total, Hex.encode(hasher.finalize()))
    }

    /// Image files under a blob folder (`ab/cd/<key>.<ext>`), by key.
    static func imageFiles(under root: String) -> [String: String] {
        var files: [String: String] = [:]
        guard let walker = FileManager.default.enumerator(atPath: root) else { return files }
        while let relative = walker.nextObject() as? String {
            let name = (relative as NSString).lastPathComponent
            let key = (name as NSString).deletingPathExtension
            guard (relative as NSString).pathComponents.count == 3, key.count == 64 else { continue }
            files[key] = root + "/" + relative
        }
        return files
    }

    private func copyTree(from source: URL, to destination: URL, fileMode: mode_t, folderMode: mode_t) throws(BackupError) {
        guard mkdir(destination.path, folderMode) == 0 || errno == EEXIST else { throw posix(.stopped, "create", destination.path) }
        let entries: [String]
        do { entries = try FileManager.default.contentsOfDirectory(atPath: source.path) } catch {
            throw BackupError(.stopped, "list \(source.path): \(error)")
        }
        for name in entries.sorted() {
            let from = source.appendingPathComponent(name), to = destination.appendingPathComponent(name)
            var info = stat()
            guard lstat(from.path, &info) == 0 else { throw posix(.stopped, "stat", from.path) }
            switch info.st_mode & S_IFMT {
            case S_IFDIR: try copyTree(from: from, to: to, fileMode: fileMode, folderMode: folderMode)
            case S_IFREG: try copyFile(from: from.path, to: to.path, mode: fileMode)
            default: continue   // nothing else belongs in a store
            }
        }
        try syncFolder(destination.path)
    }

    /// Copies one file to a new file of `mode`, fsync'd.
    private func copyFile(from source: String, to destination: String, mode: mode_t) throws(BackupError) {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw posix(.stopped, "open", source) }
        defer { close(input) }
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard output >= 0 else { throw posix(.stopped, "create", destination) }
        defer { close(output) }
        _ = fchmod(output, mode)   // whatever the umask
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress!, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw posix(.stopped, "read", source) }
            if n == 0 { break }
            try Self.writeAll(output, Array(buffer[0..<n]), destination)
        }
        guard fsync(output) == 0 else { throw posix(.stopped, "fsync", destination) }
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], _ path: String) throws(BackupError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 { if errno == EINTR { continue }; throw posix(.stopped, "write", path) }
            done += n
        }
    }

    /// Makes a folder of many new links and files durable at once: Linux's sync(2) waits until every
    /// file system is written (Glibc's module does not offer syncfs(2)), cheaper than an fsync per folder.
    /// `path` must exist.
    private func sync(_ path: String) throws(BackupError) {
        guard exists(path) else { throw BackupError(.stopped, "\(path) is gone") }
        Glibc.sync()
    }

    private func syncFolder(_ path: String) throws(BackupError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw posix(.stopped, "open folder", path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw posix(.stopped, "fsync folder", path) }
    }

    private func posix(_ kind: BackupError.Kind, _ what: String, _ path: String) -> BackupError {
        Self.posix(kind, what, path)
    }

    static func posix(_ kind: BackupError.Kind, _ what: String, _ path: String) -> BackupError {
        let code = errno
        return BackupError(kind, "\(what) \(path): \(String(cString: strerror(code))) (errno \(code))")
    }
}
