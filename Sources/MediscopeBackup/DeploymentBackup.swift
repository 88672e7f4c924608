import Foundation
import Glibc
import MediscopeAuth
import MediscopeJobs
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

    /// Folders named `prefix…` in `folder` that no running backup or restore holds (flock), left by a
    /// killed one: removed when `disposable` says so, else renamed `<store>.before-restore-recovered-…`.
    static func removeAbandoned(in folder: URL, prefix: String, disposable: (URL) -> Bool) {
        for name in BackupFiles.names(in: folder.path) where name.hasPrefix(prefix) {
            let path = folder.appendingPathComponent(name)
            guard let fd = try? BackupFiles.claim(path.path) else { continue }   // in use: someone is working there
            defer { close(fd) }
            if disposable(path) {
                try? FileManager.default.removeItem(at: path)
            } else {
                rename(path.path, folder.appendingPathComponent("store.before-restore-recovered-\(name.dropFirst(prefix.count))").path)
            }
        }
    }
}
