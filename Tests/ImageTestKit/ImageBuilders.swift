import Foundation
import MediscopeImaging

/// Builds the adversarial and oriented files the tests need from images they generate.
package enum ImageBuilders {
    /// A gray test pattern with structure in both directions (so rotations and flips differ).
    package static func pattern(width: Int, height: Int) -> PixelImage {
        PixelImage(width: width, height: height, channels: 1,
                   pixels: (0..<(width * height)).map { i in UInt8(truncatingIfNeeded: (i % width) * 7 + (i / width) * 29) })
    }

    /// (marker, offset of the 0xFF, offset one past the segment) for every marker segment, and each
    /// scan with its entropy-coded data.
    package static func segments(_ jpeg: [UInt8]) -> [(marker: UInt8, start: Int, end: Int)] {
        var out: [(UInt8, Int, Int)] = [(0xD8, 0, 2)]
        var i = 2
        while i + 3 < jpeg.count, jpeg[i] == 0xFF {
            let marker = jpeg[i + 1]
            if marker == 0xD9 { out.append((marker, i, i + 2)); break }
            var end = i + 2 + (Int(jpeg[i + 2]) << 8 | Int(jpeg[i + 3]))
            if marker == 0xDA {
                while end + 1 < jpeg.count, !(jpeg[end] == 0xFF && jpeg[end + 1] != 0 && !(0xD0...0xD7).contains(jpeg[end + 1])) {
                    end += 1
                }
            }
            out.append((marker, i, end))
            i = end
        }
        return out
    }

    /// A progressive gray JPEG whose frame header claims `width` x `height` and that has `scans` scans:
    /// the encoder's last scan repeated. libjpeg only warns about the repeats and decodes each one as a
    /// pass over the whole (claimed) image: a tiny file with an unbounded decode cost.
    package static func scanBomb(width: Int, height: Int, scans: Int) throws -> [UInt8] {
        // An 8x8 image: its scans are a few bytes each, so 10,000 of them make a file of about 100 KB.
        let small = try ImageEncoder.jpeg(pattern(width: 8, height: 8), quality: 75, progressive: true)
        let segs = segments(small)
        let sosList = segs.filter { $0.marker == 0xDA }
        guard let sof = segs.first(where: { $0.marker == 0xC2 }), let last = sosList.last, scans >= sosList.count else {
            throw BuildError("the encoder did not write a progressive file")
        }
        var out = Array(small[..<last.end])
        let repeated = Array(small[last.start..<last.end])
        for _ in 0..<(scans - sosList.count) { out += repeated }
        out += [0xFF, 0xD9]
        // SOF2 payload: precision, height (2 bytes), width (2 bytes).
        out[sof.start + 5] = UInt8(height >> 8); out[sof.start + 6] = UInt8(height & 0xFF)
        out[sof.start + 7] = UInt8(width >> 8); out[sof.start + 8] = UInt8(width & 0xFF)
        return out
    }

    /// A TIFF structure (as in an Exif APP1 segment or a PNG eXIf chunk) whose IFD0 holds one entry,
    /// Orientation (0x0112, SHORT) = `orientation`, after a harmless first entry.
    package static func tiff(orientation: Int, bigEndian: Bool = false) -> [UInt8] {
        func u16(_ v: Int) -> [UInt8] { bigEndian ? [UInt8(v >> 8), UInt8(v & 0xFF)] : [UInt8(v & 0xFF), UInt8(v >> 8)] }
        func u32(_ v: Int) -> [UInt8] { bigEndian ? u16(v >> 16) + u16(v & 0xFFFF) : u16(v & 0xFFFF) + u16(v >> 16) }
        var t: [UInt8] = bigEndian ? [0x4D, 0x4D] : [0x49, 0x49]
        t += u16(42) + u32(8) + u16(2)
        t += u16(0x011A) + u16(5) + u32(1) + u32(0)              // XResolution (RATIONAL; offset unused here)
        t += u16(0x0112) + u16(3) + u32(1) + u16(orientation) + u16(0)
        t += u32(0)                                               // no next IFD
        return t
    }

    /// `jpeg` with an APP1 Exif segment carrying `orientation` right after SOI.
    package static func jpeg(_ jpeg: [UInt8], orientation: Int, bigEndian: Bool = false) -> [UInt8] {
        let payload = Array("Exif".utf8) + [0, 0] + tiff(orientation: orientation, bigEndian: bigEndian)
        let length = payload.count + 2
        return [0xFF, 0xD8, 0xFF, 0xE1, UInt8(length >> 8), UInt8(length & 0xFF)] + payload + jpeg.dropFirst(2)
    }

    /// `png` with `chunk` inserted right after IHDR.
    package static func png(_ png: [UInt8], inserting chunks: [[UInt8]]) -> [UInt8] {
        let ihdrEnd = 8 + 8 + 13 + 4
        return Array(png[..<ihdrEnd]) + chunks.flatMap { $0 } + png[ihdrEnd...]
    }

    package static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let typeBytes = Array(type.utf8)
        let n = data.count
        return [UInt8(n >> 24 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]
            + typeBytes + data + bigEndian32(crc32(typeBytes + data))
    }

    /// `png` with its image data split into IDAT chunks of `size` bytes.
    package static func png(_ png: [UInt8], idatChunksOf size: Int) -> [UInt8] {
        var i = 8
        var head: [UInt8] = Array(png[..<8]), data: [UInt8] = [], tail: [UInt8] = []
        while i + 8 <= png.count {
            let n = Int(png[i]) << 24 | Int(png[i + 1]) << 16 | Int(png[i + 2]) << 8 | Int(png[i + 3])
            let type = String(decoding: png[(i + 4)..<(i + 8)], as: UTF8.self)
            let whole = Array(png[i..<(i + 12 + n)])
            if type == "IDAT" { data += png[(i + 8)..<(i + 8 + n)] } else if data.isEmpty { head += whole } else { tail += whole }
            i += 12 + n
        }
        var out = head
        var offset = 0
        while offset < data.count {
            out += chunk("IDAT", Array(data[offset..<min(data.count, offset + size)]))
            offset += size
        }
        return out + tail
    }

    package static func bigEndian32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    package static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    /// A zlib stream that inflates to `side` x (`side` + 1) zero bytes (a text-chunk "bomb"): the image
    /// data of an all-black gray PNG, whose rows are all-zero bytes behind a zero filter byte.
    package static func zlibZeros(side: Int) throws -> [UInt8] {
        let black = try ImageEncoder.png(PixelImage(width: side, height: side, channels: 1, pixels: [UInt8](repeating: 0, count: side * side)))
        var i = 8, stream: [UInt8] = []
        while i + 8 <= black.count {
            let n = Int(black[i]) << 24 | Int(black[i + 1]) << 16 | Int(black[i + 2]) << 8 | Int(black[i + 3])
            if black[(i + 4)..<(i + 8)].elementsEqual(Array("IDAT".utf8)) { stream += black[(i + 8)..<(i + 8 + n)] }
            i += 12 + n
        }
        return stream
    }

    package struct BuildError: Error, CustomStringConvertible {
        package let description: String
        init(_ d: String) { description = d }
    }
}
