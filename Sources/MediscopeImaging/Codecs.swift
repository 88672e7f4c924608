import CImageCodecs

/// What a decode may cost. Every bound is checked from the file's structure before the decoder
/// allocates or loops, so a refused file costs a linear walk over its bytes, not a decode.
package struct ImageLimits: Sendable {
    /// Largest width x height accepted by the decoders; checked from the header, before
    /// the pixel buffer is allocated.
    package var maxPixels: Int = 50_000_000
    /// Most scans a JPEG may have. A baseline file has 1 per component, libjpeg's standard
    /// progression 6 (gray) or 10 (colour); libjpeg-turbo's own tools refuse more than 500.
    package var maxJPEGScans: Int = 256
    /// Most scans x pixels a JPEG may cost: each progressive scan is a pass over the whole image, so
    /// a large image gets fewer scans (the default allows 12 full passes of the largest image).
    package var maxJPEGScanPixels: Int = 600_000_000
    /// Largest value of any single DICOM element, and of a deflated DICOM data set once inflated, in
    /// bytes; checked from the file's structure before DCMTK reads it.
    package var maxDicomElementBytes: Int = 256 << 20
    /// Deepest nesting of DICOM sequences accepted (real images use a handful of levels); checked
    /// before DCMTK, which recurses into sequences, reads the file.
    package var maxDicomSequenceDepth: Int = 16
    package init(maxPixels: Int = 50_000_000) {
        self.maxPixels = maxPixels
        maxJPEGScanPixels = max(maxPixels, 1) * 12
    }
}

/// The image formats we read and write, and the one mapping of each to its media type and file extension.
/// DICOM (PS3.10 files) is read only: its frames are rendered to 8 bits (`DicomRenderer`).
package enum ImageFormat: String, Sendable, CaseIterable {
    case jpeg, png, webp, dicom

    /// The IANA media type (`image/jpeg`, `image/png`, `image/webp`, `application/dicom`).
    package var contentType: String { self == .dicom ? "application/dicom" : "image/" + rawValue }
    /// The file extension used for stored files and URLs (`jpg`, `png`, `webp`, `dcm`).
    package var fileExtension: String {
        switch self {
        case .jpeg: "jpg"
        case .dicom: "dcm"
        default: rawValue
        }
    }

    /// The format of a media type; `image/jpg` is read as JPEG. nil for anything else.
    package init?(contentType: String) {
        switch contentType.lowercased() {
        case "image/jpeg", "image/jpg": self = .jpeg
        case "image/png": self = .png
        case "image/webp": self = .webp
        case "application/dicom": self = .dicom
        default: return nil
        }
    }
}

package struct ImagingError: Error, Sendable, CustomStringConvertible {
    /// `unsupportedVariant`: a valid file of a known format in a variant we do not decode (12-bit or
    /// lossless JPEG, a DICOM transfer syntax or pixel layout we do not decode); `tooComplex`: decoding
    /// would cost more than `ImageLimits` allow; `noSuchFrame`: a DICOM frame the file does not have.
    package enum Kind: Sendable { case empty, unsupportedFormat, unsupportedVariant, corrupt, tooLarge, tooComplex, encodeFailed, noSuchFrame }
    package let kind: Kind
    package let message: String
    package init(kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }
    package var description: String { message }
}

/// A decoded file as a viewer shows it.
package struct DecodedImage: Sendable {
    /// Upright pixels: the EXIF orientation, if any, already applied.
    package var image: PixelImage
    package var format: ImageFormat
    /// The EXIF orientation found in the file (nil: none, so nothing was applied).
    package var orientation: ExifOrientation?
    /// For a DICOM file: the frame, Modality LUT and VOI that made the 8-bit image.
    package var dicom: DicomRendering?
    /// For a DICOM file: its patient and study attributes (patient data: never logged).
    package var dicomAttributes: DicomAttributes?
}

