/// What the uploader says about an image (a form field) besides what a DICOM file says about itself.
package struct InputDeclaration: Sendable, Equatable {
    /// A DICOM modality code ("MR", "CT", ...); "MRI" is read as "MR".
    package var modality: String?
    /// A DICOM Body Part Examined value ("BRAIN", "HEAD", "CHEST", ...).
    package var bodyPart: String?
    package init(modality: String? = nil, bodyPart: String? = nil) {
        self.modality = modality
        self.bodyPart = bodyPart
    }
}
