import Foundation
import MediscopeImaging

/// Index written by Tests/Reference/make_imaging_fixtures.py.
struct FixtureIndex: Decodable, Sendable {
    struct Resize: Decodable, Sendable { let width: Int; let height: Int; let rgb: String }
    struct Source: Decodable, Sendable {
        let file: String
        let width: Int
        let height: Int
        let pillowMode: String
        let decodedChannels: Int
        let rgb: String?
        let gray: String?
        let resizes: [Resize]
    }
    struct RGBAResize: Decodable, Sendable { let source: String; let width: Int; let height: Int; let rgba: String }
    let pillow: String
    let sources: [Source]
    let rgba_resizes: [RGBAResize]
}

struct OpenCVIndex: Decodable, Sendable {
    struct Bilinear: Decodable, Sendable {
        let srcWidth: Int, srcHeight: Int, src: String
        let dstWidth: Int, dstHeight: Int, dst: String
    }
    struct Overlay: Decodable, Sendable {
        let image: String, imageWidth: Int, imageHeight: Int
        let camWidth: Int, camHeight: Int, raw: String, normalized: String
        let imageWeight: Float, overlay: String
    }
    let opencv: String
    let jetRGB: [UInt8]
    let bilinear: [Bilinear]
    let overlay: [Overlay]
}

enum Fixtures {
    static let directory: URL = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!

    static func bytes(_ name: String) -> [UInt8] {
        let url = directory.appendingPathComponent(name)
        guard let data = try? Data(contentsOf: url) else { fatalError("missing fixture \(name)") }
        return [UInt8](data)
    }

    static func floats(_ name: String) -> [Float] {
        let raw = bytes(name)
        return stride(from: 0, to: raw.count, by: 4).map { i in
            Float(bitPattern: UInt32(raw[i]) | UInt32(raw[i + 1]) << 8 | UInt32(raw[i + 2]) << 16 | UInt32(raw[i + 3]) << 24)
        }
    }

    static let index: FixtureIndex = try! JSONDecoder().decode(FixtureIndex.self, from: Data(bytes("index.json")))
    static let opencv: OpenCVIndex = try! JSONDecoder().decode(OpenCVIndex.self, from: Data(bytes("opencv.json")))

    static func source(_ file: String) -> FixtureIndex.Source {
        index.sources.first { $0.file == file }!
    }

    /// Every source image except the 512x512 one, which has no stored decode reference.
    static let decodableSources: [String] = index.sources.filter { $0.rgb != nil }.map(\.file)

    /// "file|WxH" for every stored Pillow resize reference.
    static let resizeCases: [String] = index.sources.flatMap { s in
        s.resizes.map { "\(s.file)|\($0.width)x\($0.height)" }
    }
}

/// Per-byte comparison figures: largest absolute difference and how many bytes differ.
struct Difference: CustomStringConvertible {
    var maxDiff = 0
    var differing = 0
    var total = 0
    init(_ a: [UInt8], _ b: [UInt8]) {
        precondition(a.count == b.count, "sizes differ: \(a.count) vs \(b.count)")
        total = a.count
        for i in 0..<a.count {
            let d = abs(Int(a[i]) - Int(b[i]))
            if d > 0 { differing += 1; maxDiff = max(maxDiff, d) }
        }
    }
    var description: String { "max diff \(maxDiff), \(differing)/\(total) values differ" }
}

func decodeError(_ bytes: [UInt8], limits: ImageLimits = .init()) -> ImagingError? {
    do {
        _ = try ImageDecoder.decode(bytes, limits: limits)
        return nil
    } catch {
        return error
    }
}
