import Foundation

/// A fresh, empty folder under the system's temporary directory, removed with all it holds when the
/// value goes away: keep the value alive (a local, a stored property) as long as the folder is used.
package final class TemporaryFolder: Sendable {
    /// The folder.
    package let url: URL
    /// The folder's path.
    package var path: String { url.path }

    /// `prefix` starts the folder's name, so that a folder left by a killed run says which test made it.
    /// The name's random part is short: servers put Unix sockets below it (at most 107 bytes a path).
    package init(_ prefix: String = "mediscope-test") {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))", isDirectory: true)
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            fatalError("cannot create the temporary folder \(url.path): \(error)")
        }
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// `relativePath` inside the folder (nothing is created).
    package func appending(_ relativePath: String) -> URL { url.appendingPathComponent(relativePath) }

    /// Writes `bytes` to the file `name` in the folder; returns the file.
    @discardableResult
    package func file(_ name: String, _ bytes: [UInt8]) -> URL {
        let file = appending(name)
        do { try Data(bytes).write(to: file) } catch { fatalError("cannot write \(file.path): \(error)") }
        return file
    }

    /// Writes `text` (UTF-8) to the file `name` in the folder; returns the file.
    @discardableResult
    package func file(_ name: String, _ text: String) -> URL { file(name, Array(text.utf8)) }
}