package enum ImageDecoder {
    /// Identifies the format from magic bytes only (file names lie). DICOM: "DICM" after the 128-byte
    /// preamble, or a file starting with a group 0002 (meta information) or 0008 element in either byte order.
    package static func sniff(_ bytes: [UInt8]) -> ImageFormat? {
        if bytes.count >= 132, bytes[128..<132].elementsEqual(Array("DICM".utf8)) { return .dicom }
        if bytes.count >= 8, [[0x02, 0x00], [0x08, 0x00], [0x00, 0x02], [0x00, 0x08]].contains(Array(bytes[0..<2])) { return .dicom }
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF { return .jpeg }
        if bytes.count >= 8, bytes[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if bytes.count >= 12, bytes[0..<4].elementsEqual(Array("RIFF".utf8)),
           bytes[8..<12].elementsEqual(Array("WEBP".utf8)) { return .webp }
        return nil
    }

    /// Decodes JPEG, PNG or WebP into 1 (gray), 3 (RGB) or 4 (RGBA) channels, as stored (no EXIF
    /// orientation applied; see `decodeUpright`).
    package static func decode(_ bytes: [UInt8], limits: ImageLimits = .init()) throws(ImagingError) -> PixelImage {
        let format = try identify(bytes)
        if format == .dicom { return try DicomRenderer.decode(bytes, limits: limits).0 }
        try check(ImageStructure.inspect(bytes, format: format), format: format, limits: limits)
        return try decode(bytes, format: format, limits: limits)
    }

    /// Decodes as a viewer shows the file: the EXIF orientation (JPEG APP1, PNG eXIf) applied.
    /// `DecodedImage.orientation` says which one was found (nil: none). A DICOM file is rendered to 8 bits
    /// (`DicomRenderer`); `frame` (0-based) chooses its frame, nil the middle one; other formats ignore it.
    package static func decodeUpright(_ bytes: [UInt8], limits: ImageLimits = .init(),
                                     frame: Int? = nil) throws(ImagingError) -> DecodedImage {
        let format = try identify(bytes)
        if format == .dicom {
            let file = try DicomFile.read(bytes, limits: limits, frame: frame)
            let (image, rendering) = try DicomRenderer.render(file)
            return DecodedImage(image: image, format: .dicom, orientation: nil, dicom: rendering,
                                dicomAttributes: file.attributes)
        }
        let structure = ImageStructure.inspect(bytes, format: format)
        try check(structure, format: format, limits: limits)
        let stored = try decode(bytes, format: format, limits: limits)
        return DecodedImage(image: stored.applying(structure.exifOrientation ?? .normal), format: format,
                            orientation: structure.exifOrientation)
    }

    private static func identify(_ bytes: [UInt8]) throws(ImagingError) -> ImageFormat {
        if bytes.isEmpty { throw ImagingError(kind: .empty, message: "image data is empty") }
        guard let format = sniff(bytes) else {
            let head = bytes.prefix(8).map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
            throw ImagingError(kind: .unsupportedFormat,
                               message: "data is not a JPEG, PNG, WebP or DICOM image (starts with \(head.joined(separator: " ")))")
        }
        return format
    }

    /// Refuses, before decoding, what the structure shows we cannot or should not decode.
    static func check(_ s: ImageStructure, format: ImageFormat, limits: ImageLimits) throws(ImagingError) {
        if format == .png {
            // zlib never makes data much larger than its input (stored blocks: 5 bytes per 64 KiB), so
            // image data far longer than the raw scanlines can only be data libpng would inflate past
            // the last row: a cost not bounded by the pixels.
            if s.pngRawBytes > 0, s.pngDataBytes > s.pngRawBytes + s.pngRawBytes / 64 + 4096 {
                throw ImagingError(kind: .tooComplex, message: "the PNG's image data is \(s.pngDataBytes) bytes, more than a "
                                   + "\(s.width)x\(s.height) image can need (\(s.pngRawBytes) bytes uncompressed)")
            }
            return
        }
        guard format == .jpeg else { return }
        switch s.jpegFrameMarker {
        case 0xC3, 0xC7, 0xCB, 0xCF:
            throw ImagingError(kind: .unsupportedVariant, message: "lossless JPEG (SOF\(Int(s.jpegFrameMarker! & 0x0F))) is "
                               + "not supported; export the scan as PNG (16-bit PNG keeps more levels) or as an 8-bit JPEG")
        case 0xC5, 0xC6, 0xCD, 0xCE:
            throw ImagingError(kind: .unsupportedVariant, message: "hierarchical JPEG is not supported; export the scan "
                               + "as PNG or as a baseline or progressive 8-bit JPEG")
        default: break
        }
        if let bits = s.jpegPrecision, bits != 8 {
            throw ImagingError(kind: .unsupportedVariant, message: "\(bits)-bit JPEG is not supported; export the scan "
                               + "as a 16-bit PNG or as an 8-bit JPEG")
        }
        try checkJPEGBudget(s, limits: limits)
    }

    /// The JPEG bounds that hold for every decoder (ours, or DCMTK's for DICOM fragments): the pixel limit,
    /// then at most `maxJPEGScans` scans and `maxJPEGScanPixels` scans x pixels.
    static func checkJPEGBudget(_ s: ImageStructure, limits: ImageLimits) throws(ImagingError) {
        // The pixel limit first: a huge baseline image is "too large", not "too many scans".
        let claimed = s.width * s.height
        if claimed > limits.maxPixels {
            throw ImagingError(kind: .tooLarge, message: "image is \(s.width)x\(s.height) = \(String(format: "%g", Double(claimed) / 1e6)) "
                               + "megapixels, over the limit of \(String(format: "%g", Double(limits.maxPixels) / 1e6))")
        }
        let pixels = s.width * s.height
        if s.jpegScanCount > limits.maxJPEGScans
            || (pixels > 0 && s.jpegScanCount > limits.maxJPEGScanPixels / pixels) {
            let allowed = pixels > 0 ? min(limits.maxJPEGScans, max(1, limits.maxJPEGScanPixels / pixels)) : limits.maxJPEGScans
            throw ImagingError(kind: .tooComplex, message: "too many progressive scans: the JPEG has \(s.jpegScanCount) "
                               + "scans; at most \(allowed) are decoded for a \(s.width)x\(s.height) image")
        }
    }

    private static func decode(_ bytes: [UInt8], format: ImageFormat, limits: ImageLimits) throws(ImagingError) -> PixelImage {
        var image = codec_image()
        var errorBuffer = [CChar](repeating: 0, count: 512)
        let maxPixels = Int64(max(0, limits.maxPixels))
        let rc = bytes.withUnsafeBufferPointer { data in
            errorBuffer.withUnsafeMutableBufferPointer { err in
                switch format {
                case .jpeg: codec_jpeg_decode(data.baseAddress, data.count, maxPixels, Int32(clamping: limits.maxJPEGScans),
                                              &image, err.baseAddress, err.count)
                case .png: codec_png_decode(data.baseAddress, data.count, maxPixels, &image, err.baseAddress, err.count)
                case .webp: codec_webp_decode(data.baseAddress, data.count, maxPixels, &image, err.baseAddress, err.count)
                case .dicom: Int32(CODEC_ERR_UNSUPPORTED)  // rendered by DicomRenderer before this point
                }
            }
        }
        guard Int(rc) == CODEC_OK, let pixels = image.pixels else {
            throw ImagingError(code: rc, errorBuffer: errorBuffer, decoding: true)
        }
        defer { codec_free(pixels) }
        let count = Int(image.width) * Int(image.height) * Int(image.channels)
        return PixelImage(width: Int(image.width), height: Int(image.height), channels: Int(image.channels),
                          pixels: Array(UnsafeBufferPointer(start: pixels, count: count)))
    }
}

package enum ImageEncoder {
    /// Baseline JPEG, 4:2:0 (or libjpeg's standard progressive script). Alpha is dropped (JPEG has
    /// none); gray stays gray.
    package static func jpeg(_ image: PixelImage, quality: Int = 90, progressive: Bool = false) throws(ImagingError) -> [UInt8] {
        let input = image.channels == 4 ? image.converted(toChannels: 3) : image
        return try encode(input) { px, w, h, c, out, size, err, len in
            codec_jpeg_encode(px, w, h, c, Int32(clamping: quality), progressive ? 1 : 0, out, size, err, len)
        }
    }

    /// 8-bit PNG keeping the image's channels (gray, RGB or RGBA). `fast`: zlib level 1 (Z_RLE) and the Up
    /// filter (the same pixels in a few milliseconds, a larger file), for images written on a hot path.
    package static func png(_ image: PixelImage, fast: Bool = false) throws(ImagingError) -> [UInt8] {
        try encode(image) { px, w, h, c, out, size, err, len in
            codec_png_encode_fast(px, w, h, c, fast ? 1 : 0, out, size, err, len)
        }
    }

    /// Lossy WebP; gray is expanded to RGB (libwebp has no gray input).
    package static func webp(_ image: PixelImage, quality: Float = 80) throws(ImagingError) -> [UInt8] {
        let input = image.channels == 1 ? image.converted(toChannels: 3) : image
        return try encode(input) { px, w, h, c, out, size, err, len in
            codec_webp_encode(px, w, h, c, quality, out, size, err, len)
        }
    }

    private typealias EncodeCall = (
        UnsafePointer<UInt8>?, Int32, Int32, Int32,
        UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>, UnsafeMutablePointer<Int>,
        UnsafeMutablePointer<CChar>?, Int
    ) -> Int32

    private static func encode(_ image: PixelImage, _ call: EncodeCall) throws(ImagingError) -> [UInt8] {
        guard image.width > 0, image.height > 0, image.width <= Int(Int32.max), image.height <= Int(Int32.max),
              image.pixels.count == image.width * image.height * image.channels else {
            throw ImagingError(kind: .encodeFailed,
                               message: "cannot encode a \(image.width)x\(image.height)x\(image.channels) image with \(image.pixels.count) bytes")
        }
        var output: UnsafeMutablePointer<UInt8>? = nil
        var size = 0
        var errorBuffer = [CChar](repeating: 0, count: 512)
        let rc = image.pixels.withUnsafeBufferPointer { px in
            errorBuffer.withUnsafeMutableBufferPointer { err in
                call(px.baseAddress, Int32(image.width), Int32(image.height), Int32(image.channels),
                     &output, &size, err.baseAddress, err.count)
            }
        }
        guard Int(rc) == CODEC_OK, let output else {
            throw ImagingError(code: rc, errorBuffer: errorBuffer, decoding: false)
        }
        defer { codec_free(output) }
        return Array(UnsafeBufferPointer(start: output, count: size))
    }
}

extension ImagingError {
    init(code: Int32, errorBuffer: [CChar], decoding: Bool) {
        let text = errorBuffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let kind: Kind
        switch Int(code) {
        case CODEC_ERR_EMPTY: kind = .empty
        case CODEC_ERR_UNSUPPORTED: kind = decoding ? .unsupportedFormat : .encodeFailed
        case CODEC_ERR_TOO_LARGE: kind = .tooLarge
        // Running out of memory on a decode means the image is too large for this process.
        case CODEC_ERR_NOMEM: kind = decoding ? .tooLarge : .encodeFailed
        case CODEC_ERR_CORRUPT: kind = .corrupt
        case CODEC_ERR_TOO_COMPLEX: kind = .tooComplex
        case CODEC_ERR_VARIANT: kind = .unsupportedVariant
        default: kind = decoding ? .corrupt : .encodeFailed
        }
        self.init(kind: kind, message: text.isEmpty ? "image codec failed (code \(code))" : text)
    }
}
