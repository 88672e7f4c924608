import Foundation
import MediscopeJobs
import MediscopeOutbox
import MediscopeServer

/// The pool status page (JSON) and Prometheus metrics, both read from the shared scoreboard.
enum Status {
    struct PoolStatus: Encodable {
        var listen: String
        var configuredWorkers: Int
        var listenQueue: Int?
        var listenQueueLimit: Int?
        var snapshot: PoolSnapshot
    }

    /// The outbox of writes bound for Firestore (store = firestore only).
    struct OutboxStatus: Encodable {
        var depth: Int
        var oldestAgeSeconds: Double?
        var deliveries: Int64
        var retries: Int64
        var parked: Int
        var parkedTotal: Int64
        var firestore: String
        var firestoreSince: Date?
        var firestoreLastError: String?

        init(_ stats: OutboxStats, now: Date = Date()) {
            depth = stats.depth
            oldestAgeSeconds = stats.oldestEnqueuedAt.map { max(0, now.timeIntervalSince($0)) }
            deliveries = stats.deliveries
            retries = stats.retries
            parked = stats.parked
            parkedTotal = stats.parkedTotal
            firestore = Self.reachability(stats)
            firestoreSince = stats.remoteSince
            firestoreLastError = stats.remoteLastError
        }

        /// "reachable", "unreachable", or "unknown" before the delivery process's first call.
        static func reachability(_ stats: OutboxStats) -> String {
            stats.remoteReachable.map { $0 ? "reachable" : "unreachable" } ?? "unknown"
        }
    }

    /// Crashes charged to requests (CrashLedger) and the master's crash-loop state.
    struct CrashStatus: Encodable {
        /// Files refused now because a worker died analysing them.
        var refusedFiles: Int
        /// Clients (accounts, addresses) refused now for repeated crashes.
        var refusedClients: Int
        /// Requests refused since the master started, by reason: `file` (422) and `client` (429).
        var refusedRequests: [String: Int]
        var crashLoop: CrashLedger.CrashLoop

        init(_ ledger: CrashLedger) {
            refusedFiles = ledger.refusedCount(.files)
            refusedClients = ledger.refusedCount(.clients)
            refusedRequests = ["file": ledger.refusedFiles, "client": ledger.refusedClients]
            crashLoop = ledger.crashLoop
        }
    }

    struct Report: Encodable {
        /// Which host answered (`host.name`).
        var host: String
        var masterPid: Int
        var startedAt: Date
        var pools: [String: PoolStatus]
        var crashes: CrashStatus
        var store: String
        var outbox: OutboxStatus?
        var reportJobs: JobStats?
        /// DICOM receiving (listener, counters, backlog), once this host has it on or received anything.
        var dicom: DicomStatus?
    }

    static func report(_ server: ServerContext, host: String, store: StoreBackend = .sqlite, outbox: OutboxStats? = nil,
                       jobs: JobStats? = nil, dicom: DicomStatus? = nil) -> Report {
        var pools: [String: PoolStatus] = [:]
        for pool in server.pools {
            let queue = server.listenQueue(pool)
            pools[pool.config.name] = PoolStatus(
                listen: pool.config.listen.description, configuredWorkers: pool.config.workers,
                listenQueue: queue?.queued, listenQueueLimit: queue?.backlog,
                snapshot: server.scoreboard.snapshot(pool: pool.index))
        }
        return Report(host: host, masterPid: Int(server.masterPID), startedAt: server.scoreboard.startedAt, pools: pools,
                      crashes: CrashStatus(server.crashes), store: store.rawValue, outbox: outbox.map { OutboxStatus($0) }, reportJobs: jobs,
                      dicom: dicom)
    }

