import CDicom

/// A lookup table from the first item of a Modality LUT Sequence (0028,3000) or VOI LUT Sequence
/// (0028,3010), PS3.3 C.11.1.1 and C.11.2.1.1.
package struct DicomLUT: Sendable, Equatable {
    /// Input value mapped to the first entry (LUT Descriptor value 2); inputs below map to the first
    /// entry, inputs past the end to the last.
    package var firstMapped: Int
    /// Bits per entry (LUT Descriptor value 3, 8...16): the output range is 0...2^bits - 1.
    package var bitsPerEntry: Int
    /// LUT Data (0028,3006), one value per entry.
    package var data: [UInt16]

    /// The entry for `value`, clamped to the table's ends.
    package func lookUp(_ value: Int) -> Int {
        Int(data[min(max(value - firstMapped, 0), data.count - 1)])
    }
}

/// The patient and study attributes of a DICOM file, as UTF-8 text (converted from its Specific
/// Character Set); nil when absent or unreadable. Patient data: never logged.
package struct DicomAttributes: Sendable, Equatable, Codable {
    package var patientID: String?
    /// Person Name as stored: components separated by `^` (family^given^middle^prefix^suffix).
    package var patientName: String?
    /// Age String: `nnnD`, `nnnW`, `nnnM` or `nnnY`.
    package var patientAge: String?
    /// Date: YYYYMMDD.
    package var patientBirthDate: String?
    /// `M`, `F` or `O`.
    package var patientSex: String?
    /// Modality code, e.g. `MR`, `CT`, `CR`.
    package var modality: String?
    package var bodyPartExamined: String?
    /// Date: YYYYMMDD.
    package var studyDate: String?
    package var seriesDescription: String?
    package var studyInstanceUID: String?
    package var seriesInstanceUID: String?
    package var sopInstanceUID: String?
    package var sopClassUID: String?
    package var studyDescription: String?
    /// Series Number and Instance Number (IS), when they are a decimal integer.
    package var seriesNumber: Int?
    package var instanceNumber: Int?
    /// Manufacturer (0008,0070).
    package var manufacturer: String?
    package init() {}
}

