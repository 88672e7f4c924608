/// What an image file's structure says before any pixel is decoded: the coding process, the number of
/// scans, the EXIF orientation. Read by walking JPEG markers (ITU-T T.81 annex B) or PNG chunks
/// (PNG 3rd edition section 5), bounds-checked at every step; a malformed structure is not an error
/// here (the decoder reports it), the walk simply stops.
///
/// Why: a decoder's cost must be bounded by the image's pixel count. A progressive JPEG can repeat
/// scans without limit (each one a pass over every coefficient), so the scan count is known and
/// checked before libjpeg starts, in linear time over the bytes.
package struct ImageStructure: Sendable, Equatable {
    /// SOFn marker of a JPEG (0xC0 baseline, 0xC1 extended, 0xC2 progressive, 0xC3 lossless, ...);
    /// nil for PNG or when none was found.
    package var jpegFrameMarker: UInt8?
    /// Sample precision in bits from the JPEG frame header (8 or 12; 2...16 for lossless).
    package var jpegPrecision: Int?
    /// Start-of-scan markers seen (1 for baseline, ~6-10 for a usual progressive file).
    package var jpegScanCount = 0
    /// Width and height from the frame header (JPEG) or IHDR (PNG).
    package var width = 0
    package var height = 0
    /// PNG: bytes of image data (all IDAT chunks) and the raw size they must inflate to
    /// (rows x (filter byte + row bytes), per Adam7 pass when interlaced); 0 for JPEG.
    package var pngDataBytes = 0
    package var pngRawBytes = 0
    /// EXIF Orientation (TIFF tag 0x0112) from the first APP1 "Exif" segment (JPEG) or the eXIf chunk
    /// (PNG) before the image data; nil when absent or not 1...8.
    package var exifOrientation: ExifOrientation?

    package init() {}

    /// Walks `bytes` as `format`. WebP and DICOM are not inspected here (an empty structure; CDicom walks DICOM).
    package static func inspect(_ bytes: [UInt8], format: ImageFormat) -> ImageStructure {
        switch format {
        case .jpeg: return jpeg(bytes, from: 0)
        case .png: return png(bytes)
        case .webp, .dicom: return ImageStructure()
        }
    }

    /// The JPEG whose SOI is at `start` (a file, or one embedded in another, e.g. a DICOM fragment).
    static func jpeg(_ b: [UInt8], from start: Int) -> ImageStructure {
        var s = ImageStructure()
        var i = start + 2  // after SOI
        while i + 1 < b.count {
            // Stray bytes before a marker: libjpeg skips them (with a warning), so the walk does too.
            if b[i] != 0xFF {
                while i < b.count, b[i] != 0xFF { i += 1 }
                continue
            }
            var marker = b[i + 1]
            i += 2
            while marker == 0xFF, i < b.count { marker = b[i]; i += 1 }  // fill bytes
            switch marker {
            case 0xD9: return s                                         // EOI
            case 0x01, 0xD0...0xD8: continue                            // TEM, RSTn, SOI: no length
            default: break
            }
            guard i + 1 < b.count else { return s }
            let length = Int(b[i]) << 8 | Int(b[i + 1])
            guard length >= 2, i + length <= b.count else { return s }
            let payload = b[(i + 2)..<(i + length)]
            switch marker {
            case 0xC0...0xC3, 0xC5...0xC7, 0xC9...0xCB, 0xCD...0xCF:
                if s.jpegFrameMarker == nil, payload.count >= 5 {
                    let p = payload.startIndex
                    s.jpegFrameMarker = marker
                    s.jpegPrecision = Int(b[p])
                    s.height = Int(b[p + 1]) << 8 | Int(b[p + 2])
                    s.width = Int(b[p + 3]) << 8 | Int(b[p + 4])
                }
            case 0xE1 where s.exifOrientation == nil && payload.starts(with: [0x45, 0x78, 0x69, 0x66, 0, 0]):  // "Exif\0\0"
                s.exifOrientation = ExifOrientation.fromTIFF(payload.dropFirst(6))
            case 0xDA:
                s.jpegScanCount += 1
                i += length
                // Entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or an RSTn.
                while i + 1 < b.count, !(b[i] == 0xFF && b[i + 1] != 0 && !(0xD0...0xD7).contains(b[i + 1])) {
                    i += 1
                }
                continue
            default: break
            }
            i += length
        }
        return s
    }

    static func png(_ b: [UInt8]) -> ImageStructure {
        var s = ImageStructure()
        var seenData = false
        var i = 8  // after the signature
        while i + 8 <= b.count {
            let length = Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3])
            let type = String(decoding: b[(i + 4)..<(i + 8)], as: UTF8.self)
            let start = i + 8
            guard length <= b.count - start else { return s }
            let data = b[start..<(start + length)]
            switch type {
            case "IHDR" where length >= 13:
                s.width = Int(b[start]) << 24 | Int(b[start + 1]) << 16 | Int(b[start + 2]) << 8 | Int(b[start + 3])
                s.height = Int(b[start + 4]) << 24 | Int(b[start + 5]) << 16 | Int(b[start + 6]) << 8 | Int(b[start + 7])
                s.pngRawBytes = pngRawSize(width: s.width, height: s.height, depth: Int(b[start + 8]),
                                           colorType: Int(b[start + 9]), interlaced: b[start + 12] == 1)
            case "eXIf" where s.exifOrientation == nil && !seenData:
                s.exifOrientation = ExifOrientation.fromTIFF(data)  // browsers read eXIf only before the image data
            case "IDAT":
                seenData = true
                s.pngDataBytes += length
            case "IEND":
                return s
            default: break
            }
            i = start + length + 4  // + CRC
        }
        return s
    }
}

