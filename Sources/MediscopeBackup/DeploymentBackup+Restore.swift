import CFileSupport
import Foundation
import Glibc
import MediscopeStore

// Restoring a backup: checked, assembled beside the store, swapped in whole; and the previous stores
// restores keep.
extension DeploymentBackup {
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
        let backup = BackupFiles.resolved(backup.standardizedFileURL)
        let key: BackupKey
        if let given { key = given } else { key = try BackupKey.load(from: keyFile) }
        let aside = try restore(resolvedBackup: backup, key: key)
        if let given, !BackupFiles.exists(keyFile.path) {
            var folder = stat()
            let owner = geteuid() == 0 && stat(keyFile.deletingLastPathComponent().path, &folder) == 0 ? (folder.st_uid, folder.st_gid) : nil
            try given.write(to: keyFile, owner: owner)
        }
        return aside
    }

    private func restore(resolvedBackup backup: URL, key: BackupKey) throws(BackupError) -> URL? {
        let store = BackupFiles.resolved(storeDirectory)
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
        try BackupFiles.makeFolders(parent, mode: 0o755, owner: geteuid() == 0 ? owner : nil)   // a new machine has no var/
        if POSIXFiles.isFolder(store.path) {
            var storeInfo = stat(), parentInfo = stat()
            if stat(store.path, &storeInfo) == 0, stat(parent.path, &parentInfo) == 0, storeInfo.st_dev != parentInfo.st_dev {
                throw BackupError(.stopped, "\(store.path) is a mount point: restore swaps the store folder itself; mount its parent instead")
            }
        }
        // A killed restore left its folder: an assembly (marked) is removed; the old store (unmarked,
        // killed between swap and rename) is kept as store.before-restore-recovered-….
        Self.removeAbandoned(in: parent, prefix: Self.restorePrefix) { BackupFiles.exists($0.appendingPathComponent(Self.assemblyMarker).path) }

        let assembling = parent.appendingPathComponent("\(Self.restorePrefix)\(getpid())-\(UInt64.random(in: 0...UInt64.max))")
        try BackupFiles.makeFolder(assembling.path, mode: 0o755)
        let claim = try BackupFiles.claim(assembling.path)
        defer { close(claim) }
        var swapped = false
        defer { if !swapped { try? FileManager.default.removeItem(at: assembling) } }
        let marker = assembling.appendingPathComponent(Self.assemblyMarker).path
        guard FileManager.default.createFile(atPath: marker, contents: nil) else { throw BackupFiles.posix(.stopped, "create", marker) }
        try Self.probeExchange(in: parent)

        for file in manifest.databases {
            let digest = try BackupFiles.copyFile(from: backup.appendingPathComponent(file.name).path,
                                           to: assembling.appendingPathComponent(file.name).path, mode: 0o600)
            guard digest == file.sha256 else { throw BackupError(.damaged, "\(file.name) changed while it was restored: run verify") }
        }
        let blobs = backup.appendingPathComponent(SQLiteAnalysisStore.blobFolderName)
        if POSIXFiles.isFolder(blobs.path) {
            // As the store makes them: nginx reads images by exact path; nobody else may list them.
            try BackupFiles.copyTree(from: blobs, to: assembling.appendingPathComponent(SQLiteAnalysisStore.blobFolderName),
                              fileMode: 0o644, folderMode: 0o711, checkImages: true)
        }
        if geteuid() == 0 { try BackupFiles.chownTree(assembling.path, owner.st_uid, owner.st_gid) }
        try requireUnused(store)   // again: the copy took a while
        guard unlink(marker) == 0 else { throw BackupFiles.posix(.stopped, "remove", marker) }
        try BackupFiles.syncFileSystem(assembling.path)

        guard BackupFiles.exists(store.path) else {
            guard rename(assembling.path, store.path) == 0 else { throw BackupFiles.posix(.stopped, "move the restored store into place", store.path) }
            swapped = true
            try BackupFiles.syncFolder(parent.path)
            return nil
        }
        guard ms_rename_exchange(assembling.path, store.path) == 0 else { throw BackupFiles.posix(.stopped, "swap the restored store into place", store.path) }
        swapped = true   // `assembling` now holds the old store: never remove it
        let stamp = ISO8601DateFormatter.string(from: Date(), timeZone: TimeZone(identifier: "UTC")!,
                                                formatOptions: [.withYear, .withMonth, .withDay, .withTime, .withTimeZone])  // 20261130T101500Z
        let aside = parent.appendingPathComponent("\(store.lastPathComponent).before-restore-\(stamp)")
        guard rename(assembling.path, aside.path) == 0 else {
            try? BackupFiles.syncFolder(parent.path)
            return assembling
        }
        try BackupFiles.syncFolder(parent.path)
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
            for name in BackupFiles.names(in: path).sorted() {
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
        let store = BackupFiles.resolved(storeDirectory)
        let parent = store.deletingLastPathComponent()
        let prefix = "\(store.lastPathComponent).before-restore-"
        let stamp = DateFormatter()
        stamp.locale = Locale(identifier: "en_US_POSIX")
        stamp.timeZone = TimeZone(identifier: "UTC")
        stamp.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        var found: [(folder: URL, since: Date)] = []
        for name in BackupFiles.names(in: parent.path).sorted() where name.hasPrefix(prefix) {
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

    // MARK: - Before the swap

    /// Throws `.stopped` naming the processes that have a file of `store` open (a running server).
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
        guard mkdir(a, 0o700) == 0 || errno == EEXIST, mkdir(b, 0o700) == 0 || errno == EEXIST else { throw BackupFiles.posix(.stopped, "create a probe folder in", parent.path) }
        guard ms_rename_exchange(a, b) == 0 else {
            throw BackupFiles.posix(.stopped, "this file system cannot swap folders in one step (renameat2 RENAME_EXCHANGE), which restore needs:", parent.path)
        }
    }

    /// Processes other than this one with a file inside `folder` open (a server's workers keep the
    /// store's databases open), found through /proc/<pid>/fd.
    package static func processesUsing(_ folder: URL) -> [Int32] {
        let prefix = BackupFiles.resolved(folder).path + "/"
        var pids: [Int32] = []
        for entry in BackupFiles.names(in: "/proc") {
            guard let pid = Int32(entry), pid != getpid() else { continue }
            let fds = "/proc/\(entry)/fd"
            for fd in BackupFiles.names(in: fds) {
                if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fds)/\(fd)"), target.hasPrefix(prefix) {
                    pids.append(pid)
                    break
                }
            }
        }
        return pids.sorted()
    }
}
