import Foundation
import MediscopeImaging
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// `link` is also a method here: the C call goes through this name.
private func sysLink(_ existing: String, _ new: String) -> Int32 { link(existing, new) }

/// Content-addressed image files: `root/ab/cd/<sha256hex>.<ext>`.
/// Writes are temp file (same folder) + write all + fsync + rename + fsync of the folder, so a file
/// under its final name always holds its full, durable content.
struct BlobFolder: Sendable {
    let root: String   // absolute, no trailing slash

    static let tempPrefix = ".tmp-"
    static let extensions = ImageFormat.allCases.map(\.fileExtension)

    static func fileExtension(contentType: String) -> String? { ImageFormat(contentType: contentType)?.fileExtension }

    /// 64 lowercase hex chars, nothing else: the only keys that ever reach the filesystem.
    static func isValidKey(_ key: String) -> Bool {
        let utf8 = key.utf8
        guard utf8.count == 64 else { return false }
        return utf8.allSatisfy { ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "f")) }
    }

    func folder(forKey key: String) -> String {
        let chars = Array(key)
        return "\(root)/\(chars[0])\(chars[1])/\(chars[2])\(chars[3])"
    }

    func path(forKey key: String, ext: String) -> String { "\(folder(forKey: key))/\(key).\(ext)" }

    // MARK: - Setup

    func createRoot() throws(StoreError) {
        try ensureDirectory(root)
    }

    // MARK: - Lookup

    /// The path of an existing regular file for this key (any extension), or nil. Key must be valid.
    func existingPath(forKey key: String) -> String? {
        guard Self.isValidKey(key) else { return nil }
        for ext in Self.extensions {
            let p = path(forKey: key, ext: ext)
            if POSIXFiles.fileType(p, followingLinks: true) == S_IFREG { return p }
        }
        return nil
    }

    func read(key: String) throws(StoreError) -> [UInt8]? {
        guard let p = existingPath(forKey: key) else { return nil }
        // nil when deleted meanwhile
        do { return try POSIXFiles.readFile(p, what: "image") } catch { throw Self.storeError(error) }
    }

    // MARK: - Durable write

    /// Writes `bytes` under the key unless a file of the same size already exists there.
    /// Returns once the file and its folder entry are on stable storage. `syncFolders` false (a cache,
    /// drawn again when lost): the file's content is still on stable storage before it gets its name,
    /// so a crash never leaves a partial file under it, but the folders are not synced: the entry may
    /// be lost in a crash, saving a first look up to three folder syncs.
    func write(key: String, ext: String, bytes: [UInt8], syncFolders: Bool = true) throws(StoreError) {
        guard Self.isValidKey(key) else { throw StoreError(.invalidRecord, "image key is not 64 lowercase hex chars") }
        let dir = folder(forKey: key)
        let chars = Array(key)
        try ensureDirectory("\(root)/\(chars[0])\(chars[1])", syncParent: syncFolders)
        try ensureDirectory(dir, syncParent: syncFolders)
        let final = path(forKey: key, ext: ext)

        var st = stat()
        if stat(final, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, Int(st.st_size) == bytes.count {
            // Already there. Its content was fsync'd before its rename; fsync the folder in case the
            // writer died between rename and folder fsync, so the entry itself is durable too.
            if syncFolders { try fsyncDirectory(dir) }
            return
        }

        let temp = "\(dir)/\(Self.tempPrefix)\(UInt64.random(in: 0...UInt64.max))"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw posixError("create temp image file", temp) }
        var ok = false
        defer { if !ok { unlink(temp) } }
        do {
            defer { close(fd) }
            do { try POSIXFiles.writeAll(fd, bytes, what: "write image", path: temp) } catch { throw Self.storeError(error) }
            guard fsync(fd) == 0 else { throw posixError("fsync image", temp) }
        }
        guard rename(temp, final) == 0 else { throw posixError("rename image into place", final) }
        ok = true
        if syncFolders { try fsyncDirectory(dir) }
    }

    /// Removes the files of a key (every extension). Missing files are fine.
    func remove(key: String) throws(StoreError) {
        guard Self.isValidKey(key) else { return }
        var removed = false
        for ext in Self.extensions {
            let p = path(forKey: key, ext: ext)
            if unlink(p) == 0 { removed = true } else if errno != ENOENT { throw posixError("remove image", p) }
        }
        if removed { try? fsyncDirectory(folder(forKey: key)) }
    }

    /// Hard-links the file of `key` into `other`, in the same layout (folders made 0711 whatever the
    /// umask; `made` remembers the folders made so far). Both folders must be on one file system.
    /// Returns false when this folder has no file for the key. Nothing is fsync'd: a snapshot made of
    /// many links is synced once by its maker (syncfs).
    func link(key: String, into other: BlobFolder, made: inout Set<String>) throws(StoreError) -> Bool {
        guard let source = existingPath(forKey: key) else { return false }
        let chars = Array(key)
        for dir in [other.root, "\(other.root)/\(chars[0])\(chars[1])", other.folder(forKey: key)] where !made.contains(dir) {
            if mkdir(dir, 0o711) != 0 && errno != EEXIST { throw posixError("create folder", dir) }
            _ = chmod(dir, 0o711)
            made.insert(dir)
        }
        let target = "\(other.folder(forKey: key))/\((source as NSString).lastPathComponent)"
        if sysLink(source, target) != 0 && errno != EEXIST { throw posixError("link image", target) }
        return true
    }

    /// Whether the folder accepts new files (creates and removes a probe file).
    func checkWritable() throws(StoreError) {
        let probe = "\(root)/\(Self.tempPrefix)ready-\(UInt64.random(in: 0...UInt64.max))"
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw posixError("image folder is not writable", root) }
        close(fd)
        unlink(probe)
    }

    // MARK: - Scan (garbage collection)

    struct Entry { let path: String; let name: String; let modified: Date }

    /// Every file two levels down (`ab/cd/*`), image or temp.
    func allFiles() throws(StoreError) -> [Entry] {
        var entries: [Entry] = []
        // Regular files only (lstat: a link is never followed, never counted).
        func add(_ folder: String, _ name: String) {
            let p = "\(folder)/\(name)"
            var st = stat()
            guard lstat(p, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return }
            entries.append(Entry(path: p, name: name, modified: Self.modificationDate(st)))
        }
        for level1 in try listDirectory(root) where Self.isHexPair(level1) {
            let p1 = "\(root)/\(level1)"
            for level2 in (try? listDirectory(p1)) ?? [] where Self.isHexPair(level2) {
                let p2 = "\(p1)/\(level2)"
                for name in (try? listDirectory(p2)) ?? [] { add(p2, name) }
            }
        }
        // Stale probe files at the top level too.
        for name in try listDirectory(root) where name.hasPrefix(Self.tempPrefix) { add(root, name) }
        return entries
    }

    func modificationDate(path: String) -> Date? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return Self.modificationDate(st)
    }

    /// The key of an image file name `<64 hex>.<ext>`, nil for anything else.
    static func key(fromFileName name: String) -> String? {
        guard let dot = name.firstIndex(of: ".") else { return nil }
        let key = String(name[..<dot]), ext = String(name[name.index(after: dot)...])
        guard isValidKey(key), extensions.contains(ext) else { return nil }
        return key
    }

    private static func isHexPair(_ s: String) -> Bool {
        s.utf8.count == 2 && isValidKey(String(repeating: s, count: 32))
    }

    private static func modificationDate(_ st: stat) -> Date {
        #if canImport(Darwin)
        let ts = st.st_mtimespec
        #else
        let ts = st.st_mtim
        #endif
        return Date(timeIntervalSince1970: Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9)
    }

    // MARK: - POSIX helpers

    private func listDirectory(_ path: String) throws(StoreError) -> [String] {
        do { return try POSIXFiles.listFolder(path) } catch { throw Self.storeError(error) }
    }

    private func ensureDirectory(_ path: String, syncParent: Bool = true) throws(StoreError) {
        if let type = POSIXFiles.fileType(path, followingLinks: true) {
            guard type == S_IFDIR else { throw StoreError(.io, "\(path) exists and is not a folder") }
            return
        }
        // nginx, another user, reads images by their exact path (X-Accel-Redirect); nobody but the
        // service may list which scans there are.
        if mkdir(path, 0o711) != 0 && errno != EEXIST { throw posixError("create folder", path) }
        // Make the new entry durable in its parent.
        let parent = (path as NSString).deletingLastPathComponent
        if syncParent { try fsyncDirectory(parent) }
    }

    /// fsync of a folder, so that the entries made or removed in it are durable.
    func fsyncDirectory(_ path: String) throws(StoreError) {
        do { try POSIXFiles.fsyncFolder(path) } catch { throw Self.storeError(error) }
    }

    private func posixError(_ what: String, _ path: String) -> StoreError { Self.storeError(POSIXFailure(what, path)) }

    /// A failed call in the store's words: `StoreError(.io)`, "<what> failed at <path>: <strerror> (errno N)".
    private static func storeError(_ failure: POSIXFailure) -> StoreError {
        StoreError(.io, "\(failure.what) failed at \(failure.path): \(failure.reason)")
    }
}
