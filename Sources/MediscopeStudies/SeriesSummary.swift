import Foundation

/// What the analyses of one series found, for the Studies view: its state, counts by state, per model
/// result the count of each prediction, and the slice with the highest probability of a binary result's
/// positive label (for the default model: the slice most likely to show a tumour).
package struct SeriesSummary: Sendable, Equatable, Codable {
    /// The series as a whole: `received` (nothing analysed yet), `analysing` (some analysed or running),
    /// `done` (every instance to analyse analysed), `failed` (nothing analysed, some failed).
    package var state: String
    /// Instances by state (`received`, `analysing`, `done`, `failed`, `skipped`).
    package var counts: [String: Int]
    /// Analysed instances the input check flagged as outside the models' scope.
    package var outOfScope: Int
    /// Why instances failed or were skipped, with how many each reason holds.
    package var reasons: [String: Int]
    /// Per model result, in the order the analyses list them.
    package var results: [ResultCounts]
    /// Per binary result, the analysed slice with the highest positive probability.
    package var highest: [Highest]

    /// One model result's predictions over the series.
    package struct ResultCounts: Sendable, Equatable, Codable {
        package var result: String
        package var title: String
        /// Analysed instances by predicted label.
        package var predictions: [String: Int]
        /// The counted labels as people read them, where the model names them.
        package var labelTitles: [String: String]
    }

    /// The slice of a series with the highest probability of a binary result's positive label.
    package struct Highest: Sendable, Equatable, Codable {
        package var result: String
        package var title: String
        package var label: String
        package var labelTitle: String?
        package var probability: Double
        package var analysisId: String
        package var sopInstanceUID: String
        package var instanceNumber: Int?
        /// Whether the input check flagged that slice as outside the models' scope.
        package var outOfScope: Bool?
    }

    /// The summary of `entries`, the instances of one series.
    package init(_ entries: [ReceivedInstanceEntry]) {
        var counts: [String: Int] = [:]
        for state in ReceivedInstanceEntry.State.allCases { counts[state.rawValue] = 0 }
        for entry in entries { counts[entry.state.rawValue, default: 0] += 1 }
        self.counts = counts
        let done = counts["done"] ?? 0, failed = counts["failed"] ?? 0
        let waiting = (counts["received"] ?? 0) + (counts["analysing"] ?? 0)
        state = waiting == 0 ? (done == 0 && failed > 0 ? "failed" : "done") : (done + failed == 0 && counts["analysing"] == 0 ? "received" : "analysing")
        outOfScope = entries.filter { $0.state == .done && $0.outOfScope == true }.count
        var reasons: [String: Int] = [:]
        for entry in entries where entry.state == .failed || entry.state == .skipped {
            reasons[entry.reason ?? "no reason recorded", default: 0] += 1
        }
        self.reasons = reasons
        var results: [ResultCounts] = []
        var highest: [String: Highest] = [:]
        var order: [String] = []
        for entry in entries where entry.state == .done {
            for finding in entry.findings {
                let i = results.firstIndex { $0.result == finding.result } ?? {
                    results.append(ResultCounts(result: finding.result, title: finding.title, predictions: [:], labelTitles: [:]))
                    return results.count - 1
                }()
                results[i].predictions[finding.prediction, default: 0] += 1
                if let title = finding.predictionTitle { results[i].labelTitles[finding.prediction] = title }
                guard let p = finding.positiveProbability, let label = finding.positiveLabel, let id = entry.analysisId else { continue }
                if highest[finding.result] == nil { order.append(finding.result) }
                if p > highest[finding.result]?.probability ?? -1 {
                    highest[finding.result] = Highest(result: finding.result, title: finding.title, label: label,
                                                      labelTitle: finding.positiveLabelTitle, probability: p, analysisId: id,
                                                      sopInstanceUID: entry.sopInstanceUID, instanceNumber: entry.instanceNumber,
                                                      outOfScope: entry.outOfScope)
                }
            }
        }
        self.results = results
        self.highest = order.compactMap { highest[$0] }
    }
}
