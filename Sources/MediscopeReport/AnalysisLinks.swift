import MediscopeStore

/// Where an analysis's images are fetched from. The app owns its addresses (MediscopeApp's APILinks)
/// and hands them in, so the renderer never builds a URL of its own.
package protocol AnalysisLinks: Sendable {
    /// Absolute path of the display-size scan of `record`.
    func scan(of record: AnalysisRecord) -> String
    /// Absolute path of the Grad-CAM overlay of `result` in `record`.
    func heatmap(of result: StoredResult, in record: AnalysisRecord) -> String
}
