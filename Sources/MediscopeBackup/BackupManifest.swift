import Foundation

/// `BACKUP.json`, written last into every backup: what it holds and how to check it. No patient data:
/// file names, sizes, SHA-256 digests, counts, and the keys (image digests) of images found missing.
/// Its exact bytes are authenticated by `BACKUP.mac` (HMAC-SHA256 under the deployment's `BackupKey`).
package struct BackupManifest: Codable, Sendable, Equatable {
    /// One database file of the backup.
    package struct DatabaseFile: Codable, Sendable, Equatable {
        /// File name in the store folder, e.g. `mediscope.sqlite`.
        package var name: String
        /// Size in bytes.
        package var bytes: Int
        /// Lowercase hex SHA-256 of the file's bytes.
        package var sha256: String
    }

    /// Layout version of the backup folder; a restore refuses versions it does not know. 2: the manifest
    /// is authenticated by `BACKUP.mac` (format 1 had no MAC and is not restored).
    package var format: Int
    /// When the copy was taken (the start of the first database's snapshot).
    package var createdAt: Date
    /// `host.name` of the server whose store was copied.
    package var host: String
    /// The databases, in the order they were copied.
    package var databases: [DatabaseFile]
    /// Analysis records in the copy.
    package var analyses: Int
    /// Image files in the copy (each record's scan and overlays; shared images once).
    package var images: Int
    /// Images records refer to that the live store did not have when copied (damage found, not made).
    package var missingImages: [String]

    /// The format this version writes and reads.
    package static let currentFormat = 2

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.dateEncodingStrategy = .iso8601
        return e
    }()

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .iso8601
        return d
    }()
}

/// Why a backup, a check or a restore did not happen or did not pass. The message names files and image
/// keys only, never patient data.
package struct BackupError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure, for the command's exit status.
    package enum Kind: Sendable {
        /// Could not start or could not finish (missing store, destination in use, I/O error, server running).
        case stopped
        /// The backup exists but does not pass its check (`problems` lists what).
        case damaged
    }

    package let kind: Kind
    package let message: String
    /// What the check found, one line each (damaged only).
    package var problems: [String] = []
    package var description: String { message }

    init(_ kind: Kind, _ message: String, problems: [String] = []) {
        self.kind = kind
        self.message = message
        self.problems = problems
    }
}
