import MediscopeImaging

extension AnalysisStore {
    /// The bytes of the image `ref` names. A heatmap drawn when first looked at (`ref.drawing`) is read
    /// as kept, else drawn now from its lossless scan and kept (`keepDrawn`), so whoever needs it first
    /// (the API, a report, a migration) draws it once. nil when the image, or the scan it is drawn on, is
    /// missing. A heatmap that cannot be kept now (the store is busy or down) is still returned, and
    /// drawn again next time.
    /// - Throws: `StoreError` when the store cannot be read or the drawing fails (`.io`).
    package func bytes(of ref: ImageRef) throws(StoreError) -> [UInt8]? {
        if let stored = try imageBytes(key: ref.key) { return stored }
        guard let drawing = ref.drawing, let format = ref.format else { return nil }
        guard let scan = try imageBytes(key: drawing.scan) else { return nil }
        let bytes = try drawing.draw(on: scan, format: format)
        try? keepDrawn(ref, bytes: bytes)
        return bytes
    }
}