    /// Every sample carries `host="<host.name>"`, so several hosts' metrics stay apart in one Prometheus.
    static func prometheus(_ server: ServerContext, host: String, histograms: SharedHistograms? = nil, outbox: OutboxStats? = nil,
                           jobs: JobStats? = nil, dicom: DicomStatus? = nil) -> String {
        var out = ""
        let hostLabel = "host=\"\(host)\""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP mediscope_\(name) \(help)\n# TYPE mediscope_\(name) \(type)\n"
            for (labels, value) in samples { out += "mediscope_\(name){\(hostLabel)\(labels.isEmpty ? "" : "," + labels)} \(value == value.rounded() ? String(Int(value)) : String(value))\n" }
        }
        let pools = server.pools.map { ($0, server.scoreboard.snapshot(pool: $0.index), server.listenQueue($0)) }
        func per(_ f: (PoolSnapshot) -> Int) -> [(String, Double)] {
            pools.map { ("pool=\"\($0.0.config.name)\"", Double(f($0.1))) }
        }
        metric("accepted_requests_total", "counter", "Requests accepted by the pool's workers.", per(\.acceptedRequests))
        metric("active_workers", "gauge", "Workers handling a request now.", per(\.activeWorkers))
        metric("idle_workers", "gauge", "Workers waiting for a request.", per(\.idleWorkers))
        metric("max_active_workers", "gauge", "Most workers busy at once since start.", per(\.maxActiveWorkers))
        metric("slow_requests_total", "counter", "Requests slower than the pool's slow threshold.", per(\.slowRequests))
        metric("killed_requests_total", "counter", "Requests killed for running past the time limit.", per(\.killedRequests))
        metric("worker_restarts_total", "counter", "Workers started again after exiting.", per(\.restarts))
        metric("listen_queue", "gauge", "Connections waiting to be accepted.",
               pools.map { ("pool=\"\($0.0.config.name)\"", Double($0.2?.queued ?? 0)) })
        metric("max_listen_queue", "gauge", "Longest listen queue seen.", per(\.maxListenQueue))
        metric("worker_crashes_total", "counter",
               "Abnormal worker exits: during a request (charged to its file and client) or without one (at start, idle), by cause.",
               pools.flatMap { p in
                   [("request", p.1.crashes.duringRequest), ("idle", p.1.crashes.withoutRequest)].flatMap { during, causes in
                       causes.sorted { $0.key < $1.key }.map {
                           ("pool=\"\(p.0.config.name)\",during=\"\(during)\",cause=\"\($0.key)\"", Double($0.value))
                       }
                   }
               })
        let crashes = CrashStatus(server.crashes)
        metric("poisoned_requests_refused_total", "counter",
               "Requests refused before decoding: a file that crashed a worker before (422), a client over its crash limit (429).",
               [("reason=\"file\"", Double(crashes.refusedRequests["file"] ?? 0)), ("reason=\"client\"", Double(crashes.refusedRequests["client"] ?? 0))])
        metric("poisoned_files", "gauge", "Files refused now because a worker died working on them.", [("", Double(crashes.refusedFiles))])
        metric("refused_clients", "gauge", "Clients refused now for repeated worker crashes.", [("", Double(crashes.refusedClients))])
        metric("crash_loop", "gauge", "1 while the master backs off workers that crash without a request (a broken deployment).",
               [("", crashes.crashLoop.active ? 1 : 0)])
        metric("crash_loops_total", "counter", "Crash loops since the master started.", [("", Double(crashes.crashLoop.episodes))])
        metric("worker_resident_bytes", "gauge", "Resident memory of each worker after its last request.",
               pools.flatMap { p in p.1.workers.map { ("pool=\"\(p.0.config.name)\",pid=\"\($0.pid)\"", Double($0.rssKB * 1024)) } })
        if let outbox {
            let status = OutboxStatus(outbox)
            metric("outbox_depth", "gauge", "Writes waiting in this host's outbox for Firestore.", [("", Double(status.depth))])
            metric("outbox_oldest_age_seconds", "gauge", "Age of the oldest waiting write (0 when none waits).",
                   [("", status.oldestAgeSeconds ?? 0)])
            metric("outbox_deliveries_total", "counter", "Writes delivered to Firestore.", [("", Double(status.deliveries))])
            metric("outbox_retries_total", "counter", "Delivery attempts that failed and were scheduled again.", [("", Double(status.retries))])
            metric("outbox_parked", "gauge", "Writes Firestore refused for good, kept in the outbox.", [("", Double(status.parked))])
            metric("outbox_parked_total", "counter", "Writes ever parked.", [("", Double(status.parkedTotal))])
            metric("firestore_reachable", "gauge", "1 when the delivery process's last call reached Firestore.",
                   [("", outbox.remoteReachable == false ? 0 : 1)])
        }
        if let jobs {
            metric("report_jobs_queued", "gauge", "Report drafts waiting for a job process.", [("", Double(jobs.queued))])
            metric("report_jobs_running", "gauge", "Report drafts being written now.", [("", Double(jobs.running))])
            metric("report_jobs_done_total", "counter", "Report jobs finished, by where the draft came from.",
                   jobs.done.sorted { $0.key < $1.key }.map { ("source=\"\($0.key)\"", Double($0.value)) })
            metric("report_job_failed_attempts_total", "counter", "LLM attempts that failed (retried, or the template was used).",
                   [("", Double(jobs.failedAttempts))])
            metric("llm_tokens_total", "counter", "Tokens the LLM reported, by kind.",
                   [("kind=\"prompt\"", Double(jobs.promptTokens)), ("kind=\"completion\"", Double(jobs.completionTokens))])
            out += "# HELP mediscope_report_job_seconds Time from upload to draft.\n# TYPE mediscope_report_job_seconds histogram\n"
            var cumulative: Int64 = 0
            for bound in JobQueue.latencyBounds + [.infinity] {
                cumulative += jobs.latencyBuckets[String(bound)] ?? 0
                out += "mediscope_report_job_seconds_bucket{\(hostLabel),le=\"\(bound.isInfinite ? "+Inf" : String(bound))\"} \(cumulative)\n"
            }
            out += "mediscope_report_job_seconds_sum{\(hostLabel)} \(jobs.latencySumSeconds)\n"
                + "mediscope_report_job_seconds_count{\(hostLabel)} \(cumulative)\n"
        }
        for (name, type, help, samples) in dicom?.metrics ?? [] { metric(name, type, help, samples) }
        if let histograms { out += histograms.prometheus(help: StageMetrics.help, extraLabels: hostLabel) }
        return out
    }
}
extension Scoreboard {
    var startedAt: Date { Date(timeIntervalSince1970: Double(startedUnix)) }
}
