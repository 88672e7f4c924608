import Foundation
import Glibc
import GRDB
import MediscopeStore

// Checking a backup: its manifest authenticated first, then every database and image against it.
extension DeploymentBackup {
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
            throw BackupFiles.posix(.stopped, "cannot read the backup folder (run as the user who made the backup, or root):", backup.path)
        }
        var info = stat()
        guard lstat(manifestPath, &info) == 0 else {
            throw BackupError(.stopped, "no \(manifestName) in \(backup.path): not a Mediscope backup, or an unfinished one")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw BackupError(.damaged, "\(manifestPath) is not a regular file", problems: ["\(manifestName): not a regular file (a link or a folder)"])
        }
        let data: [UInt8]
        do { data = try BackupFiles.readSmallFile(manifestPath) } catch {
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
        if POSIXFiles.isSymlink(blobsPath) { problems.append("blobs: a link, not a folder") }
        for file in manifest.databases {
            // Names come from a file anyone may have edited: only ours, never a path.
            guard databaseFiles.contains(file.name), listed.insert(file.name).inserted else {
                problems.append("the manifest lists \(String(reflecting: file.name)), which is not a database of a Mediscope store (or is listed twice)")
                continue
            }
            let path = backup.appendingPathComponent(file.name).path
            guard POSIXFiles.isRegularFile(path), let read = try? BackupFiles.fileDigest(path) else { problems.append("\(file.name): missing or unreadable"); continue }
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
        for name in BackupFiles.names(in: backup.path).sorted()
        where !listed.contains(name) && name != manifestName && name != macName && name != SQLiteAnalysisStore.blobFolderName {
            problems.append("\(name): not in the manifest (a backup holds only its databases, \(manifestName), \(macName) and blobs/)")
        }
        let (images, strays) = POSIXFiles.isSymlink(blobsPath) ? ([:], []) : imageFiles(under: blobsPath)
        problems += strays.map { "blobs/\($0): not an image file in the store's layout (ab/cd/<sha256>.<ext>)" }
        for (key, path) in images.sorted(by: { $0.key < $1.key }) {
            guard let digest = (try? BackupFiles.fileDigest(path))?.sha256 else { problems.append("image \(key): unreadable"); continue }
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

    /// Why `manifest` (BACKUP.json's bytes) is not authenticated by the backup's BACKUP.mac under `key`;
    /// nil when it is.
    static func authenticate(_ backup: URL, manifest: [UInt8], key: BackupKey) -> String? {
        let path = backup.appendingPathComponent(macName).path
        guard POSIXFiles.isRegularFile(path) else {
            return "\(macName) is missing (or not a regular file): \(manifestName) cannot be authenticated, so none of the backup can"
        }
        guard let bytes = try? BackupFiles.readSmallFile(path), let mac = try? BackupManifest.decoder.decode(BackupMAC.self, from: Data(bytes)),
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

    /// Image files under a blob folder in the store's layout (`ab/cd/<key>.<ext>`, regular files, key
    /// starting with `abcd`, a known extension), by key; and every other entry, relative to `root`.
    static func imageFiles(under root: String) -> (images: [String: String], strays: [String]) {
        var images: [String: String] = [:], strays: [String] = []
        let extensions = Set(SQLiteAnalysisStore.imageFileExtensions)
        func hexPair(_ s: String) -> Bool { s.count == 2 && s.allSatisfy { $0.isHexDigit && !$0.isUppercase } }
        func entries(_ path: String) -> [String] { BackupFiles.names(in: path).sorted() }
        // A link to a folder is a stray, not a way out of the backup.
        func realFolder(_ path: String) -> Bool { POSIXFiles.isFolder(path) && !POSIXFiles.isSymlink(path) }
        guard POSIXFiles.isFolder(root) else { return ([:], []) }
        for first in entries(root) {
            guard hexPair(first), realFolder(root + "/" + first) else { strays.append(first); continue }
            for second in entries(root + "/" + first) {
                let folder = "\(first)/\(second)"
                guard hexPair(second), realFolder(root + "/" + folder) else { strays.append(folder); continue }
                for name in entries(root + "/" + folder) {
                    let key = (name as NSString).deletingPathExtension, ext = (name as NSString).pathExtension
                    let path = "\(root)/\(folder)/\(name)"
                    guard key.count == 64, key.hasPrefix(first + second), key.allSatisfy({ $0.isHexDigit && !$0.isUppercase }),
                          extensions.contains(ext), POSIXFiles.isRegularFile(path), images[key] == nil else {
                        strays.append("\(folder)/\(name)")
                        continue
                    }
                    images[key] = path
                }
            }
        }
        return (images, strays)
    }
}