/// What a DICOM file says about its image (Image Pixel, Modality LUT and VOI LUT modules) and, when
/// asked for, one frame's stored values, read by DCMTK through the CDicom shim.
package struct DicomFile: Sendable {
    /// Transfer Syntax UID (0002,0010), or the one DCMTK recognised for a file without meta information.
    package var transferSyntaxUID: String
    /// DCMTK's name of the transfer syntax ("JPEG Lossless, Non-hierarchical, First-Order Prediction").
    package var transferSyntaxName: String
    package var attributes: DicomAttributes
    package var rows: Int
    package var columns: Int
    /// 1 (grey) or 3 (colour) when a frame was decoded.
    package var samplesPerPixel: Int
    /// 8 or 16 when a frame was decoded.
    package var bitsAllocated: Int
    package var bitsStored: Int
    /// 0 unsigned, 1 two's complement.
    package var pixelRepresentation: Int
    /// Layout of `frameValues` for colour: 0 colour-by-pixel, 1 colour-by-plane.
    package var planarConfiguration: Int
    package var numberOfFrames: Int
    /// The colour model of `frameValues` (`RGB` for a YBR JPEG frame DCMTK converted).
    package var photometricInterpretation: String
    /// The file's own Photometric Interpretation (0028,0004).
    package var storedPhotometricInterpretation: String
    /// Rescale Slope and Intercept (0028,1053 / 0028,1052) when both are present.
    package var rescale: (slope: Double, intercept: Double)?
    package var modalityLUT: DicomLUT?
    /// The first Window Center and Width (0028,1050 / 0028,1051), and how many the file offers.
    package var window: (center: Double, width: Double)?
    package var windowCount: Int
    /// VOI LUT Function (0028,1056): LINEAR (also when absent), LINEAR_EXACT or SIGMOID.
    package var voiLUTFunction: String
    package var voiLUT: DicomLUT?
    /// Pixel Padding Value (0028,0120) and, when given, Pixel Padding Range Limit (0028,0121): the stored
    /// values from one to the other (inclusive, either order) are padding, not image (PS3.3 C.7.5.1.1.2).
    package var pixelPadding: ClosedRange<Int32>?
    /// The decoded frame, 0-based (nil when pixels were not asked for).
    package var frameIndex: Int?
    /// rows x columns x samplesPerPixel stored values (bits above Bits Stored already cleared, signed
    /// values sign-extended), laid out as `planarConfiguration` says; or, for native YBR_FULL_422,
    /// two luminance values and one Cb, Cr pair per two pixels (PS3.3 C.7.6.3.1.2).
    package var frameValues: [Int32]

    /// Reads `bytes` (a PS3.10 file, with or without the preamble, or a bare data set).
    /// - Parameters:
    ///   - frame: 0-based frame to decode; nil: the middle one, (numberOfFrames - 1) / 2.
    ///   - decodePixels: false reads the attributes only (no Pixel Data needed).
    /// - Throws: `ImagingError`: `.unsupportedVariant` for a transfer syntax we do not decode (HTJ2K, JPEG 2000
    ///   Part 2 and others; the message names it) or an image layout we do not render; `.tooLarge` past
    ///   `limits.maxPixels` or the element size limit; `.tooComplex` for sequences nested too deep;
    ///   `.noSuchFrame`; `.corrupt` for anything malformed or undecodable, a file without Pixel Data
    ///   included; `.empty`; `.unsupportedFormat` when it is no DICOM data at all.
    package static func read(_ bytes: [UInt8], limits: ImageLimits = .init(), frame: Int? = nil,
                            decodePixels: Bool = true) throws(ImagingError) -> DicomFile {
        var image = dicom_image()
        var errorBuffer = [CChar](repeating: 0, count: 512)
        // The frame's own codestream is held to the scan budget of an uploaded JPEG by the shim (DCMTK has
        // its own copy of the IJG library, past our decoder's bounds).
        var l = dicom_limits(max_pixels: Int64(max(1, limits.maxPixels)), max_element_bytes: Int64(limits.maxDicomElementBytes),
                             max_sequence_depth: Int32(clamping: limits.maxDicomSequenceDepth),
                             max_jpeg_scans: Int64(max(1, limits.maxJPEGScans)),
                             max_jpeg_scan_pixels: Int64(max(1, limits.maxJPEGScanPixels)))
        let rc = bytes.withUnsafeBufferPointer { data in
            errorBuffer.withUnsafeMutableBufferPointer { err in
                dicom_read(data.baseAddress, data.count, &l, Int32(clamping: frame ?? -1), decodePixels ? 1 : 0,
                           &image, err.baseAddress, err.count)
            }
        }
        defer { dicom_image_free(&image) }
        guard Int(rc) == DICOM_OK else {
            let text = errorBuffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw ImagingError(dicomCode: rc, message: text)
        }
        return DicomFile(image)
    }

    private init(_ c: dicom_image) {
        var c = c
        transferSyntaxUID = text(&c.transfer_syntax_uid)
        transferSyntaxName = text(&c.transfer_syntax_name)
        rows = Int(c.rows)
        columns = Int(c.columns)
        samplesPerPixel = Int(c.samples_per_pixel)
        bitsAllocated = Int(c.bits_allocated)
        bitsStored = Int(c.bits_stored)
        pixelRepresentation = Int(c.pixel_representation)
        planarConfiguration = Int(c.planar_configuration)
        numberOfFrames = Int(c.number_of_frames)
        photometricInterpretation = text(&c.photometric_interpretation)
        storedPhotometricInterpretation = text(&c.stored_photometric_interpretation)
        rescale = c.has_rescale != 0 ? (c.rescale_slope, c.rescale_intercept) : nil
        modalityLUT = DicomLUT(c.modality_lut)
        windowCount = Int(c.window_count)
        window = c.window_count > 0 ? (c.window_center, c.window_width) : nil
        voiLUTFunction = text(&c.voi_lut_function).uppercased()
        voiLUT = DicomLUT(c.voi_lut)
        if c.has_pixel_padding != 0 {
            let limit = c.has_pixel_padding_range != 0 ? c.pixel_padding_range_limit : c.pixel_padding_value
            pixelPadding = min(c.pixel_padding_value, limit)...max(c.pixel_padding_value, limit)
        } else {
            pixelPadding = nil
        }
        var a = DicomAttributes()
        a.patientID = field(c.patient_id)
        a.patientName = field(c.patient_name)
        a.patientAge = field(c.patient_age)
        a.patientBirthDate = field(c.patient_birth_date)
        a.patientSex = field(c.patient_sex)
        a.modality = field(c.modality)
        a.bodyPartExamined = field(c.body_part_examined)
        a.studyDate = field(c.study_date)
        a.seriesDescription = field(c.series_description)
        a.studyInstanceUID = field(c.study_instance_uid)
        a.seriesInstanceUID = field(c.series_instance_uid)
        a.sopInstanceUID = field(c.sop_instance_uid)
        a.sopClassUID = field(c.sop_class_uid)
        a.studyDescription = field(c.study_description)
        a.seriesNumber = field(c.series_number).flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        a.instanceNumber = field(c.instance_number).flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        a.manufacturer = field(c.manufacturer)
        attributes = a
        if let data = c.frame_data {
            frameIndex = Int(c.frame_index)
            frameValues = Self.values(data, size: c.frame_size, bitsAllocated: bitsAllocated, bitsStored: bitsStored,
                                      signed: pixelRepresentation == 1)
        } else {
            frameIndex = nil
            frameValues = []
        }
    }

    /// Stored values as integers: masked to Bits Stored (High Bit is Bits Stored - 1, checked by the
    /// shim) and sign-extended when Pixel Representation is 1.
    private static func values(_ data: UnsafeMutablePointer<UInt8>, size: Int, bitsAllocated: Int, bitsStored: Int,
                               signed: Bool) -> [Int32] {
        let count = bitsAllocated == 16 ? size / 2 : size
        let mask = Int32((1 << bitsStored) - 1)
        let sign = Int32(1 << (bitsStored - 1))
        return [Int32](unsafeUninitializedCapacity: count) { out, initialized in
            if bitsAllocated == 16 {
                let words = UnsafeRawPointer(data).bindMemory(to: UInt16.self, capacity: count)
                for i in 0..<count { out[i] = Int32(words[i]) & mask }
            } else {
                for i in 0..<count { out[i] = Int32(data[i]) & mask }
            }
            if signed {
                for i in 0..<count where out[i] & sign != 0 { out[i] -= sign << 1 }
            }
            initialized = count
        }
    }
}

