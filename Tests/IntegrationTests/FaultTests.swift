import Foundation
import Testing

/// The process manager under faults, each test with its own stack.
@Suite(.serialized) struct FaultTests {
    @Test func routesThatNeedNoModelNeverLoadOne() async throws {
        // Without the fork server's preload, so that a model loaded is one a request loaded.
        let stack = try await Stack.start(settings: ["POOLS_INFERENCE_PRELOAD": "false"])
        defer { stack.stop() }
        for path in ["/api/health", "/api/ready", "/api/analyses", "/api/models", "/api/status"] {
            _ = try await stack.request("GET", path)
        }
        var models = try #require(try await stack.request("GET", "/api/models").json?["models"] as? [[String: Any]])
        #expect(models.first?["loaded"] as? Bool == false)
        #expect(try await stack.upload(image: try Scans.jpeg).status == 201)
        models = try #require(try await stack.request("GET", "/api/models").json?["models"] as? [[String: Any]])
        #expect(models.first?["loaded"] as? Bool == true)
    }

    @Test func killedWorkerFailsOnlyItsRequestAndIsReplacedQuickly() async throws {
        // A file that crashed a worker is refused afterwards (issue 19): each attempt sends its own variant,
        // and the client limit is out of the way of a run that needs several kills.
        let stack = try await Stack.start(settings: ["CRASH_CLIENT_LIMIT": "100"])
        defer { stack.stop() }
        let jpeg = try Scans.jpeg
        #expect(try await stack.upload(image: jpeg).status == 201)  // model loaded, so the next one is mid-forward quickly
        // Catch the inference worker busy with an upload and kill it. On a loaded machine a status read can
        // outlast a whole analysis: an upload that finished unseen is followed by another, and so is one
        // whose 201 was already on its way when the kill came (that kill still counts as a restart).
        var kills = 0
        var victim: Int32 = 0
        var killedAnswer: Stack.Response?
        for attempt in 0..<10 where killedAnswer == nil {
            let finished = UploadFinished()
            let image = PoisonedRequestTests.variant(jpeg, "kill \(attempt)")
            let upload = Task { defer { finished.mark() }; return try await stack.upload(image: image) }
            var killed = false
            let deadline = Date().addingTimeInterval(30)
            while !killed, !finished.isMarked, Date() < deadline {
                if let busy = try stack.workers("inference").first(where: { $0.state == "busy" }) {
                    kill(busy.pid, SIGKILL)
                    (victim, killed, kills) = (busy.pid, true, kills + 1)
                } else {
                    try await Task.sleep(for: .milliseconds(2))
                }
            }
            let answer = try await upload.value
            if killed && answer.status != 201 { killedAnswer = answer } else { #expect(answer.status == 201) }
        }
        let failed = try #require(killedAnswer)
        // Not "busy, retry": the analysis itself was stopped, and the answer says so (issue 9).
        #expect(failed.status == 500, "the killed request fails with a clean 500")
        #expect((failed.json?["detail"] as? String)?.contains("the analysis was stopped before it finished") == true)
        #expect(failed.header("Content-Type")?.hasPrefix("application/problem+json") == true)

        // Back to full strength: a new idle worker with another pid (how fast is bench/'s business).
        let replaced = try await eventually {
            let workers = try stack.workers("inference")
            return workers.count == 1 && workers[0].pid != victim && workers[0].state == "idle"
        }
        #expect(replaced)
        #expect(try stack.poolNumber("inference", "restarts") == kills)
        for i in 0..<3 { #expect(try await stack.upload(image: PoisonedRequestTests.variant(jpeg, "after \(i)")).status == 201) }
    }

    @Test func reloadWhileRequestsFlowFailsNothing() async throws {
        let stack = try await Stack.start(settings: ["POOLS_IO_WORKERS": "2"])
        defer { stack.stop() }
        let jpeg = try Scans.jpeg
        let oldIO = Set(try stack.workers("io").map(\.pid))
        let statuses = try await withThrowingTaskGroup(of: [Int].self) { group in
            for client in 0..<4 {
                group.addTask {
                    var seen: [Int] = []
                    for i in 0..<12 {
                        if client == 0 && i % 3 == 0 {
                            seen.append(try await stack.upload(image: jpeg).status)
                        } else {
                            seen.append(try await stack.request("GET", "/api/analyses?limit=5").status)
                        }
                    }
                    return seen
                }
            }
            group.addTask {
                for _ in 0..<3 {
                    try await Task.sleep(for: .milliseconds(150))
                    stack.signalServer(SIGHUP)
                }
                return []
            }
            var all: [Int] = []
            for try await s in group { all += s }
            return all
        }
        #expect(statuses.count == 48)
        #expect(statuses.allSatisfy { $0 == 200 || $0 == 201 }, "statuses: \(statuses.filter { $0 >= 300 })")
        // The old generation is gone, the new one serves.
        #expect(try await eventually {
            let now = Set(try stack.workers("io").map(\.pid))
            return now.isDisjoint(with: oldIO) && now.count == 2
        })
    }

