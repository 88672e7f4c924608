import Foundation
import TestSupport

/// Test scans made by the same script the parity tests use (written by `make reference`).
enum Scans {
    static let folder = Repository.root.appendingPathComponent("Tests/Artifacts/reference/scans")
    static func data(_ name: String) throws -> Data {
        let url = folder.appendingPathComponent(name)
        guard let d = try? Data(contentsOf: url) else {
            throw StackError("\(url.path) is missing: run `make test` (it makes the test scans first)")
        }
        return d
    }
    static var jpeg: Data { get throws { try data("scan_baseline.jpg") } }
    static var png: Data { get throws { try data("scan_rgb.png") } }
}