extension DicomLUT {
    init?(_ c: dicom_lut) {
        guard c.entries > 0, let data = c.data else { return nil }
        firstMapped = Int(c.first_mapped)
        bitsPerEntry = Int(c.bits)
        self.data = Array(UnsafeBufferPointer(start: data, count: Int(c.entries)))
    }
}

extension ImagingError {
    init(dicomCode code: Int32, message: String) {
        let kind: Kind
        switch Int(code) {
        case DICOM_ERR_EMPTY: kind = .empty
        case DICOM_ERR_NOT_DICOM: kind = .unsupportedFormat
        case DICOM_ERR_TOO_LARGE, DICOM_ERR_NOMEM: kind = .tooLarge
        case DICOM_ERR_TOO_COMPLEX: kind = .tooComplex
        case DICOM_ERR_TRANSFER_SYNTAX, DICOM_ERR_VARIANT: kind = .unsupportedVariant
        case DICOM_ERR_FRAME: kind = .noSuchFrame
        default: kind = .corrupt
        }
        self.init(kind: kind, message: message.isEmpty ? "the DICOM file cannot be read (code \(code))" : message)
    }
}

private func text<T>(_ tuple: inout T) -> String {
    withUnsafeBytes(of: &tuple) { raw in
        let bytes = raw.prefix { $0 != 0 }
        return String(validating: bytes, as: UTF8.self) ?? ""
    }
}

/// A text field, or nil when empty or not valid UTF-8 (a character set DCMTK could not convert).
private func field(_ t: dicom_text) -> String? {
    var t = t
    let s = withUnsafeBytes(of: &t.value) { raw -> String? in
        String(validating: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
    guard let s, !s.isEmpty else { return nil }
    return s
}
