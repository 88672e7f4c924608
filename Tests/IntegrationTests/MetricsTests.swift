import Foundation
import Testing

/// Stage and queueing-time histograms in /api/metrics, through real nginx and the real pool.
@Suite(.serialized) final class MetricsTests {
    let stack: Stack
    init() async throws { stack = try await Stack.start() }
    deinit { stack.stop() }

    /// Every sample carries the stack's host label first.
    static let stages = ["stage=\"decode\"", "stage=\"encode\"", "stage=\"store\"",
                         "stage=\"preprocess\",model=\"brain-tumor-vgg16\"", "stage=\"forward\",model=\"brain-tumor-vgg16\"",
                         "stage=\"gradcam\",model=\"brain-tumor-vgg16\""].map { "host=\"\(Stack.hostName)\"," + $0 }
    static let bounds = ["0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "+Inf"]

    func metrics() async throws -> String {
        let r = try await stack.request("GET", "/api/metrics")
        #expect(r.status == 200)
        return String(decoding: r.body, as: UTF8.self)
    }

    /// The value of the sample line that starts with `series` followed by a space.
    func value(_ text: String, _ series: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.dropFirst(series.count + 1)) }
    }

    @Test func stageAndQueueHistogramsCountEachAnalysisOnce() async throws {
        #expect(try await stack.upload(image: try Scans.jpeg).status == 201)   // loads the model
        let before = try await metrics()
        #expect(before.contains("# TYPE mediscope_stage_seconds histogram"))
        #expect(before.contains("# TYPE mediscope_queue_seconds histogram"))
        for labels in Self.stages {
            for le in Self.bounds {
                #expect(value(before, "mediscope_stage_seconds_bucket{\(labels),le=\"\(le)\"}") != nil, "bucket \(le) of \(labels)")
            }
            let count = value(before, "mediscope_stage_seconds_count{\(labels)}")
            #expect(count == value(before, "mediscope_stage_seconds_bucket{\(labels),le=\"+Inf\"}"))
            #expect((count ?? 0) >= 1, "\(labels)")
        }

        #expect(try await stack.upload(image: try Scans.png).status == 201)
        let after = try await metrics()
        for labels in Self.stages {
            let grew = (value(after, "mediscope_stage_seconds_count{\(labels)}") ?? 0)
                - (value(before, "mediscope_stage_seconds_count{\(labels)}") ?? 0)
            #expect(grew == 1, "\(labels) grew by \(grew)")
            #expect((value(after, "mediscope_stage_seconds_sum{\(labels)}") ?? 0) > 0)
        }
        // Exactly one request reached the inference pool in between: the upload.
        let queue = "mediscope_queue_seconds_count{host=\"it-host\",pool=\"inference\"}"
        #expect((value(after, queue) ?? 0) - (value(before, queue) ?? 0) == 1)
        #expect(value(after, "mediscope_queue_seconds_bucket{host=\"it-host\",pool=\"inference\",le=\"+Inf\"}") == value(after, queue))
        #expect((value(after, "mediscope_queue_seconds_count{host=\"it-host\",pool=\"io\"}") ?? 0) >= 1)
    }
}
