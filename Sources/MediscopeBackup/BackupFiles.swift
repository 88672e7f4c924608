import CFileSupport
import Crypto
import Foundation
import Glibc
import MediscopeEncoding
import MediscopeStore

/// The file-system work of backups, checks and restores, failing with `BackupError` in words that name
/// the file and errno. The calls the image store makes too (whole reads and writes, a folder's fsync,
/// file types) are `POSIXFiles`' single copy; what is here is the backup's own: copies that hash what
/// they copy, links never followed, modes whatever the umask, flock claims, syncfs.
enum BackupFiles {
    /// A failed call in the backup's words: "<what> <path>: <strerror> (errno N)".
    static func failed(_ kind: BackupError.Kind, _ failure: POSIXFailure) -> BackupError {
        BackupError(kind, "\(failure.what) \(failure.path): \(failure.reason)")
    }

    /// `failed` for the call that just failed (reads errno now).
    static func posix(_ kind: BackupError.Kind, _ what: String, _ path: String) -> BackupError {
        failed(kind, POSIXFailure(what, path))
    }

    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    /// The names in a folder; none when it cannot be read (the callers look for leftovers, owners or
    /// strays, and an unreadable folder has none to show).
    static func names(in path: String) -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] }

    /// `url` with symlinks resolved (realpath), or as given when it does not exist.
    static func resolved(_ url: URL) -> URL {
        guard let real = realpath(url.path, nil) else { return url }
        defer { free(real) }
        return URL(fileURLWithPath: String(cString: real))
    }

    /// mkdir, then chmod: the mode whatever the umask.
    static func makeFolder(_ path: String, mode: mode_t) throws(BackupError) {
        guard mkdir(path, mode) == 0 || errno == EEXIST else { throw posix(.stopped, "create", path) }
        guard chmod(path, mode) == 0 else { throw posix(.stopped, "set the mode of", path) }
    }

    /// Creates `folder` and missing parents with `mode` (whatever the umask), given to `owner` when set.
    static func makeFolders(_ folder: URL, mode: mode_t, owner: stat?) throws(BackupError) {
        guard !POSIXFiles.isFolder(folder.path) else { return }
        try makeFolders(folder.deletingLastPathComponent(), mode: mode, owner: owner)
        try makeFolder(folder.path, mode: mode)
        if let owner, lchown(folder.path, owner.st_uid, owner.st_gid) != 0 { throw posix(.stopped, "change the owner of", folder.path) }
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

    // MARK: - Reading

    /// Reads the open file `fd` to its end in pieces of at most `pieceSize` bytes, each handed to `body`.
    /// - Throws: `.stopped` ("read <path>: …") when read(2) fails; whatever `body` throws.
    static func forEachPiece(of fd: Int32, pieceSize: Int, path: String,
                             _ body: (ArraySlice<UInt8>) throws(BackupError) -> Void) throws(BackupError) {
        var buffer = [UInt8](repeating: 0, count: pieceSize)
        while true {
            let n: Int
            do { n = try POSIXFiles.readFully(fd, into: &buffer, what: "read", path: path) } catch { throw failed(.stopped, error) }
            if n == 0 { break }
            try body(buffer[0..<n])
        }
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
        try forEachPiece(of: fd, pieceSize: 64 << 10, path: path) { piece throws(BackupError) in
            bytes += piece
            guard bytes.count <= limit else { throw BackupError(.stopped, "\(path) is larger than 1 MiB: not a file a backup writes") }
        }
        return bytes
    }

    /// Size and lowercase hex SHA-256 of a file (not opened through a link), read in 1 MiB pieces.
    static func fileDigest(_ path: String) throws(BackupError) -> (bytes: Int, sha256: String) {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw posix(.stopped, "open", path) }
        defer { close(fd) }
        var hasher = SHA256()
        var total = 0
        try forEachPiece(of: fd, pieceSize: 1 << 20, path: path) { piece in
            hasher.update(data: piece)
            total += piece.count
        }
        return (total, Hex.encode(hasher.finalize()))
    }

    // MARK: - Writing

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], _ path: String) throws(BackupError) {
        do { try POSIXFiles.writeAll(fd, bytes, what: "write", path: path) } catch { throw failed(.stopped, error) }
    }

    /// Writes `bytes` to a new 0600 file at `path`, fsync'd.
    static func writeNew(_ bytes: [UInt8], to path: String) throws(BackupError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw posix(.stopped, "write", path) }
        defer { close(fd) }
        guard fchmod(fd, 0o600) == 0 else { throw posix(.stopped, "set the mode of", path) }
        try writeAll(fd, bytes, path)
        guard fsync(fd) == 0 else { throw posix(.stopped, "fsync", path) }
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
        try forEachPiece(of: input, pieceSize: 1 << 20, path: source) { piece throws(BackupError) in
            hasher.update(data: piece)
            try writeAll(output, Array(piece), destination)
        }
        guard fsync(output) == 0 else { throw posix(.stopped, "fsync", destination) }
        return Hex.encode(hasher.finalize())
    }

    /// lchown of a folder tree (a restore run as root gives the store back to the service's user).
    static func chownTree(_ path: String, _ uid: uid_t, _ gid: gid_t) throws(BackupError) {
        guard lchown(path, uid, gid) == 0 else { throw posix(.stopped, "change the owner of", path) }
        guard POSIXFiles.isFolder(path), !POSIXFiles.isSymlink(path) else { return }
        for name in names(in: path) {
            try chownTree(path + "/" + name, uid, gid)
        }
    }

    // MARK: - Syncing

    /// Writes out the file system that holds `path` (syncfs): one call for a folder of many new links
    /// and files, instead of an fsync per folder.
    static func syncFileSystem(_ path: String) throws(BackupError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw posix(.stopped, "open", path) }
        defer { close(fd) }
        guard ms_syncfs(fd) == 0 else { throw posix(.stopped, "syncfs", path) }
    }

    /// fsync of a folder: its new, renamed or removed entries are durable.
    static func syncFolder(_ path: String) throws(BackupError) {
        do { try POSIXFiles.fsyncFolder(path) } catch { throw failed(.stopped, error) }
    }
}
