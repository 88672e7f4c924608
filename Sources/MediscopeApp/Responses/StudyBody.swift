import Foundation
import MediscopeStudies

/// A received study as the Studies view shows it: who, when, and per series its state, summary and
/// (in the study's own view) each instance with its analysis.
struct StudyBody: Encodable {
    var studyInstanceUID: String
    var patientId: String?
    var patientName: String?
    var studyDate: String?
    var studyDescription: String?
    var modalities: [String]
    var firstReceivedAt: Date
    var lastReceivedAt: Date
    var instances: Int
    var series: [SeriesBody]

    struct SeriesBody: Encodable {
        var seriesInstanceUID: String
        var seriesNumber: Int?
        var seriesDescription: String?
        var modality: String?
        var instances: Int
        var summary: SeriesSummary
        /// Each instance, in the study's own view only.
        var items: [InstanceBody]?
    }

    struct InstanceBody: Encodable {
        var sopInstanceUID: String
        var instanceNumber: Int?
        var state: String
        var reason: String?
        var analysisId: String?
        /// The analysis's API link, once done.
        var analysis: String?
        var findings: [ReceivedInstanceEntry.Finding]
        var outOfScope: Bool?
        var transport: String
        var receivedAt: Date
    }

    /// The study made of `entries` (every instance of one study, in series order); `detailed` lists instances.
    init(_ entries: [ReceivedInstanceEntry], detailed: Bool) {
        let first = entries[0]
        studyInstanceUID = first.studyInstanceUID
        patientId = first.patientId
        patientName = entries.lazy.compactMap(\.patientName).first
        studyDate = entries.lazy.compactMap(\.studyDate).first
        studyDescription = entries.lazy.compactMap(\.studyDescription).first
        var modalities: [String] = []
        for m in entries.compactMap(\.modality) where !modalities.contains(m) { modalities.append(m) }
        self.modalities = modalities
        firstReceivedAt = entries.map(\.receivedAt).min() ?? first.receivedAt
        lastReceivedAt = entries.map(\.receivedAt).max() ?? first.receivedAt
        instances = entries.count
        var order: [String] = []
        var bySeries: [String: [ReceivedInstanceEntry]] = [:]
        for e in entries {
            if bySeries[e.seriesInstanceUID] == nil { order.append(e.seriesInstanceUID) }
            bySeries[e.seriesInstanceUID, default: []].append(e)
        }
        series = order.map { uid in
            let items = bySeries[uid]!
            return SeriesBody(seriesInstanceUID: uid, seriesNumber: items.lazy.compactMap(\.seriesNumber).first,
                              seriesDescription: items.lazy.compactMap(\.seriesDescription).first,
                              modality: items.lazy.compactMap(\.modality).first, instances: items.count, summary: SeriesSummary(items),
                              items: detailed ? items.map(InstanceBody.init) : nil)
        }
    }
}

extension StudyBody.InstanceBody {
    init(_ e: ReceivedInstanceEntry) {
        self.init(sopInstanceUID: e.sopInstanceUID, instanceNumber: e.instanceNumber, state: e.state.rawValue, reason: e.reason,
                  analysisId: e.analysisId, analysis: e.analysisId.map { APILinks().analysis($0) }, findings: e.findings,
                  outOfScope: e.outOfScope, transport: e.transport, receivedAt: e.receivedAt)
    }
}
