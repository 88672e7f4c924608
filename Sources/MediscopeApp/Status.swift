import Foundation
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

    struct Report: Encodable {
        var masterPid: Int
        var startedAt: Date
        var pools: [String: PoolStatus]
    }

    static func report(_ server: ServerContext) -> Report {
        var pools: [String: PoolStatus] = [:]
        for pool in server.pools {
            let queue = server.listenQueue(pool)
            pools[pool.config.name] = PoolStatus(
                listen: pool.config.listen.description, configuredWorkers: pool.config.workers,
                listenQueue: queue?.queued, listenQueueLimit: queue?.backlog,
                snapshot: server.scoreboard.snapshot(pool: pool.index))
        }
        return Report(masterPid: Int(server.masterPID), startedAt: server.scoreboard.startedAt, pools: pools)
    }

    static func prometheus(_ server: ServerContext, histograms: SharedHistograms? = nil) -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP mediscope_\(name) \(help)\n# TYPE mediscope_\(name) \(type)\n"
            for (labels, value) in samples { out += "mediscope_\(name){\(labels)} \(value == value.rounded() ? String(Int(value)) : String(value))\n" }
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
        metric("worker_resident_bytes", "gauge", "Resident memory of each worker after its last request.",
               pools.flatMap { p in p.1.workers.map { ("pool=\"\(p.0.config.name)\",pid=\"\($0.pid)\"", Double($0.rssKB * 1024)) } })
        if let histograms { out += histograms.prometheus(help: StageMetrics.help) }
        return out
    }
}

extension Scoreboard {
    var startedAt: Date { Date(timeIntervalSince1970: Double(startedUnix)) }
}
