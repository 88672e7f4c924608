import Foundation

/// How a DICOM frame became the 8-bit image that was analysed and shown (PS3.3 C.11): stored with the
/// analysis so the window can be shown beside it.
package struct DicomRendering: Sendable, Equatable, Codable {
    /// The frame rendered, 1-based as DICOM numbers frames, and how many the file has.
    package var frame: Int
    package var numberOfFrames: Int
    /// The file's Photometric Interpretation (MONOCHROME1 output is inverted).
    package var photometricInterpretation: String
    /// `rescale` (Rescale Slope and Intercept), `lutSequence` (Modality LUT Sequence) or `none`; colour: `none`.
    package var modalityLUT: String
    package var rescaleSlope: Double?
    package var rescaleIntercept: Double?
    /// `window` (the file's first Window Center/Width), `lutSequence` (VOI LUT Sequence), `frameRange`
    /// (no VOI in the file: the frame's lowest to highest modality value) or `none` (colour).
    package var voi: String
    /// The window applied, in modality units (for `frameRange`: the equivalent LINEAR_EXACT window).
    package var windowCenter: Double?
    package var windowWidth: Double?
    /// LINEAR, LINEAR_EXACT or SIGMOID for `window`; LINEAR_EXACT for `frameRange`.
    package var voiLUTFunction: String?
    package var transferSyntaxUID: String

    package init(frame: Int, numberOfFrames: Int, photometricInterpretation: String, modalityLUT: String,
                rescaleSlope: Double? = nil, rescaleIntercept: Double? = nil, voi: String, windowCenter: Double? = nil,
                windowWidth: Double? = nil, voiLUTFunction: String? = nil, transferSyntaxUID: String) {
        self.frame = frame; self.numberOfFrames = numberOfFrames; self.photometricInterpretation = photometricInterpretation
        self.modalityLUT = modalityLUT; self.rescaleSlope = rescaleSlope; self.rescaleIntercept = rescaleIntercept
        self.voi = voi; self.windowCenter = windowCenter; self.windowWidth = windowWidth
        self.voiLUTFunction = voiLUTFunction; self.transferSyntaxUID = transferSyntaxUID
    }
}