    @Test func stopDuringUploadsLeavesOnlyWholeRecords() async throws {
        let stack = try await Stack.start()
        defer { stack.stop() }
        let jpeg = try Scans.jpeg
        let uploads = (0..<6).map { i in
            Task { try? await stack.upload(image: jpeg, fields: ["patient_id": "P-STOP"]) }
        }
        // TERM once an upload is being analysed (a fixed pause was too short on a loaded machine).
        let deadline = Date().addingTimeInterval(60)
        while (try? stack.poolNumber("inference", "activeWorkers")) ?? 0 < 1, Date() < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        stack.signalServer(SIGTERM)
        #expect(stack.waitForServerExit() == 0, "graceful stop ends with status 0")
        var created = 0
        for u in uploads { if await u.value?.status == 201 { created += 1 } }

        try await stack.startServer()
        let list = try await stack.request("GET", "/api/analyses?patient_id=P-STOP&limit=100")
        let items = try #require(list.json?["items"] as? [[String: Any]])
        #expect(created >= 1, "the upload in progress when TERM came was finished, not dropped")
        #expect(items.count == created, "every 201 was durable, nothing else was stored")
        for item in items {
            let id = try #require(item["id"] as? String)
            #expect(try await stack.request("GET", "/api/analyses/\(id)/scan.jpg").status == 200)
            for result in try #require(item["results"] as? [[String: Any]]) {
                let url = try #require((result["heatmap"] as? [String: Any])?["url"] as? String)
                #expect(try await stack.request("GET", url).status == 200)
            }
        }
    }

    @Test func saturatedPoolAnswersFast503sNeverHangs() async throws {
        let stack = try await Stack.start(settings: ["POOLS_INFERENCE_BACKLOG": "2"])
        defer { stack.stop() }
        let jpeg = try Scans.jpeg
        let statuses = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
            for _ in 0..<16 {
                group.addTask {
                    let r = try await stack.upload(image: jpeg)
                    return (r.status, r.header("Retry-After"))
                }
            }
            var all: [(Int, String?)] = []
            for try await s in group { all.append(s) }
            return all
        }
        #expect(statuses.allSatisfy { $0.0 == 201 || $0.0 == 503 }, "\(statuses.map(\.0))")
        #expect(statuses.contains { $0.0 == 201 })
        #expect(statuses.contains { $0.0 == 503 }, "16 clients on one worker with a queue of 2 must overflow")
        #expect(statuses.filter { $0.0 == 503 }.allSatisfy { $0.1 != nil }, "503s carry Retry-After")
        #expect(try stack.poolNumber("inference", "maxListenQueue") >= 1)
    }

    @Test func overlongRequestIsKilledAndItsWorkerReplaced() async throws {
        let stack = try await Stack.start(settings: ["POOLS_INFERENCE_REQUEST_TIMEOUT_SECONDS": "0.05"])
        defer { stack.stop() }
        let r = try await stack.upload(image: try Scans.jpeg)  // the first analysis loads the model: far over 50 ms
        #expect(r.status == 500)
        let detail = r.json?["detail"] as? String ?? ""
        #expect(detail.contains("stopped") && detail.contains("time limit") && !detail.contains("busy"), "\(detail)")
        #expect(try await eventually { try stack.poolNumber("inference", "killedRequests") >= 1 })
        #expect(try stack.poolNumber("inference", "killedRequests") == 1)
        #expect(try await stack.request("GET", "/api/health").status == 200)
    }

    @Test func workersRecycleAfterMaxRequestsAndOverMemoryLimit() async throws {
        let stack = try await Stack.start(settings: ["POOLS_IO_WORKERS": "1", "POOLS_IO_MAX_REQUESTS": "3",
                                         "POOLS_INFERENCE_MEMORY_LIMIT_MB": "1", "POOLS_IO_SLOW_REQUEST_SECONDS": "0.000001"])
        defer { stack.stop() }
        var pids = Set<Int32>()
        for _ in 0..<7 {
            #expect(try await stack.request("GET", "/api/health").status == 200)
            pids.formUnion(try stack.workers("io").map(\.pid))
        }
        #expect(pids.count >= 3, "the io worker was replaced every 3 requests")
        #expect(try stack.poolNumber("io", "slowRequests") >= 1)
        let before = try stack.workers("inference").map(\.pid)
        #expect(try await stack.upload(image: try Scans.jpeg).status == 201)
        let recycled = try await eventually {
            let now = try stack.workers("inference").map(\.pid)
            return !now.isEmpty && Set(now).isDisjoint(with: before)
        }
        #expect(recycled, "a worker over its memory limit is replaced after its request")
    }

    @Test func usr1ReopensTheLogFile() async throws {
        let stack = try await Stack.start()
        defer { stack.stop() }
        let rotated = stack.logFile.appendingPathExtension("1")
        try FileManager.default.moveItem(at: stack.logFile, to: rotated)
        stack.signalServer(SIGUSR1)
        #expect(await eventually {
            (try? String(contentsOf: stack.logFile, encoding: .utf8))?.contains("logs_reopened") == true
        })
    }

    @Test func theAppEnforcesItsOwnBodyLimitBehindNginx() async throws {
        let stack = try await Stack.start(settings: ["BODY_LIMIT_BYTES": "2000"])
        defer { stack.stop() }
        let r = try await stack.upload(image: try Scans.jpeg)
        #expect(r.status == 413 && r.header("Content-Type")?.hasPrefix("application/problem+json") == true)
        #expect(try await stack.request("GET", "/api/health").status == 200)
    }

    @Test func workersDieWithTheMaster() async throws {
        let stack = try await Stack.start()
        defer { stack.stop() }
        // Inference workers get their pid once the fork server has forked them (after its preload).
        var pids: [Int32] = []
        #expect(try await eventually {
            pids = try stack.workers("io").map(\.pid) + stack.workers("inference").map(\.pid)
            return pids.count >= 2 && pids.allSatisfy { $0 > 0 }
        })
        stack.signalServer(SIGKILL)
        #expect(await eventually { pids.allSatisfy { kill($0, 0) != 0 } })
    }
}

/// Set once by an upload task when it has its answer, read by the test that polls meanwhile.
final class UploadFinished: @unchecked Sendable {
    private let lock = NSLock()
    private var marked = false
    func mark() { lock.withLock { marked = true } }
    var isMarked: Bool { lock.withLock { marked } }
}