/// Bytes the filtered scanlines of a PNG take before compression (PNG 3rd edition, 7 and 8.2).
func pngRawSize(width: Int, height: Int, depth: Int, colorType: Int, interlaced: Bool) -> Int {
    let channels = [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][colorType] ?? 4
    let bits = channels * max(depth, 1)
    func rows(_ w: Int, _ h: Int) -> Int { w > 0 && h > 0 ? h * (1 + (w * bits + 7) / 8) : 0 }
    guard interlaced else { return rows(width, height) }
    // Adam7: (x start, y start, x step, y step) per pass.
    let passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    return passes.reduce(0) { sum, p in
        sum + rows((width - p.0 + p.2 - 1) / p.2, (height - p.1 + p.3 - 1) / p.3)
    }
}

/// EXIF / TIFF Orientation: how the stored rows and columns map to what a viewer shows.
/// Raw values 1...8 as in TIFF 6.0 and Exif 2.32 section 4.6.4 (tag 0x0112).
package enum ExifOrientation: Int, Sendable, Codable, CaseIterable {
    case normal = 1, mirrored = 2, rotated180 = 3, flippedVertically = 4
    case transposed = 5, rotated90Clockwise = 6, transverse = 7, rotated90CounterClockwise = 8

    /// How a person reads it, e.g. "rotated 90° clockwise" (what the display had to do).
    package var summary: String {
        switch self {
        case .normal: "as stored"
        case .mirrored: "mirrored left to right"
        case .rotated180: "rotated 180°"
        case .flippedVertically: "flipped top to bottom"
        case .transposed: "mirrored and rotated 90° counter-clockwise"
        case .rotated90Clockwise: "rotated 90° clockwise"
        case .transverse: "mirrored and rotated 90° clockwise"
        case .rotated90CounterClockwise: "rotated 90° counter-clockwise"
        }
    }

    /// Reads tag 0x0112 from IFD0 of a TIFF structure (byte order "II" or "MM"); nil when absent,
    /// malformed or outside 1...8.
    static func fromTIFF(_ tiff: ArraySlice<UInt8>) -> ExifOrientation? {
        let t = Array(tiff)
        guard t.count >= 8 else { return nil }
        let little: Bool
        switch (t[0], t[1]) {
        case (0x49, 0x49): little = true
        case (0x4D, 0x4D): little = false
        default: return nil
        }
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at + 2 <= t.count else { return nil }
            return little ? Int(t[at]) | Int(t[at + 1]) << 8 : Int(t[at]) << 8 | Int(t[at + 1])
        }
        func u32(_ at: Int) -> Int? {
            guard let a = u16(at), let b = u16(at + 2) else { return nil }
            return little ? a | b << 16 : a << 16 | b
        }
        guard u16(2) == 42, let ifd = u32(4), let count = u16(ifd) else { return nil }
        for entry in 0..<min(count, 1000) {
            let at = ifd + 2 + entry * 12
            guard let tag = u16(at), let type = u16(at + 2) else { return nil }
            if tag == 0x0112 {
                guard type == 3, let value = u16(at + 8) else { return nil }  // SHORT, stored in place
                return ExifOrientation(rawValue: value)
            }
        }
        return nil
    }
}

extension PixelImage {
    /// The image as a viewer shows it for `orientation` (a new buffer; `.normal` returns self).
    /// Orientations 5...8 swap width and height.
    package func applying(_ orientation: ExifOrientation) -> PixelImage {
        if orientation == .normal { return self }
        let swaps = orientation.rawValue >= 5
        let (ow, oh) = swaps ? (height, width) : (width, height)
        let c = channels, w = width, h = height
        let out = [UInt8](unsafeUninitializedCapacity: pixels.count) { dst, initialized in
            pixels.withUnsafeBufferPointer { src in
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        // The stored pixel that appears at (ox, oy) on screen.
                        let (sx, sy): (Int, Int)
                        switch orientation {
                        case .normal: (sx, sy) = (ox, oy)
                        case .mirrored: (sx, sy) = (w - 1 - ox, oy)
                        case .rotated180: (sx, sy) = (w - 1 - ox, h - 1 - oy)
                        case .flippedVertically: (sx, sy) = (ox, h - 1 - oy)
                        case .transposed: (sx, sy) = (oy, ox)
                        case .rotated90Clockwise: (sx, sy) = (oy, h - 1 - ox)
                        case .transverse: (sx, sy) = (w - 1 - oy, h - 1 - ox)
                        case .rotated90CounterClockwise: (sx, sy) = (w - 1 - oy, ox)
                        }
                        let from = (sy * w + sx) * c, to = (oy * ow + ox) * c
                        for k in 0..<c { dst[to + k] = src[from + k] }
                    }
                }
            }
            initialized = pixels.count
        }
        return PixelImage(width: ow, height: oh, channels: c, pixels: out)
    }
}
