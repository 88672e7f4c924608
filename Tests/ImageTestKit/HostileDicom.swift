import MediscopeImaging

/// Generators of the hostile DICOM classes the bug hunt found (issue 19), each next to a control that a
/// valid reader renders: the tests feed both to the shim, the CLI and the stack.
package enum HostileDicom {
    static let mr = "1.2.840.10008.5.1.4.1.1.4"
    static let enhancedMR = "1.2.840.10008.5.1.4.1.1.4.1"

    /// The Image Pixel module of a grey frame.
    package static func greyModule(width: Int, height: Int, bits: Int = 8, frames: Int? = nil,
                                  photometric: String = "MONOCHROME2") -> [DicomBuilder.Element] {
        var e: [DicomBuilder.Element] = [
            .text(0x0008, 0x0016, "UI", mr), .text(0x0008, 0x0018, "UI", "1.2.826.0.1.3680043.2.1143.19"),
            .text(0x0008, 0x0060, "CS", "MR"), .text(0x0010, 0x0010, "PN", "Hostile^Test"), .text(0x0010, 0x0020, "LO", "H-19"),
            .us(0x0028, 0x0002, 1), .text(0x0028, 0x0004, "CS", photometric),
            .us(0x0028, 0x0010, UInt16(height)), .us(0x0028, 0x0011, UInt16(width)),
            .us(0x0028, 0x0100, UInt16(bits)), .us(0x0028, 0x0101, UInt16(bits)), .us(0x0028, 0x0102, UInt16(bits - 1)),
            .us(0x0028, 0x0103, 0),
        ]
        if let frames { e.append(.text(0x0028, 0x0008, "IS", String(frames))) }
        return e
    }

    /// Encapsulated Pixel Data (PS3.5 A.4): undefined length, the Basic Offset Table, the fragments
    /// (padded to even length), the sequence delimiter.
    package static func encapsulated(_ fragments: [[UInt8]], offsetTable: [UInt32] = []) -> [UInt8] {
        var out: [UInt8] = [0xE0, 0x7F, 0x10, 0x00] + Array("OB".utf8) + [0, 0, 0xFF, 0xFF, 0xFF, 0xFF]
        out += item(offsetTable.flatMap(le32))
        for f in fragments { out += item(f.count % 2 == 0 ? f : f + [0]) }
        return out + [0xFE, 0xFF, 0xDD, 0xE0] + le32(0)
    }

    /// A file whose Pixel Data is encapsulated, in transfer syntax `syntax`, after `elements`.
    package static func encapsulatedFile(_ elements: [DicomBuilder.Element], fragments: [[UInt8]], offsetTable: [UInt32] = [],
                                        syntax: String) -> [UInt8] {
        DicomBuilder.file(elements, transferSyntax: syntax) + encapsulated(fragments, offsetTable: offsetTable)
    }

    /// A baseline JPEG of a grey pattern, `width` x `height`.
    package static func jpeg(width: Int, height: Int, seed: Int = 0) throws -> [UInt8] {
        try ImageEncoder.jpeg(pattern(width: width, height: height, seed: seed), quality: 95)
    }

    /// Grey pixels that differ with `seed`, so two frames never look alike.
    package static func pattern(width: Int, height: Int, seed: Int = 0) -> PixelImage {
        var pixels = [UInt8](repeating: 0, count: width * height)
        for y in 0..<height {
            for x in 0..<width { pixels[y * width + x] = UInt8(truncatingIfNeeded: (x * (3 + seed) + y * (5 + 2 * seed) + seed * 41) % 251) }
        }
        return PixelImage(width: width, height: height, channels: 1, pixels: pixels)
    }

    /// Class 1: a 512x512 JPEG Baseline frame whose codestream codes only `codedWidth` x `codedHeight`.
    package static func shortJPEGFrame(codedWidth: Int = 16, codedHeight: Int = 16, frame: Int = 512) throws -> [UInt8] {
        encapsulatedFile(greyModule(width: frame, height: frame), fragments: [try jpeg(width: codedWidth, height: codedHeight)],
                         syntax: "1.2.840.10008.1.2.4.50")
    }

    /// A valid JPEG Baseline file of `width` x `height` (the control of class 1).
    package static func jpegFile(width: Int, height: Int, seed: Int = 0) throws -> [UInt8] {
        encapsulatedFile(greyModule(width: width, height: height), fragments: [try jpeg(width: width, height: height, seed: seed)],
                         syntax: "1.2.840.10008.1.2.4.50")
    }

    /// PackBits of `bytes` as literal runs of at most 128 (PS3.5 G.3.1).
    package static func packBits(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            let n = min(128, bytes.count - i)
            out.append(UInt8(n - 1))
            out += bytes[i..<(i + n)]
            i += n
        }
        return out
    }

    /// An RLE frame (header + segments) of 8-bit grey `pixels`; `offsets` overrides the header's offsets.
    package static func rleFrame(_ pixels: [UInt8], segments: UInt32 = 1, offsets: [UInt32]? = nil) -> [UInt8] {
        let segment = packBits(pixels)
        var header = le32(segments)
        var table = offsets ?? [64]
        while table.count < 15 { table.append(0) }
        for o in table.prefix(15) { header += le32(o) }
        return header + segment
    }

    /// An RLE Lossless file of one 8-bit grey frame, with `fragment` as its only fragment.
    package static func rleFile(width: Int, height: Int, fragment: [UInt8]) -> [UInt8] {
        encapsulatedFile(greyModule(width: width, height: height), fragments: [fragment], syntax: "1.2.840.10008.1.2.5")
    }

    /// Class 2: RLE headers and fragments that point outside the data or code too little.
    package static func hostileRLE(width: Int = 64, height: Int = 64) -> [(name: String, file: [UInt8])] {
        let pixels = pattern(width: width, height: height).pixels
        let good = rleFrame(pixels)
        return [
            ("offset past the fragment", rleFile(width: width, height: height, fragment: rleFrame(pixels, offsets: [0x7FFF_FFF0]))),
            ("second segment past the fragment", rleFile(width: width, height: height,
                                                          fragment: rleFrame(pixels, segments: 2, offsets: [64, 0x00FF_FFFF]))),
            ("fragment shorter than the header", rleFile(width: width, height: height, fragment: Array(good.prefix(40)))),
            ("segment codes a quarter of the pixels", rleFile(width: width, height: height,
                                                               fragment: rleFrame(Array(pixels.prefix(pixels.count / 4))))),
            ("fifteen segments for a grey frame", rleFile(width: width, height: height, fragment: rleFrame(pixels, segments: 15))),
            ("header without segments", rleFile(width: width, height: height, fragment: rleFrame(pixels, segments: 0))),
        ]
    }

    /// Class 3: an Icon Image Sequence (0088,0200) with its own encapsulated Pixel Data before the data
    /// set's Pixel Data. `bombInIcon`: the icon holds the scan bomb and the real frame is a valid 64x64
    /// JPEG (decoded; the icon never is); else the icon is a valid JPEG and the real frame is the bomb.
    package static func iconBeforePixelData(bombInIcon: Bool) throws -> [UInt8] {
        let bomb = try ImageBuilders.scanBomb(width: 2000, height: 2000, scans: 3000)
        let small = try jpeg(width: 64, height: 64)
        let iconSide = bombInIcon ? 2000 : 64
        let icon = DicomBuilder.dataset(greyModule(width: iconSide, height: iconSide).filter { $0.group == 0x0028 })
            + encapsulated([bombInIcon ? bomb : small])
        let sequence = DicomBuilder.Element(0x0088, 0x0200, "SQ", item(icon))
        let side = bombInIcon ? 64 : 2000
        return encapsulatedFile(greyModule(width: side, height: side) + [sequence], fragments: [bombInIcon ? small : bomb],
                                syntax: "1.2.840.10008.1.2.4.50")
    }

    /// Class 3: the scan bomb split in fragments of `size` bytes, so its scans sit in later fragments.
    package static func scanBombInFragments(size: Int = 1024) throws -> [UInt8] {
        let bomb = try ImageBuilders.scanBomb(width: 2000, height: 2000, scans: 3000)
        let fragments = stride(from: 0, to: bomb.count, by: size).map { Array(bomb[$0..<min($0 + size, bomb.count)]) }
        return encapsulatedFile(greyModule(width: 2000, height: 2000), fragments: fragments, syntax: "1.2.840.10008.1.2.4.50")
    }

    /// Class 4: Number of Frames `frames` over a native Pixel Data that holds one 512x512x16 frame, whose
    /// frame offsets wrap past 4 GiB in 32 bits (frame 8193 at 8192 x 512 KiB = 4 GiB).
    package static func framesPastTheData(frames: Int = 16385) -> [UInt8] {
        let stored = pattern(width: 512, height: 512).pixels.flatMap { le16(UInt16($0) * 16) }
        return DicomBuilder.file(greyModule(width: 512, height: 512, bits: 16, frames: frames)
                                 + [DicomBuilder.Element(0x7FE0, 0x0010, "OW", stored)])
    }

    /// A native 16-bit grey file of `image`'s pixels (stored = 16 p + 100) with `extra` elements.
    package static func monochrome16(_ image: PixelImage, extra: [DicomBuilder.Element] = [],
                                    stored: ((Int, UInt8) -> UInt16)? = nil) -> [UInt8] {
        let values = image.pixels.enumerated().map { stored?($0.offset, $0.element) ?? UInt16($0.element) * 16 + 100 }
        // An element of `extra` replaces the module's element with its tag.
        let module = greyModule(width: image.width, height: image.height, bits: 16)
            .filter { e in !extra.contains { $0.group == e.group && $0.element == e.element } }
        return DicomBuilder.file(module + extra + [DicomBuilder.Element(0x7FE0, 0x0010, "OW", values.flatMap(le16))])
    }

    /// Class 5: an Enhanced MR file whose window sits only in its functional groups (shared, and for frame
    /// 2 of 3 per-frame): three frames of `image`.
    package static func enhancedMR(_ image: PixelImage, shared: (Double, Double), perFrame: (Double, Double)?) -> [UInt8] {
        func voi(_ w: (Double, Double)) -> [UInt8] {
            item(DicomBuilder.dataset([.text(0x0028, 0x1050, "DS", ds(w.0)), .text(0x0028, 0x1051, "DS", ds(w.1))]))
        }
        func group(_ w: (Double, Double)?) -> [UInt8] {
            guard let w else { return item([]) }
            return item(DicomBuilder.dataset([DicomBuilder.Element(0x0028, 0x9132, "SQ", voi(w))]))
        }
        let frame = image.pixels.flatMap { le16(UInt16($0) * 16 + 100) }
        var elements = greyModule(width: image.width, height: image.height, bits: 16, frames: 3)
            .filter { !($0.group == 0x0008 && $0.element == 0x0016) }
        elements += [.text(0x0008, 0x0016, "UI", enhancedMR),
                     DicomBuilder.Element(0x5200, 0x9229, "SQ", group(shared)),
                     DicomBuilder.Element(0x5200, 0x9230, "SQ", group(nil) + group(perFrame) + group(nil)),
                     DicomBuilder.Element(0x7FE0, 0x0010, "OW", frame + frame + frame)]
        return DicomBuilder.file(elements)
    }

    static func item(_ content: [UInt8]) -> [UInt8] { [0xFE, 0xFF, 0x00, 0xE0] + le32(UInt32(content.count)) + content }
    static func ds(_ x: Double) -> String { DicomBuilder.ds(x) }
}

func le16(_ x: UInt16) -> [UInt8] { [UInt8(x & 0xFF), UInt8(x >> 8)] }
func le32(_ x: UInt32) -> [UInt8] { [UInt8(x & 0xFF), UInt8(x >> 8 & 0xFF), UInt8(x >> 16 & 0xFF), UInt8(x >> 24)] }