/// A DICOM frame as an 8-bit image, as PS3.3 defines it: Modality LUT (rescale or Modality LUT
/// Sequence), then VOI (the first window with its VOI LUT Function, else the VOI LUT Sequence, else the
/// frame's full range), then MONOCHROME1 inverted. Colour (RGB, YBR_FULL, YBR_FULL_422) is converted to
/// RGB and scaled from Bits Stored to 8 bits. Output levels are rounded to nearest.
package enum DicomRenderer {
    /// Reads and renders one frame (nil: the middle one; 0-based otherwise).
    /// - Returns: 1 channel (grey) or 3 (RGB), and how it was rendered.
    /// - Throws: `ImagingError` from `DicomFile.read`, or `.corrupt` when the frame's values do not
    ///   match its declared size.
    package static func decode(_ bytes: [UInt8], limits: ImageLimits = .init(),
                              frame: Int? = nil) throws(ImagingError) -> (PixelImage, DicomRendering) {
        try render(DicomFile.read(bytes, limits: limits, frame: frame))
    }

    package static func render(_ file: DicomFile) throws(ImagingError) -> (PixelImage, DicomRendering) {
        let pixels = file.rows * file.columns
        var info = DicomRendering(frame: (file.frameIndex ?? 0) + 1, numberOfFrames: file.numberOfFrames,
                                  photometricInterpretation: file.storedPhotometricInterpretation,
                                  modalityLUT: "none", voi: "none", transferSyntaxUID: file.transferSyntaxUID)
        if file.samplesPerPixel == 3 {
            return (try colour(file, pixels: pixels), info)
        }
        guard file.frameValues.count >= pixels, pixels > 0 else {
            throw ImagingError(kind: .corrupt, message: "the frame has \(file.frameValues.count) values for \(file.columns)x\(file.rows) pixels")
        }
        // Every step maps a stored value to one output level, so one table over the stored range does it.
        let low = file.pixelRepresentation == 1 ? -(1 << (file.bitsStored - 1)) : 0
        let size = 1 << file.bitsStored
        var present = [Bool](repeating: false, count: size)
        for i in 0..<pixels { present[Int(file.frameValues[i]) - low] = true }
        // Padding is not image: it takes no part in the frame's range and shows as its lowest value.
        var padding: ClosedRange<Int>?
        if let p = file.pixelPadding {
            let range = max(Int(p.lowerBound), low)...max(min(Int(p.upperBound), low + size - 1), low)
            if range.lowerBound <= range.upperBound, (0..<size).contains(where: { present[$0] && !range.contains($0 + low) }) {
                padding = range
                for v in range where v - low < size { present[v - low] = false }
            }
        }

        let modality: (Int) -> Double
        if let lut = file.modalityLUT {
            info.modalityLUT = "lutSequence"
            modality = { Double(lut.lookUp($0)) }
        } else if let (slope, intercept) = file.rescale, slope != 0, slope.isFinite, intercept.isFinite {
            // A slope of 0 or a value that is not a number is no rescale (as DCMTK's renderer treats it).
            info.modalityLUT = "rescale"
            info.rescaleSlope = slope
            info.rescaleIntercept = intercept
            modality = { Double($0) * slope + intercept }
        } else {
            modality = { Double($0) }
        }
        let voi = try voiFunction(file, modality: modality, present: present, low: low, info: &info)
        let invert = file.storedPhotometricInterpretation == "MONOCHROME1"
        var table = [UInt8](repeating: 0, count: size)
        func level(_ stored: Int) -> UInt8 {
            let x = voi(modality(stored))
            let level = x.isNaN ? 0 : UInt8(min(255, max(0, (x + 0.5).rounded(.down))))
            return invert ? 255 - level : level
        }
        for v in 0..<size where present[v] { table[v] = level(v + low) }
        if let padding, let lowest = present.firstIndex(of: true) {
            let fill = table[lowest]
            for v in padding where v - low < size { table[v - low] = fill }
        }
        let out = [UInt8](unsafeUninitializedCapacity: pixels) { dst, initialized in
            file.frameValues.withUnsafeBufferPointer { src in
                for i in 0..<pixels { dst[i] = table[Int(src[i]) - low] }
            }
            initialized = pixels
        }
        return (PixelImage(width: file.columns, height: file.rows, channels: 1, pixels: out), info)
    }

    /// The VOI step as a function from modality values to levels 0...255 (unrounded).
    private static func voiFunction(_ file: DicomFile, modality: (Int) -> Double, present: [Bool], low: Int,
                                    info: inout DicomRendering) throws(ImagingError) -> (Double) -> Double {
        if let (c, w) = file.window, c.isFinite, w.isFinite, let f = windowFunction(center: c, width: w, function: file.voiLUTFunction) {
            info.voi = "window"
            info.windowCenter = c
            info.windowWidth = w
            info.voiLUTFunction = file.voiLUTFunction
            return f
        }
        if let lut = file.voiLUT {
            info.voi = "lutSequence"
            let top = Double((1 << lut.bitsPerEntry) - 1)
            return { Double(lut.lookUp(Int($0.rounded(.down)))) * 255 / top }
        }
        var lowest = Double.infinity, highest = -Double.infinity
        for v in 0..<present.count where present[v] {
            let m = modality(v + low)
            lowest = min(lowest, m)
            highest = max(highest, m)
        }
        info.voi = "frameRange"
        info.windowCenter = (lowest + highest) / 2
        info.windowWidth = highest - lowest
        info.voiLUTFunction = "LINEAR_EXACT"
        guard highest > lowest else { return { _ in 0 } }
        return { ($0 - lowest) / (highest - lowest) * 255 }
    }

    /// PS3.3 C.11.2.1.2 (LINEAR), C.11.2.1.3.1 (SIGMOID) and C.11.2.1.3.2 (LINEAR_EXACT) onto 0...255;
    /// nil for a width the function does not allow (then the next VOI source is used).
    static func windowFunction(center c: Double, width w: Double, function: String) -> ((Double) -> Double)? {
        switch function {
        case "LINEAR_EXACT":
            guard w > 0 else { return nil }
            return { x in x <= c - w / 2 ? 0 : x > c + w / 2 ? 255 : ((x - c) / w + 0.5) * 255 }
        case "SIGMOID":
            guard w > 0 else { return nil }
            return { x in 255 / (1 + exp(-4 * (x - c) / w)) }
        default:  // LINEAR, also for an unknown function
            guard w >= 1 else { return nil }
            return { x in
                x <= c - 0.5 - (w - 1) / 2 ? 0 : x > c - 0.5 + (w - 1) / 2 ? 255 : ((x - (c - 0.5)) / (w - 1) + 0.5) * 255
            }
        }
    }

    /// RGB, YBR_FULL or YBR_FULL_422 to 8-bit RGB.
    private static func colour(_ file: DicomFile, pixels: Int) throws(ImagingError) -> PixelImage {
        let v = file.frameValues
        let model = file.photometricInterpretation
        let subsampled = model == "YBR_FULL_422" && v.count < pixels * 3
        // Subsampled pairs run on across rows, as pydicom reads them, so an odd width is read too.
        guard pixels > 0, subsampled ? v.count >= (pixels + 1) / 2 * 4 - (pixels % 2) * 2 : v.count >= pixels * 3 else {
            throw ImagingError(kind: .corrupt, message: "the frame has \(v.count) values for \(file.columns)x\(file.rows) colour pixels")
        }
        let top = Double((1 << file.bitsStored) - 1)
        func scale(_ x: Int32) -> Double { file.bitsStored == 8 ? Double(x) : Double(x) * 255 / top }
        func level(_ x: Double) -> UInt8 { UInt8(min(255, max(0, (x + 0.5).rounded(.down)))) }
        var out = [UInt8](repeating: 0, count: pixels * 3)
        let planar = file.planarConfiguration == 1 && !subsampled
        for i in 0..<pixels {
            var a: Double, b: Double, c: Double
            if subsampled {
                // Y1 Y2 Cb Cr for each pair of pixels on a row.
                let pair = i / 2 * 4
                a = scale(v[pair + i % 2])
                // An odd pixel count leaves the last pixel without a Cb, Cr pair: it is grey.
                b = pair + 3 < v.count ? scale(v[pair + 2]) : 128; c = pair + 3 < v.count ? scale(v[pair + 3]) : 128
            } else if planar {
                a = scale(v[i]); b = scale(v[pixels + i]); c = scale(v[2 * pixels + i])
            } else {
                a = scale(v[3 * i]); b = scale(v[3 * i + 1]); c = scale(v[3 * i + 2])
            }
            if model.hasPrefix("YBR") {
                // PS3.3 C.7.6.3.1.2 YBR_FULL (ITU-R BT.601, full range).
                (a, b, c) = (a + 1.402 * (c - 128), a - 0.344136 * (b - 128) - 0.714136 * (c - 128), a + 1.772 * (b - 128))
            }
            out[3 * i] = level(a); out[3 * i + 1] = level(b); out[3 * i + 2] = level(c)
        }
        return PixelImage(width: file.columns, height: file.rows, channels: 3, pixels: out)
    }
}
