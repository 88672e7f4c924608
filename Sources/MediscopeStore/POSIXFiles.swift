import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A system call that failed: what was being done, at which path, and `errno` right after it. Each
/// caller words it as its own error (`StoreError`, the backup's `BackupError`), so one copy of the
/// calls serves modules whose messages differ.
package struct POSIXFailure: Error, Sendable {
    /// What was being done, e.g. `fsync folder`.
    package let what: String
    /// The file or folder it was done to.
    package let path: String
    /// `errno` as the failed call left it.
    package let code: Int32

    /// Reads `errno` now: make it right after the call that failed, before anything else can change it.
    package init(_ what: String, _ path: String) {
        code = errno
        self.what = what
        self.path = path
    }

    /// strerror's words and the number, e.g. `No such file or directory (errno 2)`.
    package var reason: String { "\(String(cString: strerror(code))) (errno \(code))" }
}

/// The file-system calls the image store (`BlobFolder`) and the deployment backup both make, once:
/// file types without following links where it matters, whole reads and writes that survive EINTR and
/// short counts, a folder's fsync, and a folder's names.
package enum POSIXFiles {
    /// The type bits (`st_mode & S_IFMT`) of what is at `path`, nil when nothing is (or it cannot be
    /// stat'd). `followingLinks` false: a symlink is reported as one (lstat), never as its target.
    package static func fileType(_ path: String, followingLinks: Bool) -> mode_t? {
        var info = stat()
        let found = followingLinks ? stat(path, &info) : lstat(path, &info)
        return found == 0 ? info.st_mode & S_IFMT : nil
    }

    /// Whether `path` is a folder, or a link to one.
    package static func isFolder(_ path: String) -> Bool { fileType(path, followingLinks: true) == S_IFDIR }

    /// Whether `path` itself is a regular file (a link to one is not).
    package static func isRegularFile(_ path: String) -> Bool { fileType(path, followingLinks: false) == S_IFREG }

    /// Whether `path` itself is a symbolic link.
    package static func isSymlink(_ path: String) -> Bool { fileType(path, followingLinks: false) == S_IFLNK }

    /// Fills `buffer` from `fd`, retrying after EINTR and short reads; returns how many bytes it read,
    /// fewer than the buffer holds only at the end of the file.
    /// - Throws: `POSIXFailure(what, path)` when read(2) fails.
    package static func readFully(_ fd: Int32, into buffer: inout [UInt8], what: String, path: String) throws(POSIXFailure) -> Int {
        var done = 0
        let count = buffer.count
        while done < count {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, count - done) }
            if n < 0 { if errno == EINTR { continue }; throw POSIXFailure(what, path) }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// The whole file at `path`, read straight into one buffer of its size (no second copy, as
    /// `Data` then `Array` would make of a DICOM instance of hundreds of MB); nil when there is none.
    /// - Throws: `POSIXFailure` (`open <what>`, `stat <what>`, `read <what>`).
    package static func readFile(_ path: String, what: String) throws(POSIXFailure) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw POSIXFailure("open \(what)", path)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw POSIXFailure("stat \(what)", path) }
        let size = Int(st.st_size)
        var bytes = [UInt8](repeating: 0, count: size)
        let done = try readFully(fd, into: &bytes, what: "read \(what)", path: path)
        if done < size { bytes.removeSubrange(done...) }   // shortened meanwhile
        return bytes
    }

    /// Writes every byte of `bytes` to `fd`, retrying after EINTR and short writes.
    /// - Throws: `POSIXFailure(what, path)` when write(2) fails.
    package static func writeAll(_ fd: Int32, _ bytes: [UInt8], what: String, path: String) throws(POSIXFailure) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 { if errno == EINTR { continue }; throw POSIXFailure(what, path) }
            done += n
        }
    }

    /// fsync of the folder at `path`: the entries made, renamed or removed in it are on stable storage
    /// once it returns (a file's own fsync does not cover its name).
    /// - Throws: `POSIXFailure` (`open folder` or `fsync folder`).
    package static func fsyncFolder(_ path: String) throws(POSIXFailure) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw POSIXFailure("open folder", path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw POSIXFailure("fsync folder", path) }
    }

    /// The names in the folder at `path` (not `.` and `..`), in readdir's order.
    /// - Throws: `POSIXFailure` (`list folder`) when it cannot be opened.
    package static func listFolder(_ path: String) throws(POSIXFailure) -> [String] {
        guard let dir = opendir(path) else { throw POSIXFailure("list folder", path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
