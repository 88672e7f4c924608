import Crypto
import Foundation
import Glibc
import MediscopeEncoding

/// The secret that authenticates backups: HMAC-SHA256 over the exact bytes of `BACKUP.json`, written to
/// `BACKUP.mac` beside it. The key never goes into a backup: it lives beside the store folder
/// (`var/backup.key`, made 0600 by the first backup), so whoever can write to the backup share can
/// change a backup but cannot make it pass `verify` or `restore` again. Keep a copy of the key with
/// the backups' other secrets (a password safe): a new machine restores with `--key FILE`.
///
/// The file holds the key as 64 hexadecimal digits on one line. It is read only when it is a regular
/// file (no link), owned by the user reading it, by root, or (for root) by the owner of its folder,
/// and neither group nor others may read or write it.
package struct BackupKey: Sendable {
    /// The key file's name beside the store folder.
    package static let fileName = "backup.key"

    let key: SymmetricKey
    /// Names the key in `BACKUP.mac` and in messages: the first 16 hex digits of the key's SHA-256,
    /// which tell two keys apart and reveal nothing of either.
    package let id: String

    init(bytes: [UInt8]) {
        key = SymmetricKey(data: bytes)
        id = String(SHA256Hex.digest(bytes).prefix(16))
    }

    /// Where a store's backups find their key: `backup.key` in the folder that holds the store folder
    /// (`var/`), so a restore, which swaps the store folder, keeps it.
    package static func defaultFile(storeDirectory: URL) -> URL {
        storeDirectory.standardizedFileURL.deletingLastPathComponent().appendingPathComponent(fileName)
    }

    /// Reads the key at `file`.
    /// - Throws: `BackupError(.stopped)` when it is missing, not a regular file, owned by someone else,
    ///   open to group or others, or not 64 hex digits: the message says which and what to do.
    package static func load(from file: URL) throws(BackupError) -> BackupKey {
        let path = file.path
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT {
                throw BackupError(.stopped, "no backup key at \(path): backups are authenticated with the key of the deployment that "
                                  + "made them (the first backup makes it); pass a copy of it with --key FILE")
            }
            if code == ELOOP { throw BackupError(.stopped, "the backup key \(path) is a symbolic link: a key is read from a regular file only") }
            throw BackupFiles.posix(.stopped, "cannot read the backup key", path)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw BackupFiles.posix(.stopped, "stat the backup key", path) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw BackupError(.stopped, "the backup key \(path) is not a regular file") }
        guard trustedOwners(of: file).contains(info.st_uid) else {
            throw BackupError(.stopped, "the backup key \(path) belongs to user \(info.st_uid), not to this user (\(geteuid())) or root: "
                              + "someone else could have put it there; check it, then chown it")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw BackupError(.stopped, "the backup key \(path) has mode \(String(info.st_mode & 0o777, radix: 8)): group or others "
                              + "may read or change it; chmod 600 it (and make a new key if others read it)")
        }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        guard n >= 0 else { throw BackupFiles.posix(.stopped, "read the backup key", path) }
        let text = String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.utf8.count == 64, let bytes = Self.hexBytes(text) else {
            throw BackupError(.stopped, "the backup key \(path) is not 64 hexadecimal digits")
        }
        return BackupKey(bytes: bytes)
    }

    /// The key at `file`, made first (32 random bytes, 0600, given to `owner` when set) when there is
    /// none. `created` says whether it was made now.
    static func loadOrCreate(at file: URL, owner: (uid: uid_t, gid: gid_t)?) throws(BackupError) -> (key: BackupKey, created: Bool) {
        var random = SystemRandomNumberGenerator()
        let key = BackupKey(bytes: (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) })
        var info = stat()
        if lstat(file.path, &info) == 0 { return (try load(from: file), false) }
        do {
            try key.write(to: file, owner: owner)
            return (key, true)
        } catch {
            guard lstat(file.path, &info) == 0 else { throw error }
            return (try load(from: file), false)   // made meanwhile by a backup running beside this one
        }
    }

    /// Writes this key to a new file at `file` (0600 whatever the umask, given to `owner` when set,
    /// fsync'd with its folder). Never replaces a file that is there.
    func write(to file: URL, owner: (uid: uid_t, gid: gid_t)?) throws(BackupError) {
        let path = file.path
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BackupFiles.posix(.stopped, "create the backup key", path) }
        var written = false
        defer { if !written { unlink(path) } }
        do {
            defer { close(fd) }
            guard fchmod(fd, 0o600) == 0 else { throw BackupFiles.posix(.stopped, "set the mode of", path) }
            if let owner, fchown(fd, owner.uid, owner.gid) != 0 { throw BackupFiles.posix(.stopped, "change the owner of", path) }
            let hex = key.withUnsafeBytes { Hex.encode($0) }
            try BackupFiles.writeAll(fd, Array((hex + "\n").utf8), path)
            guard fsync(fd) == 0 else { throw BackupFiles.posix(.stopped, "fsync", path) }
        }
        try BackupFiles.syncFolder(file.deletingLastPathComponent().path)
        written = true
    }

    /// Whose key file is trusted: this user's, root's, and, for root, that of the folder holding it
    /// (the service's user, whose backups root may check or restore).
    static func trustedOwners(of file: URL) -> Set<uid_t> {
        var owners: Set<uid_t> = [geteuid(), 0]
        var folder = stat()
        if geteuid() == 0, stat(file.deletingLastPathComponent().path, &folder) == 0 { owners.insert(folder.st_uid) }
        return owners
    }

    /// The bytes of lowercase or uppercase hex text of even length; nil for anything else.
    static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count.isMultiple(of: 2) else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var i = 0
        while i < digits.count {
            guard let high = value(digits[i]), let low = value(digits[i + 1]) else { return nil }
            bytes.append(high << 4 | low)
            i += 2
        }
        return bytes
    }

    /// Domain separation: this MAC authenticates a backup manifest and nothing else.
    static let context = Array("mediscope backup manifest\n".utf8)

    /// The HMAC-SHA256 of `manifest` (the exact bytes of BACKUP.json), lowercase hex.
    func mac(_ manifest: [UInt8]) -> String {
        Hex.encode(HMAC<SHA256>.authenticationCode(for: Self.context + manifest, using: key))
    }

    /// Whether `hex` is the MAC of `manifest` under this key (compared in constant time).
    func isValid(mac hex: String, for manifest: [UInt8]) -> Bool {
        guard hex.utf8.count == 64, let code = Self.hexBytes(hex) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: Self.context + manifest, using: key)
    }
}

/// `BACKUP.mac`: the manifest's MAC and the key it was made with (by id). Written before BACKUP.json,
/// which stays the last file of a finished backup.
struct BackupMAC: Codable, Sendable, Equatable {
    static let fileName = "BACKUP.mac"
    static let algorithmName = "HMAC-SHA256"
    var algorithm: String
    /// `BackupKey.id` of the key that made `mac`.
    var keyId: String
    /// Lowercase hex HMAC-SHA256 over the context and BACKUP.json's bytes.
    var mac: String
}
