import MediscopeInference
import MediscopeStore

/// What one upload produced, handed back once: the stored record (durable), the time of every stage
/// including the store's, and which models are loaded now (the scoreboard shows them).
struct UploadOutcome {
    /// The analysis as stored; its `id` is what the audit entry of the upload names.
    let record: AnalysisRecord
    /// The analysis's stage times (decode, encode, the input check, ...), all models together.
    let timings: StageTimings
    /// Each model's own preprocess, forward and Grad-CAM times, by model id.
    let modelTimings: [String: StageTimings]
    /// Milliseconds the store took to make the record durable.
    let storeMilliseconds: Double
    /// The models loaded in this worker after the analysis, by id.
    let loadedModelIDs: [String]
}
