/// What the uploader says about an image (a form field) besides what a DICOM file says about itself.
public struct InputDeclaration: Sendable, Equatable {
    /// A DICOM modality code ("MR", "CT", ...); "MRI" is read as "MR".
    public var modality: String?
    /// A DICOM Body Part Examined value ("BRAIN", "HEAD", "CHEST", ...).
    public var bodyPart: String?
    public init(modality: String? = nil, bodyPart: String? = nil) {
        self.modality = modality
        self.bodyPart = bodyPart
    }
}
