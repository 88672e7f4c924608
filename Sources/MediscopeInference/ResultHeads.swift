import Foundation
import MediscopeImaging

/// Turns one model's logits and Grad-CAM maps into its results: its own and the derived ones.
struct ResultHeads {
    let spec: ModelSpec
    /// How many logits the model returns (known once it is loaded and checked).
    let outputs: Int

    private var derived: [DerivedSpec] { spec.derived ?? [] }

    /// Grad-CAM targets in result order: the model's own result first, then each derived one.
    func targets() -> [CAMTarget] {
        var targets: [CAMTarget] = []
        switch spec.task {
        case .multiclass: targets.append(.topClass)
        // One logit is already the positive log-odds; two are softmaxed, so explain their difference.
        case .binary: targets.append(outputs == 1 ? CAMTarget(positive: [0]) : CAMTarget(positive: [1], negative: [0]))
        }
        for d in derived {
            let negative = negativeIndices(d)
            let positive = spec.labels.indices.filter { !negative.contains($0) }
            targets.append(CAMTarget(positive: positive.map(Int32.init), negative: negative.map(Int32.init)))
        }
        return targets
    }

    private func negativeIndices(_ d: DerivedSpec) -> [Int] {
        d.negative.compactMap { spec.labels.firstIndex(of: $0) }
    }

    func outcomes(_ output: ModelOutput) throws(ModelError) -> [ResultOutcome] {
        let logits = output.logits.map(Double.init)
        guard spec.expectedOutputs.contains(logits.count) else {
            throw ModelError(.wrongShape, "model \(spec.id) returned \(logits.count) outputs for \(spec.labels.count) labels")
        }
        guard logits.allSatisfy(\.isFinite) else {
            throw ModelError(.runtime, "model \(spec.id) returned a non-finite logit")
        }
        guard output.cams.count == 1 + derived.count else {
            throw ModelError(.runtime, "model \(spec.id) returned \(output.cams.count) Grad-CAM maps, expected \(1 + derived.count)")
        }
        let title = spec.title ?? spec.id
        var results: [ResultOutcome] = []

        let probabilities: [Double]
        if spec.task == .binary && logits.count == 1 {
            let p = 1 / (1 + exp(-logits[0]))
            probabilities = [1 - p, p]
        } else {
            probabilities = softmax(logits)
        }
        switch spec.task {
        case .multiclass:
            let top = probabilities.indices.max { probabilities[$0] < probabilities[$1] }!
            results.append(outcome(id: spec.id, title: title, task: .multiclass, labels: spec.labels, titles: spec.labelTitles,
                                   probabilities: probabilities, prediction: top, explained: top, cam: output.cams[0]))
        case .binary:
            results.append(binaryOutcome(id: spec.id, title: title, labels: spec.labels, titles: spec.labelTitles,
                                         positive: probabilities[1], cam: output.cams[0]))
        }
        for (i, d) in derived.enumerated() {
            let negative = negativeIndices(d).reduce(0.0) { $0 + probabilities[$1] }
            results.append(binaryOutcome(id: d.id, title: d.title ?? d.id, labels: d.labels, titles: d.labelTitles,
                                         positive: max(0, 1 - negative), cam: output.cams[1 + i]))
        }
        return results
    }

    private func binaryOutcome(id: String, title: String, labels: [String], titles: [String: String]?,
                               positive: Double, cam: FloatMap) -> ResultOutcome {
        let probabilities = [1 - positive, positive]
        return outcome(id: id, title: title, task: .binary, labels: labels, titles: titles, probabilities: probabilities,
                       prediction: positive >= 0.5 ? 1 : 0, explained: 1, cam: cam)
    }

    private func outcome(id: String, title: String, task: Task, labels: [String], titles: [String: String]?,
                         probabilities: [Double], prediction: Int, explained: Int, cam: FloatMap) -> ResultOutcome {
        ResultOutcome(
            id: id, model: spec.id, title: title, task: task,
            probabilities: zip(labels, probabilities).map {
                LabelProbability(label: $0, title: titles?[$0] ?? $0, probability: $1)
            },
            prediction: labels[prediction], confidence: probabilities[prediction],
            explainedLabel: labels[explained], gradCAM: cam.minMaxNormalized())
    }
}

func softmax(_ logits: [Double]) -> [Double] {
    let top = logits.max() ?? 0
    let exps = logits.map { exp($0 - top) }
    let sum = exps.reduce(0, +)
    return exps.map { $0 / sum }
}
