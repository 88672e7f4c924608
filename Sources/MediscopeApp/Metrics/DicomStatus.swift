import Foundation
import MediscopeDicomOut
import MediscopeStore
import MediscopeStudies

/// What `/api/status`, `/api/metrics` and `/api/ready` say of DICOM receiving on this host: the listener's
/// state, its counters (associations, instances by outcome, failures by status) and the analysis backlog;
/// and of sending results back: each destination's queue and state.
struct DicomStatus: Encodable {
    /// `listening`, `off` (no `dicom.listen`), or `down: <why>`.
    var listener: String
    /// Associations by outcome: `accepted`, `rejected`, `aborted`.
    var associations: [String: Int64]
    /// Instances by transport (`c-store`, `stow-rs`) and outcome (`received`, `received_before`, `skipped`).
    var instances: [String: [String: Int64]]
    /// Instances refused, by transport and status (hex, `A700`, `A900`, `C000`; `receive`: cut off mid-way).
    var failures: [String: [String: Int64]]
    /// C-ECHOs answered.
    var echoes: Int64
    /// Received instances by where their analysis stands (`received` and `analysing` are the backlog).
    var analyses: [String: Int]

    /// Sending results back (`dicom.destinations`): each destination's queue and state; nil when none is configured.
    var destinations: [DicomDestinationStats]?

    var backlog: Int { (analyses["received"] ?? 0) + (analyses["analysing"] ?? 0) }

    /// The status from `index`'s counters and the listener's heartbeat.
    init(config: AppConfig, index: StudyIndex) throws(StoreError) {
        listener = config.dicom == nil ? "off" : ListenerHeartbeat.problem(config) ?? "listening"
        let counters = try index.counters()
        var associations: [String: Int64] = [:], instances: [String: [String: Int64]] = [:], failures: [String: [String: Int64]] = [:]
        for (name, value) in counters {
            let parts = name.split(separator: ":").map(String.init)
            switch (parts.first, parts.count) {
            case ("associations", 2): associations[parts[1]] = value
            case ("instances", 3): instances[parts[1], default: [:]][parts[2]] = value
            case ("failures", 3): failures[parts[1], default: [:]][parts[2]] = value
            default: break
            }
        }
        self.associations = associations
        self.instances = instances
        self.failures = failures
        echoes = counters["echoes"] ?? 0
        var analyses: [String: Int] = [:]
        for (state, n) in try index.countsByState() { analyses[state.rawValue] = n }
        self.analyses = analyses
    }

    /// Prometheus samples: (name, type, help, [(labels, value)]).
    var metrics: [(String, String, String, [(String, Double)])] {
        var out: [(String, String, String, [(String, Double)])] = []
        if listener != "off" {
            out.append(("dicom_listener_up", "gauge", "1 while the DICOM listener listens.", [("", listener == "listening" ? 1 : 0)]))
        }
        out.append(("dicom_associations_total", "counter", "DICOM associations by outcome (accepted, rejected, aborted).",
                    associations.sorted { $0.key < $1.key }.map { ("outcome=\"\($0.key)\"", Double($0.value)) }))
        out.append(("dicom_instances_total", "counter", "DICOM instances taken in, by transport and outcome.",
                    instances.sorted { $0.key < $1.key }.flatMap { t in
                        t.value.sorted { $0.key < $1.key }.map { ("transport=\"\(t.key)\",outcome=\"\($0.key)\"", Double($0.value)) }
                    }))
        out.append(("dicom_instance_failures_total", "counter", "DICOM instances refused, by transport and status (hex).",
                    failures.sorted { $0.key < $1.key }.flatMap { t in
                        t.value.sorted { $0.key < $1.key }.map { ("transport=\"\(t.key)\",status=\"\($0.key)\"", Double($0.value)) }
                    }))
        out.append(("dicom_analysis_backlog", "gauge", "Received instances waiting for or in analysis.", [("", Double(backlog))]))
        out.append(("dicom_received_instances", "gauge", "Received instances by where their analysis stands.",
                    ReceivedInstanceEntry.State.allCases.map { ("state=\"\($0.rawValue)\"", Double(analyses[$0.rawValue] ?? 0)) }))
        if let destinations, !destinations.isEmpty {
            func each(_ value: (DicomDestinationStats) -> Double?) -> [(String, Double)] {
                destinations.compactMap { d in value(d).map { ("destination=\"\(d.name)\"", $0) } }
            }
            let now = Date()
            out.append(("dicom_out_waiting", "gauge", "DICOM objects waiting to be sent, by destination.", each { Double($0.waiting) }))
            out.append(("dicom_out_parked", "gauge", "DICOM objects set aside until requeued, by destination.", each { Double($0.parked) }))
            out.append(("dicom_out_oldest_waiting_seconds", "gauge", "Age of the oldest DICOM object waiting, by destination.",
                        each { d in d.oldestWaitingAt.map { max(0, now.timeIntervalSince($0)) } ?? 0 }))
            out.append(("dicom_out_delivered_total", "counter", "DICOM objects the destination acknowledged.", each { Double($0.delivered) }))
            out.append(("dicom_out_refused_total", "counter", "Attempts the destination refused an object.", each { Double($0.refusedAttempts) }))
            out.append(("dicom_out_unreachable_total", "counter", "Rounds the destination could not be reached.",
                        each { Double($0.unreachableAttempts) }))
            out.append(("dicom_destination_up", "gauge", "1 when the destination answered its last round, 0 when not.",
                        each { d in d.reachable.map { $0 ? 1 : 0 } }))
        }
        return out
    }
}
