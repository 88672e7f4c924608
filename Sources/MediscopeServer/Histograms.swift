import CServerSupport
import Foundation

/// Prometheus histograms of durations in shared memory: the master maps the table before forking,
/// every worker adds observations, and whichever worker serves /api/metrics renders them all.
///
/// It lives apart from the scoreboard (its own mapping, `histograms.c`), so the scoreboard's layout
/// stays the process manager's own. Each series is a metric name plus its labels; the first process
/// to observe one claims it. Observations never fail loudly: a full table drops them, and metrics are
/// never worth a failed request.
package final class SharedHistograms: @unchecked Sendable {
    // Shared with forked children; only ever touched through the C functions.
    private let table: OpaquePointer
    /// Upper bounds of the buckets in seconds, ascending; the implicit last bucket is +Inf.
    package let bounds: [Double]

    /// Bounds for request stages: 1 ms to 60 s.
    package static let stageBounds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    /// Maps a fresh, empty table. Call it in the master, before the workers are forked.
    package init(bounds: [Double] = SharedHistograms.stageBounds) throws {
        precondition(!bounds.isEmpty && bounds.count < Int(MS_HIST_BUCKETS_MAX) && bounds == bounds.sorted(),
                     "histogram bounds must be ascending and fewer than \(MS_HIST_BUCKETS_MAX)")
        guard let table = ms_histograms_create() else {
            throw ServerError("cannot map the histograms: \(errnoText())")
        }
        self.table = table
        self.bounds = bounds
    }

    deinit { ms_histograms_destroy(table) }

    /// Adds one observation of `seconds` to the series `name{labels}`; `labels` is Prometheus label
    /// text without braces (`stage="forward",model="m"`), values already escaped.
    package func observe(_ name: String, labels: String, seconds: Double) {
        guard seconds.isFinite else { return }
        let series = ms_histograms_series(table, name + "|" + labels)
        guard series >= 0 else { return }
        let value = max(0, seconds)
        let bucket = bounds.firstIndex { value <= $0 } ?? bounds.count
        _ = ms_histograms_observe(table, series, Int32(bucket), UInt64((value * 1e6).rounded()))
    }

    /// Adds one to the counter `name{labels}`: a series whose name ends in `_total`, rendered as a
    /// Prometheus counter (its observation count) rather than a histogram.
    package func increment(_ name: String, labels: String) {
        precondition(name.hasSuffix("_total"), "a counter's name ends in _total")
        observe(name, labels: labels, seconds: 0)
    }

    /// One series as read from the table.
    package struct Series: Sendable, Equatable {
        /// Metric name, e.g. `mediscope_stage_seconds`.
        package var name: String
        /// Label text without braces.
        package var labels: String
        /// Observations per bucket (not cumulative), the last one being +Inf.
        package var counts: [UInt64]
        /// Sum of the observations in seconds.
        package var sum: Double
    }

    /// Every claimed series, sorted by name and labels.
    package var series: [Series] {
        var out: [Series] = []
        var key = [CChar](repeating: 0, count: Int(MS_HIST_KEY_MAX))
        var counts = [UInt64](repeating: 0, count: Int(MS_HIST_BUCKETS_MAX))
        for i in 0..<Int32(MS_HIST_SERIES_MAX) {
            var count: UInt64 = 0, sum: UInt64 = 0
            guard ms_histograms_read(table, i, &key, &counts, &count, &sum) == 1 else { continue }
            let text = String(decoding: key.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let parts = text.split(separator: "|", maxSplits: 1, omittingEmptySubsequences: false)
            out.append(Series(name: String(parts[0]), labels: parts.count > 1 ? String(parts[1]) : "",
                              counts: Array(counts.prefix(bounds.count + 1)), sum: Double(sum) / 1e6))
        }
        return out.sorted { ($0.name, $0.labels) < ($1.name, $1.labels) }
    }

    /// Prometheus text for every series, with `help` per metric name (HELP and TYPE once per name).
    /// The histograms in Prometheus' text format; `extraLabels` (e.g. `host="a"`) go on every sample.
    package func prometheus(help: [String: String], extraLabels: String = "") -> String {
        var out = ""
        var named = ""
        for var s in series {
            if !extraLabels.isEmpty { s.labels = s.labels.isEmpty ? extraLabels : extraLabels + "," + s.labels }
            let counter = s.name.hasSuffix("_total")
            if s.name != named {
                named = s.name
                out += "# HELP \(s.name) \(help[s.name] ?? (counter ? "A count." : "Durations in seconds."))\n"
                    + "# TYPE \(s.name) \(counter ? "counter" : "histogram")\n"
            }
            if counter {
                out += "\(s.name)\(s.labels.isEmpty ? "" : "{\(s.labels)}") \(s.counts.reduce(0, +))\n"
                continue
            }
            let sep = s.labels.isEmpty ? "" : ","
            var cumulative: UInt64 = 0
            for (i, count) in s.counts.enumerated() {
                cumulative += count
                let le = i < bounds.count ? Self.number(bounds[i]) : "+Inf"
                out += "\(s.name)_bucket{\(s.labels)\(sep)le=\"\(le)\"} \(cumulative)\n"
            }
            let braces = s.labels.isEmpty ? "" : "{\(s.labels)}"
            out += "\(s.name)_sum\(braces) \(Self.number(s.sum))\n\(s.name)_count\(braces) \(cumulative)\n"
        }
        return out
    }

    private static func number(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)
    }
}
