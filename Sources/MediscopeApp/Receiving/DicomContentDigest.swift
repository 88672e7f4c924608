import Foundation
import MediscopeIdempotency
import MediscopeImaging

/// What makes a received instance the same instance for Mediscope: its identifying and patient
/// attributes, how its frame is rendered, and the decoded values of the frame analysed; not its bytes.
/// The same data set arrives with other bytes when another sender sends it (DCMTK writes the File Meta
/// Information anew, the sender's AE title in it), through the other route (C-STORE vs STOW-RS), or in
/// another lossless transfer syntax; it must be recognised, while a corrected resend (another patient
/// name, other pixels) must not.
enum DicomContentDigest {
    static func of(_ file: DicomFile) -> String {
        var d = RequestFingerprint("dicom instance content")
        let a = file.attributes
        for value in [a.sopClassUID, a.sopInstanceUID, a.studyInstanceUID, a.seriesInstanceUID, a.patientID, a.patientName,
                      a.patientBirthDate, a.patientSex, a.patientAge, a.modality, a.bodyPartExamined, a.studyDate,
                      a.studyDescription, a.seriesDescription, a.seriesNumber.map(String.init), a.instanceNumber.map(String.init)] {
            d.add(value ?? "\u{0}absent")
        }
        d.add("\(file.rows)x\(file.columns)x\(file.samplesPerPixel) \(file.bitsStored)/\(file.pixelRepresentation) "
              + "\(file.numberOfFrames) \(file.photometricInterpretation) \(file.planarConfiguration)")
        d.add(file.rescale.map { "\($0.slope) \($0.intercept)" } ?? "-")
        d.add(file.window.map { "\($0.center) \($0.width) \(file.windowCount)" } ?? "-")
        d.add(file.voiLUTFunction)
        for lut in [file.modalityLUT, file.voiLUT] {
            d.add(lut.map { "\($0.firstMapped) \($0.bitsPerEntry) " + $0.data.map(String.init).joined(separator: ",") } ?? "-")
        }
        d.add(file.pixelPadding.map { "\($0.lowerBound) \($0.upperBound)" } ?? "-")
        d.add("\(file.frameIndex ?? -1)")
        d.add(file.frameValues.withUnsafeBytes { Array($0) })
        return d.hex
    }
}
