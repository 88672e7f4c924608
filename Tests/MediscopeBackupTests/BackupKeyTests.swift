import Foundation
import MediscopeBackup
import MediscopeEncoding
import Testing
import TestSupport

/// The backup key file: read only when it is this user's regular file, closed to others, 64 hex digits.
@Suite struct BackupKeyTests {
    static let bytes = (0..<32).map { UInt8($0 * 7 + 3) }
    static let hex = Hex.encode(bytes)

    /// `BackupKey.load` refuses `file`, saying `words`.
    func expectRefused(_ file: URL, _ words: String) {
        let error = #expect(throws: BackupError.self) { try BackupKey.load(from: file) }
        #expect(error?.kind == .stopped && error?.message.contains(words) == true, "\(String(describing: error))")
    }

    @Test func aKeyIsReadFromThisUsersClosedFileAndNamedByItsDigest() throws {
        let folder = TemporaryFolder("mediscope-key")
        let file = folder.file("backup.key", Self.hex + "\n")
        #expect(chmod(file.path, 0o600) == 0)
        #expect(try BackupKey.load(from: file).id == String(SHA256Hex.digest(Self.bytes).prefix(16)))
        #expect(BackupKey.defaultFile(storeDirectory: URL(fileURLWithPath: "/srv/var/store")).path == "/srv/var/backup.key")
    }

    @Test func missingLinkedOpenOrMalformedKeysAreRefusedSayingWhy() throws {
        let folder = TemporaryFolder("mediscope-key")
        expectRefused(folder.appending("none.key"), "no backup key")

        let open = folder.file("open.key", Self.hex)
        #expect(chmod(open.path, 0o644) == 0)
        expectRefused(open, "chmod 600")

        let good = folder.file("good.key", Self.hex)
        #expect(chmod(good.path, 0o600) == 0)
        let link = folder.appending("link.key")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: good)
        expectRefused(link, "symbolic link")

        let short = folder.file("short.key", String(Self.hex.dropLast(2)))
        #expect(chmod(short.path, 0o600) == 0)
        expectRefused(short, "not 64 hexadecimal digits")
    }
}
