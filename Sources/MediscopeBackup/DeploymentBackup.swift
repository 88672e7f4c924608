import CFileSupport
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
/// - `mediscope.sqlite` with every image a record uses, and `reports.sqlite` and `jobs.sqlite`, copied
///   while the analyses database's write lock is held (`SQLiteAnalysisStore.snapshot`): records, their
///   images and their report versions match (a delete removes the record before its report versions);
/// - then `accounts.sqlite` (users, sessions, tokens, audit log) by SQLite's online backup.
/// Uploads wait for the lock only while the databases are copied and the images added since the
/// links were made are linked.
///
/// The copy is assembled inside the store folder (its own file system, even when `var/store` is a
/// mount or a symlink), synced, then renamed into place or, on another file system, copied file by
/// file with fsync, the manifest last. It is checked before it counts as done.
///
/// The manifest is authenticated: `BACKUP.mac` holds its HMAC-SHA256 under the deployment's backup key
/// (`BackupKey`, kept outside every backup), and `verify` and `restore` refuse a backup whose manifest
/// does not match it. The manifest holds every database's SHA-256 and the images are named by theirs,
/// so a backup edited anywhere (a database, an image, the manifest, re-hashed or not) fails.
package struct DeploymentBackup: Sendable {
    package static let manifestName = "BACKUP.json"
    /// The file beside the manifest that authenticates it.
    package static let macName = BackupMAC.fileName
    /// Prefix of the folders a restore keeps the previous store in, beside the store folder.
    package static let restoredPrefix = "store.before-restore-"
    /// The databases a backup may hold, in the order they are copied.
    package static let databaseFiles = [SQLiteAnalysisStore.databaseFileName, SQLiteReportStore.fileName, JobQueue.fileName,
                                       AccountStores.sqliteFileName]
    /// Prefix of the folder a backup is assembled in, inside the store folder; `<pid>-<random>` follows.
    static let stagingPrefix = ".backup-staging-"
    /// Prefix of the folder a restore is assembled in, beside the store folder.
    static let restorePrefix = ".restore-"

    /// The live store folder (`var/store`), as configured.
    package let storeDirectory: URL
    /// The backup key's file: made by the first backup, read by every check and restore.
    package let keyFile: URL

    /// The deployment whose store is `storeDirectory`; its backup key is `keyFile`, by default
    /// `BackupKey.defaultFile(storeDirectory:)` (`var/backup.key`).
    package init(storeDirectory: URL, keyFile: URL? = nil) {
        self.storeDirectory = storeDirectory.standardizedFileURL
        self.keyFile = keyFile ?? BackupKey.defaultFile(storeDirectory: storeDirectory)
    }

    // MARK: - Backup

    /// Copies the store into `destination`, which must not exist or be an empty folder, outside the
    /// store, in an existing folder; then checks the copy (`verify`). `host` goes into the manifest,
    /// which is authenticated with the backup key (made now, 0600, if there is none yet).
    /// - Throws: `BackupError(.stopped)` when there is no SQLite deployment, the destination is not
    ///   free, the key cannot be read or made, or a file cannot be read or written (nothing is left at
    ///   `destination` then); `BackupError(.damaged)` when the finished copy does not pass its check.
    package func create(at destination: URL, host: String) throws(BackupError) -> BackupManifest {
        let store = Self.resolved(storeDirectory)
        let present = Self.databaseFiles.filter { exists(store.appendingPathComponent($0).path) }
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
        guard mkdir(staging.path, 0o700) == 0 else { throw Self.posix(.stopped, "create the staging folder", staging.path) }
        let claim = try Self.claim(staging.path)
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
        try writeNew(macBytes, to: staging.appendingPathComponent(Self.macName).path)
        try writeNew(manifestBytes, to: staging.appendingPathComponent(Self.manifestName).path)   // the manifest last
        try Self.syncFileSystem(staging.path)
        try place(staging, at: destination)
        return try Self.verify(destination, key: key)
    }

    /// Renames `staging` to `destination` (same file system) or copies it there file by file, fsync'd,
    /// the manifest last, so that an interrupted copy reads as unfinished, never as damaged.
    private func place(_ staging: URL, at destination: URL) throws(BackupError) {
        if exists(destination.path) { rmdir(destination.path) }   // an empty folder, checked before
        if rename(staging.path, destination.path) == 0 {
            try Self.syncFolder(destination.deletingLastPathComponent().path)
            return
        }
        // Another file system, or an empty mount point (EBUSY): copy file by file.
        guard errno == EXDEV || errno == EBUSY else { throw Self.posix(.stopped, "move the backup into place", destination.path) }
        do {
            try Self.copyTree(from: staging, to: destination, fileMode: 0o600, folderMode: 0o700, last: Self.manifestName)
            try Self.syncFolder(destination.deletingLastPathComponent().path)
        } catch {
            try? FileManager.default.removeItem(at: destination)
            throw error
        }
    }

    /// The destination, symlinks resolved, when it is free: missing or an empty folder, its parent
    /// there, and outside the store folder.
    private func freeDestination(_ destination: URL, store: URL) throws(BackupError) -> URL {
        let parent = Self.resolved(destination.standardizedFileURL.deletingLastPathComponent())
        guard Self.isFolder(parent.path) else {
            throw BackupError(.stopped, "\(parent.path) is not an existing folder: create it first")
        }
        let target = Self.isFolder(destination.path) ? Self.resolved(destination) : parent.appendingPathComponent(destination.lastPathComponent)
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

    /// Holds an exclusive flock on the folder at `path` for as long as the returned descriptor is open:
    /// the folder is in use, whichever process (or PID namespace) looks.
    static func claim(_ path: String) throws(BackupError) -> Int32 {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw posix(.stopped, "open", path) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw posix(.stopped, "claim", path)
        }
        return fd
    }

    /// Folders named `prefix…` in `folder` that no running backup or restore holds (flock), left by a
    /// killed one: removed when `disposable` says so, else renamed `<store>.before-restore-recovered-…`.
    static func removeAbandoned(in folder: URL, prefix: String, disposable: (URL) -> Bool) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [] where name.hasPrefix(prefix) {
            let path = folder.appendingPathComponent(name)
            guard let fd = try? claim(path.path) else { continue }   // in use: someone is working there
            defer { close(fd) }
            if disposable(path) {
                try? FileManager.default.removeItem(at: path)
            } else {
                rename(path.path, folder.appendingPathComponent("store.before-restore-recovered-\(name.dropFirst(prefix.count))").path)
            }
        }
    }

    // MARK: - Check

    /// `verify(_:key:)` with this deployment's backup key (`keyFile`), or `key` when given (a backup
    /// made by another deployment, or on a machine that lost its key).
    /// - Throws: as `verify(_:key:)`; `.stopped` when the key cannot be read.
    package func verify(_ backup: URL, key: BackupKey? = nil) throws(BackupError) -> BackupManifest {
        if let key { return try Self.verify(backup, key: key) }
        return try Self.verify(backup, key: BackupKey.load(from: keyFile))
    }

    /// Checks a backup folder against its manifest, after checking the manifest itself: `BACKUP.mac`
    /// must hold the HMAC-SHA256 of `BACKUP.json`'s bytes under `key` (nothing else is read from a
    /// manifest that fails). Then: only known databases, each once, with the manifest's size and
    /// SHA-256, passing SQLite's `integrity_check`; under `blobs/` only image files in the store's
    /// layout (`ab/cd/<sha256>.<ext>`, regular files), each holding what its name says; every image a
    /// record refers to present; nothing else in the folder. Files are opened without following links.
    /// Returns the manifest when it passes.
    /// - Throws: `BackupError(.damaged)` listing every problem found (an unauthenticated manifest is one
    ///   problem, said first and alone); `.stopped` when the manifest cannot be read (missing: not a
    ///   backup or an unfinished one; unreadable: permissions) or has an unknown format.
    package static func verify(_ backup: URL, key: BackupKey) throws(BackupError) -> BackupManifest {
        let manifestPath = backup.appendingPathComponent(manifestName).path
        guard access(backup.path, R_OK | X_OK) == 0 else {
            if errno == ENOENT { throw BackupError(.stopped, "\(backup.path) does not exist") }
            throw posix(.stopped, "cannot read the backup folder (run as the user who made the backup, or root):", backup.path)
        }
        var info = stat()
        guard lstat(manifestPath, &info) == 0 else {
            throw BackupError(.stopped, "no \(manifestName) in \(backup.path): not a Mediscope backup, or an unfinished one")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw BackupError(.damaged, "\(manifestPath) is not a regular file", problems: ["\(manifestName): not a regular file (a link or a folder)"])
        }
        let data: [UInt8]
        do { data = try readSmallFile(manifestPath) } catch {
            throw BackupError(.stopped, "cannot read (run as the user who made the backup, or root): \(error.message)")
        }
        let manifest: BackupManifest
        do { manifest = try BackupManifest.decoder.decode(BackupManifest.self, from: Data(data)) } catch {
            throw BackupError(.damaged, "\(manifestPath) is not a backup manifest", problems: ["\(manifestName): \(error)"])
        }
        if manifest.format == 1 {
            throw BackupError(.stopped, "backup format 1 was made before backups were authenticated (no \(macName)); this version checks "
                              + "and restores authenticated backups only: take a new backup (or restore this one with the version that made it)")
        }
        guard manifest.format == BackupManifest.currentFormat else {
            throw BackupError(.stopped, "backup format \(manifest.format) is not known to this version (it reads \(BackupManifest.currentFormat))")
        }
        if let problem = authenticate(backup, manifest: data, key: key) {
            throw BackupError(.damaged, "the backup in \(backup.path) is not authentic: it is neither checked further nor restored",
                              problems: [problem])
        }
        var problems: [String] = []
        var referenced: [String] = []
        var listed = Set<String>()
        if manifest.databases.isEmpty { problems.append("the manifest lists no databases: restoring it would leave an empty store") }
        let blobsPath = backup.appendingPathComponent(SQLiteAnalysisStore.blobFolderName).path
        if isSymlink(blobsPath) { problems.append("blobs: a link, not a folder") }
        for file in manifest.databases {
            // Names come from a file anyone may have edited: only ours, never a path.
            guard databaseFiles.contains(file.name), listed.insert(file.name).inserted else {
                problems.append("the manifest lists \(String(reflecting: file.name)), which is not a database of a Mediscope store (or is listed twice)")
                continue
            }
            let path = backup.appendingPathComponent(file.name).path
            guard isRegularFile(path), let read = try? fileDigest(path) else { problems.append("\(file.name): missing or unreadable"); continue }
            if read.bytes != file.bytes || read.sha256 != file.sha256 {
                problems.append("\(file.name): \(read.bytes) bytes, SHA-256 \(read.sha256); the manifest says \(file.bytes) bytes, \(file.sha256)")
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
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: backup.path)) ?? []).sorted()
        where !listed.contains(name) && name != manifestName && name != macName && name != SQLiteAnalysisStore.blobFolderName {
            problems.append("\(name): not in the manifest (a backup holds only its databases, \(manifestName), \(macName) and blobs/)")
        }
        let (images, strays) = isSymlink(blobsPath) ? ([:], []) : imageFiles(under: blobsPath)
        problems += strays.map { "blobs/\($0): not an image file in the store's layout (ab/cd/<sha256>.<ext>)" }
        for (key, path) in images.sorted(by: { $0.key < $1.key }) {
            guard let digest = (try? fileDigest(path))?.sha256 else { problems.append("image \(key): unreadable"); continue }
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

    /// Replaces the store folder by the backup in `backup`, after checking it; the server must be
    /// stopped. The new store is assembled beside the old one (every file's digest checked again as it
    /// is copied; modes as the store makes them whatever the umask; owned, when run as root, by the
    /// owner of the old store or of its parent), then swapped with it in one step (renameat2
    /// RENAME_EXCHANGE): a store is in place whenever the process stops. The old one is kept as
    /// `store.before-restore-<UTC time>`. A symlinked store folder is restored where it points.
    /// Returns where the old store folder went (nil when there was none).
    ///
    /// The backup is checked with this deployment's key (`keyFile`), or with `key` when given (the key
    /// of the deployment that made it: a new machine, or a lost key file); a given key is kept as this
    /// deployment's when it has none yet. Before anything is read, every file and folder of the backup
    /// must be owned by this user, root or the store's owner, and writable by its owner only: a backup
    /// others can change is not restored.
    /// - Throws: `BackupError(.damaged)` when the backup does not pass its check (nothing changes);
    ///   `.stopped` when the key cannot be read, others may change the backup's files, a file cannot be
    ///   copied or moved, or the store folder is a mount point.
    package func restore(from backup: URL, key given: BackupKey? = nil) throws(BackupError) -> URL? {
        let backup = Self.resolved(backup.standardizedFileURL)
        let key: BackupKey
        if let given { key = given } else { key = try BackupKey.load(from: keyFile) }
        let aside = try restore(resolvedBackup: backup, key: key)
        if let given, !exists(keyFile.path) {
            var folder = stat()
            let owner = geteuid() == 0 && stat(keyFile.deletingLastPathComponent().path, &folder) == 0 ? (folder.st_uid, folder.st_gid) : nil
            try given.write(to: keyFile, owner: owner)
        }
        return aside
    }

    private func restore(resolvedBackup backup: URL, key: BackupKey) throws(BackupError) -> URL? {
        let store = Self.resolved(storeDirectory)
        // Whose the store is: the old store's owner, else that of the nearest folder that exists.
        var owner = stat()
        var ancestor = store
        while stat(ancestor.path, &owner) != 0, ancestor.path != "/" { ancestor = ancestor.deletingLastPathComponent() }
        let unsafe = Self.ownershipProblems(backup, trusted: [geteuid(), 0, owner.st_uid])
        guard unsafe.isEmpty else {
            throw BackupError(.stopped, "not restored: files of \(backup.path) may be changed by other users, also between its check "
                              + "and the copy; give them to the user who restores (or root) and remove group and other write access "
                              + "(chmod -R go-w), then try again", problems: unsafe)
        }
        let manifest = try Self.verify(backup, key: key)
        try requireUnused(store)
        let parent = store.deletingLastPathComponent()
        try Self.makeFolders(parent, mode: 0o755, owner: geteuid() == 0 ? owner : nil)   // a new machine has no var/
        if Self.isFolder(store.path) {
            var storeInfo = stat(), parentInfo = stat()
            if stat(store.path, &storeInfo) == 0, stat(parent.path, &parentInfo) == 0, storeInfo.st_dev != parentInfo.st_dev {
                throw BackupError(.stopped, "\(store.path) is a mount point: restore swaps the store folder itself; mount its parent instead")
            }
        }
        // A killed restore left its folder: an assembly (marked) is removed; the old store (unmarked,
        // killed between swap and rename) is kept as store.before-restore-recovered-….
        Self.removeAbandoned(in: parent, prefix: Self.restorePrefix) { exists($0.appendingPathComponent(Self.assemblyMarker).path) }

        let assembling = parent.appendingPathComponent("\(Self.restorePrefix)\(getpid())-\(UInt64.random(in: 0...UInt64.max))")
        try Self.makeFolder(assembling.path, mode: 0o755)
        let claim = try Self.claim(assembling.path)
        defer { close(claim) }
        var swapped = false
        defer { if !swapped { try? FileManager.default.removeItem(at: assembling) } }
        let marker = assembling.appendingPathComponent(Self.assemblyMarker).path
        guard FileManager.default.createFile(atPath: marker, contents: nil) else { throw Self.posix(.stopped, "create", marker) }
        try Self.probeExchange(in: parent)

        for file in manifest.databases {
            let digest = try Self.copyFile(from: backup.appendingPathComponent(file.name).path,
                                           to: assembling.appendingPathComponent(file.name).path, mode: 0o600)
            guard digest == file.sha256 else { throw BackupError(.damaged, "\(file.name) changed while it was restored: run verify") }
        }
        let blobs = backup.appendingPathComponent(SQLiteAnalysisStore.blobFolderName)
        if Self.isFolder(blobs.path) {
            // As the store makes them: nginx reads images by exact path; nobody else may list them.
            try Self.copyTree(from: blobs, to: assembling.appendingPathComponent(SQLiteAnalysisStore.blobFolderName),
                              fileMode: 0o644, folderMode: 0o711, checkImages: true)
        }
        if geteuid() == 0 { try Self.chownTree(assembling.path, owner.st_uid, owner.st_gid) }
        try requireUnused(store)   // again: the copy took a while
        guard unlink(marker) == 0 else { throw Self.posix(.stopped, "remove", marker) }
        try Self.syncFileSystem(assembling.path)

        guard exists(store.path) else {
            guard rename(assembling.path, store.path) == 0 else { throw Self.posix(.stopped, "move the restored store into place", store.path) }
            swapped = true
            try Self.syncFolder(parent.path)
            return nil
        }
        guard ms_rename_exchange(assembling.path, store.path) == 0 else { throw Self.posix(.stopped, "swap the restored store into place", store.path) }
        swapped = true   // `assembling` now holds the old store: never remove it
        let stamp = ISO8601DateFormatter.string(from: Date(), timeZone: TimeZone(identifier: "UTC")!,
                                                formatOptions: [.withYear, .withMonth, .withDay, .withTime, .withTimeZone])  // 20261130T101500Z
        let aside = parent.appendingPathComponent("\(store.lastPathComponent).before-restore-\(stamp)")
        guard rename(assembling.path, aside.path) == 0 else {
            try? Self.syncFolder(parent.path)
            return assembling
        }
        try Self.syncFolder(parent.path)
        return aside
    }

    /// Marks a folder being assembled by a restore (removed just before the swap).
    static let assemblyMarker = ".assembling"

    /// Files and folders under `backup` (itself included; links are not followed) owned by a user not in
    /// `trusted`, or writable by group or others: one line each, at most 20.
    static func ownershipProblems(_ backup: URL, trusted: Set<uid_t>) -> [String] {
        var problems: [String] = []
        func visit(_ path: String, _ shown: String) {
            guard problems.count < 20 else { return }
            var info = stat()
            guard lstat(path, &info) == 0 else { return }
            if !trusted.contains(info.st_uid) { problems.append("\(shown): owned by user \(info.st_uid)") }
            if info.st_mode & 0o022 != 0 {
                problems.append("\(shown): group or others may change it (mode \(String(info.st_mode & 0o777, radix: 8)))")
            }
            guard info.st_mode & S_IFMT == S_IFDIR else { return }
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() {
                visit(path + "/" + name, shown == "." ? name : shown + "/" + name)
            }
        }
        visit(backup.path, ".")
        return problems
    }

    // MARK: - Stores kept by restores

    /// The previous stores restores kept beside the store folder (`store.before-restore-…`), each a full
    /// copy of patient data, with the time it was set aside (from its name, else its status change time).
    package func restoredStores() -> [(folder: URL, since: Date)] {
        let store = Self.resolved(storeDirectory)
        let parent = store.deletingLastPathComponent()
        let prefix = "\(store.lastPathComponent).before-restore-"
        let stamp = DateFormatter()
        stamp.locale = Locale(identifier: "en_US_POSIX")
        stamp.timeZone = TimeZone(identifier: "UTC")
        stamp.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        var found: [(folder: URL, since: Date)] = []
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: parent.path)) ?? []).sorted() where name.hasPrefix(prefix) {
            let path = parent.appendingPathComponent(name)
            var info = stat()
            guard lstat(path.path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { continue }
            let since = stamp.date(from: String(name.dropFirst(prefix.count)))
                ?? Date(timeIntervalSince1970: Double(info.st_ctim.tv_sec))
            found.append((path, since))
        }
        return found
    }

    /// Removes the stores `restoredStores` lists that were set aside more than `days` days before `now`;
    /// returns the folders removed.
    /// - Throws: `BackupError(.stopped)` when one cannot be removed (those before it are gone).
    package func removeRestoredStores(olderThanDays days: Int, now: Date = Date()) throws(BackupError) -> [URL] {
        var removed: [URL] = []
        for (folder, since) in restoredStores() where now.timeIntervalSince(since) > Double(days) * 86_400 {
            do { try FileManager.default.removeItem(at: folder) } catch {
                throw BackupError(.stopped, "remove the previous store \(folder.path): \(error.localizedDescription)")
            }
            removed.append(folder)
        }
        return removed
    }

    private func requireUnused(_ store: URL) throws(BackupError) {
        let users = Self.processesUsing(store)
        guard users.isEmpty else {
            throw BackupError(.stopped, "\(store.path) is in use by process \(users.map(String.init).joined(separator: ", ")): stop the server first")
        }
    }

    /// Whether this file system can swap two folders in one step (overlayfs without redirect_dir
    /// cannot): asked with two empty folders before anything is copied.
    static func probeExchange(in parent: URL) throws(BackupError) {
        let a = parent.appendingPathComponent(".swap-probe-\(getpid())-a").path, b = parent.appendingPathComponent(".swap-probe-\(getpid())-b").path
        defer { rmdir(a); rmdir(b) }
        guard mkdir(a, 0o700) == 0 || errno == EEXIST, mkdir(b, 0o700) == 0 || errno == EEXIST else { throw posix(.stopped, "create a probe folder in", parent.path) }
        guard ms_rename_exchange(a, b) == 0 else {
            throw posix(.stopped, "this file system cannot swap folders in one step (renameat2 RENAME_EXCHANGE), which restore needs:", parent.path)
        }
    }

    /// Creates `folder` and missing parents with `mode` (whatever the umask), given to `owner` when set.
    static func makeFolders(_ folder: URL, mode: mode_t, owner: stat?) throws(BackupError) {
        guard !isFolder(folder.path) else { return }
        try makeFolders(folder.deletingLastPathComponent(), mode: mode, owner: owner)
        try makeFolder(folder.path, mode: mode)
        if let owner, lchown(folder.path, owner.st_uid, owner.st_gid) != 0 { throw posix(.stopped, "change the owner of", folder.path) }
    }

    /// Processes other than this one with a file inside `folder` open (a server's workers keep the
    /// store's databases open), found through /proc/<pid>/fd.
    package static func processesUsing(_ folder: URL) -> [Int32] {
        let prefix = resolved(folder).path + "/"
        var pids: [Int32] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), pid != getpid() else { continue }
            let fds = "/proc/\(entry)/fd"
            for fd in (try? FileManager.default.contentsOfDirectory(atPath: fds)) ?? [] {
                if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fds)/\(fd)"), target.hasPrefix(prefix) {
                    pids.append(pid)
                    break
                }
            }
        }
        return pids.sorted()
    }

    // MARK: - Files

    private func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    /// `url` with symlinks resolved (realpath), or as given when it does not exist.
    static func resolved(_ url: URL) -> URL {
        guard let real = realpath(url.path, nil) else { return url }
        defer { free(real) }
        return URL(fileURLWithPath: String(cString: real))
    }

    static func isFolder(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    static func isRegularFile(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFREG
    }

    /// mkdir, then chmod: the mode whatever the umask.
    static func makeFolder(_ path: String, mode: mode_t) throws(BackupError) {
        guard mkdir(path, mode) == 0 || errno == EEXIST else { throw posix(.stopped, "create", path) }
        guard chmod(path, mode) == 0 else { throw posix(.stopped, "set the mode of", path) }
    }

    private func describe(_ name: String, at path: String) throws(BackupError) -> BackupManifest.DatabaseFile {
        do {
            let read = try Self.fileDigest(path)
            return BackupManifest.DatabaseFile(name: name, bytes: read.bytes, sha256: read.sha256)
        } catch {
            throw BackupError(.stopped, "read the copy of \(name): \(error)")
        }
    }

    /// Writes `bytes` to a new 0600 file at `path`, fsync'd.
    private func writeNew(_ bytes: [UInt8], to path: String) throws(BackupError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Self.posix(.stopped, "write", path) }
        defer { close(fd) }
        guard fchmod(fd, 0o600) == 0 else { throw Self.posix(.stopped, "set the mode of", path) }
        try Self.writeAll(fd, bytes, path)
        guard fsync(fd) == 0 else { throw Self.posix(.stopped, "fsync", path) }
    }

    /// The bytes of a regular file of at most 1 MiB (a manifest, a MAC), opened without following a link.
    static func readSmallFile(_ path: String) throws(BackupError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw posix(.stopped, "open", path) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { throw BackupError(.stopped, "\(path) is not a regular file") }
        let limit = 1 << 20
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw posix(.stopped, "read", path) }
            if n == 0 { break }
            bytes += buffer[0..<n]
            guard bytes.count <= limit else { throw BackupError(.stopped, "\(path) is larger than 1 MiB: not a file a backup writes") }
        }
        return bytes
    }

    /// Why `manifest` (BACKUP.json's bytes) is not authenticated by the backup's BACKUP.mac under `key`;
    /// nil when it is.
    static func authenticate(_ backup: URL, manifest: [UInt8], key: BackupKey) -> String? {
        let path = backup.appendingPathComponent(macName).path
        guard isRegularFile(path) else {
            return "\(macName) is missing (or not a regular file): \(manifestName) cannot be authenticated, so none of the backup can"
        }
        guard let bytes = try? readSmallFile(path), let mac = try? BackupManifest.decoder.decode(BackupMAC.self, from: Data(bytes)),
              mac.algorithm == BackupMAC.algorithmName else {
            return "\(macName) is not a MAC this version writes (\(BackupMAC.algorithmName))"
        }
        guard mac.keyId == key.id else {
            return "\(manifestName) was authenticated with another backup key (key \(mac.keyId); this key is \(key.id)): a backup of "
                + "another deployment, or made before this deployment's key was replaced. Pass the key it was made with (--key FILE)"
        }
        guard key.isValid(mac: mac.mac, for: manifest) else {
            return "\(manifestName) does not match its MAC under the backup key \(key.id): it was changed after the backup was made"
        }
        return nil
    }

    /// Size and lowercase hex SHA-256 of a file (not opened through a link), read in 1 MiB pieces.
    static func fileDigest(_ path: String) throws(BackupError) -> (bytes: Int, sha256: String) {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
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

    /// Image files under a blob folder in the store's layout (`ab/cd/<key>.<ext>`, regular files, key
    /// starting with `abcd`, a known extension), by key; and every other entry, relative to `root`.
    static func imageFiles(under root: String) -> (images: [String: String], strays: [String]) {
        var images: [String: String] = [:], strays: [String] = []
        let extensions = Set(SQLiteAnalysisStore.imageFileExtensions)
        func hexPair(_ s: String) -> Bool { s.count == 2 && s.allSatisfy { $0.isHexDigit && !$0.isUppercase } }
        func entries(_ path: String) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }
        guard isFolder(root) else { return ([:], []) }
        for first in entries(root) {
            guard hexPair(first), isFolder(root + "/" + first), !isSymlink(root + "/" + first) else { strays.append(first); continue }
            for second in entries(root + "/" + first) {
                let folder = "\(first)/\(second)"
                guard hexPair(second), isFolder(root + "/" + folder), !isSymlink(root + "/" + folder) else { strays.append(folder); continue }
                for name in entries(root + "/" + folder) {
                    let key = (name as NSString).deletingPathExtension, ext = (name as NSString).pathExtension
                    let path = "\(root)/\(folder)/\(name)"
                    guard key.count == 64, key.hasPrefix(first + second), key.allSatisfy({ $0.isHexDigit && !$0.isUppercase }),
                          extensions.contains(ext), isRegularFile(path), images[key] == nil else {
                        strays.append("\(folder)/\(name)")
                        continue
                    }
                    images[key] = path
                }
            }
        }
        return (images, strays)
    }

    static func isSymlink(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFLNK
    }

    /// Copies a folder tree (folders and regular files only), `last` (a top-level name) after the rest.
    /// With `checkImages`, each file's SHA-256 must match its name's key (a blob folder).
    static func copyTree(from source: URL, to destination: URL, fileMode: mode_t, folderMode: mode_t,
                         last: String? = nil, checkImages: Bool = false) throws(BackupError) {
        try makeFolder(destination.path, mode: folderMode)
        let entries: [String]
        do { entries = try FileManager.default.contentsOfDirectory(atPath: source.path) } catch {
            throw BackupError(.stopped, "list \(source.path): \(error)")
        }
        for name in entries.sorted(by: { ($0 == last ? 1 : 0, $0) < ($1 == last ? 1 : 0, $1) }) {
            let from = source.appendingPathComponent(name), to = destination.appendingPathComponent(name)
            var info = stat()
            guard lstat(from.path, &info) == 0 else { throw posix(.stopped, "stat", from.path) }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                try copyTree(from: from, to: to, fileMode: fileMode, folderMode: folderMode, checkImages: checkImages)
            case S_IFREG:
                let digest = try copyFile(from: from.path, to: to.path, mode: fileMode)
                if checkImages, digest != (name as NSString).deletingPathExtension {
                    throw BackupError(.damaged, "image \(name) changed while it was copied: run verify")
                }
            default:
                throw BackupError(.damaged, "\(from.path) is neither a file nor a folder")
            }
        }
        try syncFolder(destination.path)
    }

    /// Copies one regular file to a new file of `mode` (whatever the umask), fsync'd, neither opened
    /// through a link; returns the SHA-256 of what it copied.
    static func copyFile(from source: String, to destination: String, mode: mode_t) throws(BackupError) -> String {
        let input = open(source, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard input >= 0 else { throw posix(.stopped, "open", source) }
        defer { close(input) }
        var info = stat()
        guard fstat(input, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { throw BackupError(.damaged, "\(source) is not a regular file") }
        let output = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard output >= 0 else { throw posix(.stopped, "create", destination) }
        defer { close(output) }
        guard fchmod(output, mode) == 0 else { throw posix(.stopped, "set the mode of", destination) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress!, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw posix(.stopped, "read", source) }
            if n == 0 { break }
            hasher.update(data: buffer[0..<n])
            try writeAll(output, Array(buffer[0..<n]), destination)
        }
        guard fsync(output) == 0 else { throw posix(.stopped, "fsync", destination) }
        return Hex.encode(hasher.finalize())
    }

    /// lchown of a folder tree (a restore run as root gives the store back to the service's user).
    static func chownTree(_ path: String, _ uid: uid_t, _ gid: gid_t) throws(BackupError) {
        guard lchown(path, uid, gid) == 0 else { throw posix(.stopped, "change the owner of", path) }
        guard isFolder(path), !isSymlink(path) else { return }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
            try chownTree(path + "/" + name, uid, gid)
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], _ path: String) throws(BackupError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 { if errno == EINTR { continue }; throw posix(.stopped, "write", path) }
            done += n
        }
    }

    /// Writes out the file system that holds `path` (syncfs): one call for a folder of many new links
    /// and files, instead of an fsync per folder.
    static func syncFileSystem(_ path: String) throws(BackupError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw posix(.stopped, "open", path) }
        defer { close(fd) }
        guard ms_syncfs(fd) == 0 else { throw posix(.stopped, "syncfs", path) }
    }

    static func syncFolder(_ path: String) throws(BackupError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw posix(.stopped, "open folder", path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw posix(.stopped, "fsync folder", path) }
    }

    static func posix(_ kind: BackupError.Kind, _ what: String, _ path: String) -> BackupError {
        let code = errno
        return BackupError(kind, "\(what) \(path): \(String(cString: strerror(code))) (errno \(code))")
    }
}
