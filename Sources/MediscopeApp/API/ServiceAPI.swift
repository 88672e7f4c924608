import Foundation
import MediscopeAuth
import MediscopeEncoding
import MediscopeImaging
import MediscopeInference
import MediscopeServer
import MediscopeStore

/// The service's own routes: the model list, health and readiness, pool status and metrics.
enum ServiceAPI {
    static let routes: [RouteSpec] = [
        RouteSpec(method: "GET", pattern: "/api/models", access: .signedIn, audit: nil) { s, _, _, _ throws(Problem) in try models(s) },
        RouteSpec(method: "GET", pattern: "/api/health", open: .everyone, audit: nil) { _, _, _, _ throws(Problem) in
            .json(["status": "ok"])
        },
        RouteSpec(method: "GET", pattern: "/api/ready", open: .everyone, audit: nil) { s, _, _, _ throws(Problem) in ready(s) },
        RouteSpec(method: "GET", pattern: "/api/status", open: .operatorOrAdmin, audit: nil) { s, _, _, _ throws(Problem) in
            .json(Status.report(s.server, host: s.config.hostName, store: s.config.store, outbox: s.outboxStats(), jobs: try? s.jobs().stats(kind: ReportAPI.kind),
                               dicom: s.dicomStatus()),
                  headers: [("Cache-Control", "no-store")])
        },
        RouteSpec(method: "GET", pattern: "/api/metrics", open: .operatorOrAdmin, audit: nil) { s, _, _, _ throws(Problem) in
            .text(Status.prometheus(s.server, host: s.config.hostName, histograms: s.histograms, outbox: s.outboxStats(), jobs: try? s.jobs().stats(kind: ReportAPI.kind),
                                      dicom: s.dicomStatus()), contentType: "text/plain; version=0.0.4; charset=utf-8")
        },
    ]

    static func models(_ s: Services) throws(Problem) -> HTTPResponse {
        struct ModelBody: Encodable {
            var id: String, title: String, task: String, labels: [String], results: [String]
            var filePresent: Bool, loaded: Bool
            /// int8 models only: the quantised engine and the fidelity report (or why it cannot be read).
            var engine: String?, fidelity: ModelFidelity?
        }
        let manifest: ModelManifest
        do { manifest = try s.manifest() } catch {
            throw Problem(status: 503, detail: "the model manifest is not valid: \(error.message)", retryAfter: 30)
        }
        let inference = s.server.pools.first { $0.config.name == MediscopeApplication.inferencePool }
        let mask = inference.map { s.server.scoreboard.loadedModels(pool: $0.index) } ?? 0
        let body = manifest.models.enumerated().map { i, m in
            ModelBody(id: m.id, title: m.title ?? m.id, task: m.task.rawValue, labels: m.labels,
                      results: [m.id] + (m.derived ?? []).map(\.id),
                      filePresent: FileManager.default.fileExists(atPath: manifest.fileURL(of: m).path),
                      loaded: mask & (1 << Int64(i)) != 0, engine: m.engine, fidelity: ModelFidelity(m, in: manifest))
        }
        return .json(["models": body])
    }

    static func ready(_ s: Services) -> HTTPResponse {
        var checks: [String: String] = [:]
        var ok = true
        do { try s.store().checkReady(); checks["store"] = "ok" } catch {
            checks["store"] = "unavailable"; ok = false
        }
        do {
            let manifest = try s.manifest()
            let missing = manifest.models.filter { !FileManager.default.fileExists(atPath: manifest.fileURL(of: $0).path) }
            checks["models"] = missing.isEmpty ? "ok" : "missing: " + missing.map(\.id).joined(separator: ", ")
            ok = ok && missing.isEmpty
        } catch {
            checks["models"] = "manifest invalid"; ok = false
        }
        // The inference pool: not ready while it has no worker because the models are still loading, or
        // when they failed to load (each upload would fail).
        if let inference = s.server.pools.first(where: { $0.config.name == MediscopeApplication.inferencePool }),
           let fork = s.server.scoreboard.snapshot(pool: inference.index).forkServer {
            let pool = s.server.scoreboard.snapshot(pool: inference.index)
            if pool.idleWorkers + pool.activeWorkers == 0 && fork.state != "ready" {
                checks["inference"] = "starting: no worker yet (the fork server is \(fork.state))"
                ok = false
            } else {
                checks["inference"] = "ok"
            }
            if fork.preloadFailed {
                checks["models"] = "failed to load (the log's preload_failed says which)"
                ok = false
            }
        }
        // Workers crashing without a request (a broken deployment): the master backs off, this host is not ready.
        let loop = s.server.crashes.crashLoop
        checks["workers"] = loop.active ? "crash loop: restarting with back-off (\(Int(loop.respawnDelaySeconds.rounded(.up))) s)" : "ok"
        ok = ok && !loop.active
        // Uploads go to the outbox while Firestore is down: still ready, but degraded.
        var degraded = false
        // The DICOM listener down: the dashboard and the API still work (ready), but the PACS cannot send.
        if s.config.dicom != nil {
            let problem = ListenerHeartbeat.problem(s.config)
            checks["dicom"] = problem ?? "ok"
            degraded = degraded || problem != nil
        }
        if let stats = s.outboxStats() {
            checks["firestore"] = Status.OutboxStatus.reachability(stats)
            // An entry waiting for minutes means delivery is stuck (Firestore, or the outbox process itself).
            let oldest = stats.oldestEnqueuedAt.map { Int(Date().timeIntervalSince($0)) } ?? 0
            checks["outbox"] = "\(stats.depth) waiting" + (stats.parked > 0 ? ", \(stats.parked) parked" : "")
                + (oldest >= 120 ? ", oldest \(oldest) s" : "")
            degraded = stats.remoteReachable == false || stats.parked > 0 || oldest >= 120
        }
        struct Body: Encodable { var status: String; var checks: [String: String] }
        let body = Body(status: !ok ? "not ready" : degraded ? "degraded" : "ready", checks: checks)
        return ok ? .json(body) : HTTPResponse.json(body, status: 503, headers: [("Retry-After", "5")])
    }
}