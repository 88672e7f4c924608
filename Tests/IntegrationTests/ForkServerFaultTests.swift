import Foundation
import Testing
import TestSupport

/// The inference pool's fork server under faults, through the real stack: reload bursts, a stop during
/// its preload, a hung fork server, a model that fails to preload.
@Suite(.serialized) struct ForkServerFaultTests {
    typealias View = LeanProcessTests.ProcessView

    static func occurrences(_ event: String, in stack: Stack) -> Int {
        ((try? String(contentsOf: stack.logFile, encoding: .utf8)) ?? "").components(separatedBy: "\"event\":\"\(event)\"").count - 1
    }

    /// The master's children that map libtorch and are not inference workers: its fork servers. A worker
    /// just forked is the master's child a moment before its slot names it: a process counts only when
    /// neither the workers listed before nor those listed after looking at the children name it.
    static func forkServerProcesses(_ stack: Stack) throws -> [Int32] {
        let before = Set(try stack.workers("inference").map(\.pid))
        let candidates = LeanProcessTests.children(of: stack.masterPID).filter { !before.contains($0) && View(pid: $0).mapsLibtorch }
        let after = Set(try stack.workers("inference").map(\.pid))
        return candidates.filter { !after.contains($0) }
    }

    static func openDescriptors(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    @Test func aBurstOfReloadsKeepsOnePreloadAtATimeAndLeaksNoDescriptor() async throws {
        let stack = try await Stack.start(settings: ["POOLS_INFERENCE_WORKERS": "2"])
        defer { stack.stop() }
        _ = try await LeanProcessTests.readyWorkers(stack, count: 2)
        let firstServer = Int32(try #require(try LeanProcessTests.forkServer(stack)?["pid"] as? Int))
        let serverFDs = Self.openDescriptors(firstServer)
        let workerFDs = Self.openDescriptors(try stack.workers("inference")[0].pid)

        // Each reload seen by the master before the next: a preloading fork server is replaced, not kept.
        var most = 0
        for i in 1...6 {
            stack.signalServer(SIGHUP)
            #expect(try await eventually { Self.occurrences("reload", in: stack) >= i })
            most = max(most, try Self.forkServerProcesses(stack).count)
        }
        #expect(most <= 2, "at most the newest fork server and one retired ready one: \(most)")
        var servers: [Int32] = []
        let settled = try await eventually(timeout: 90) {
            servers = try Self.forkServerProcesses(stack)
            // Workers of the last generation only: earlier ones may still be idle, about to be retired.
            let workers = try stack.workers("inference")
            let state = try LeanProcessTests.forkServer(stack)?["state"] as? String
            return servers.count == 1 && workers.count == 2 && workers.allSatisfy { $0.state == "idle" && $0.generation == 7 }
                && state == "ready"
        }
        #expect(settled, "one fork server and two workers after the burst: \(servers)")
        // No process holds the master's end of a fork server's socket, current or retired: the new fork
        // server and its workers (none has served a request yet) hold what the first ones held.
        #expect(Self.openDescriptors(try #require(servers.first)) == serverFDs)
        for worker in try stack.workers("inference") { #expect(Self.openDescriptors(worker.pid) == workerFDs) }
        #expect(try await stack.upload(image: try Scans.jpeg).status == 201)
    }

    /// The default manifest with absolute paths, its model file replaced by `modelFile` when given.
    static func manifest(modelFile: String? = nil, in folder: TemporaryFolder) throws -> URL {
        let models = Repository.root.appendingPathComponent("models")
        let data = try Data(contentsOf: models.appendingPathComponent("manifest.json"))
        var manifest = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        manifest["models"] = try #require(manifest["models"] as? [[String: Any]]).map { model -> [String: Any] in
            var model = model
            model["file"] = modelFile ?? models.appendingPathComponent(model["file"] as! String).path
            if var check = model["inputCheck"] as? [String: Any] {
                check["file"] = models.appendingPathComponent(check["file"] as! String).path
                model["inputCheck"] = check
            }
            return model
        }
        let url = folder.url.appendingPathComponent("manifest.json")
        try JSONSerialization.data(withJSONObject: manifest).write(to: url)
        return url
    }

    @Test func aStopDuringThePreloadEndsAtOnceAndLeavesNothing() async throws {
        let folder = TemporaryFolder("mediscope-blocked-preload")
        let stack = try await Stack.start(settings: ["STOP_TIMEOUT_SECONDS": "120", "MANIFEST": try Self.manifest(in: folder).path])
        defer { stack.stop() }
        _ = try await LeanProcessTests.readyWorkers(stack, count: 1)
        // A FIFO nobody writes: the reloaded fork server's preload blocks opening it until it is killed,
        // so the test acts during the preload however slow or loaded the machine is.
        let fifo = folder.url.appendingPathComponent("blocked.pt").path
        #expect(mkfifo(fifo, 0o600) == 0)
        _ = try Self.manifest(modelFile: fifo, in: folder)
        stack.signalServer(SIGHUP)
        var seen: [String: Any] = [:]
        let preloading = try await eventually(timeout: 90) {
            seen = try LeanProcessTests.forkServer(stack) ?? [:]
            return seen["state"] as? String == "preloading"
        }
        #expect(preloading, "\(seen)")
        let during = LeanProcessTests.children(of: stack.masterPID)
        #expect(during.count >= 4, "workers, the report process and two fork servers: \(during)")
        stack.signalServer(SIGTERM)
        // Long before the 120 s stop timeout: the preloading fork server is killed, not waited for, and
        // no worker is forked after the stop.
        #expect(stack.waitForServerExit(timeout: 60) == 0)
        #expect(await eventually { during.allSatisfy { kill($0, 0) != 0 } })
    }

    @Test func aHungForkServerIsKilledAndReplaced() async throws {
        let stack = try await Stack.start()
        defer { stack.stop() }
        let first = try await LeanProcessTests.readyWorkers(stack, count: 1)
        let hung = Int32(try #require(try LeanProcessTests.forkServer(stack)?["pid"] as? Int))
        kill(hung, SIGSTOP)
        kill(first[0], SIGKILL)  // its successor is asked of the stopped fork server
        var server: [String: Any] = [:]
        let replaced = try await eventually(timeout: 90) {
            server = try LeanProcessTests.forkServer(stack) ?? [:]
            let idle = try stack.workers("inference").filter { $0.state == "idle" && $0.pid != first[0] }
            return server["pid"] as? Int != Int(hung) && server["state"] as? String == "ready" && idle.count == 1
        }
        #expect(replaced, "\(server)")
        #expect(Self.occurrences("fork_server_hung", in: stack) == 1)
        #expect(try await stack.upload(image: try Scans.jpeg).status == 201)
    }

    @Test func aModelThatFailsToPreloadMakesTheHostNotReady() async throws {
        let folder = TemporaryFolder("mediscope-corrupt-model")
        let models = Repository.root.appendingPathComponent("models")
        for file in ["manifest.json", "brain_tumor_vgg16.input-check.json"] {
            try FileManager.default.copyItem(at: models.appendingPathComponent(file), to: folder.url.appendingPathComponent(file))
        }
        try Data("not a TorchScript archive".utf8).write(to: folder.url.appendingPathComponent("brain_tumor_vgg16.pt"))
        let stack = try await Stack.start(settings: ["MANIFEST": folder.url.appendingPathComponent("manifest.json").path])
        defer { stack.stop() }
        var ready = try await stack.request("GET", "/api/ready")
        let reported = try await eventually {
            ready = try await stack.request("GET", "/api/ready")
            return (ready.json?["checks"] as? [String: String])?["models"]?.hasPrefix("failed to load") == true
        }
        #expect(reported, "\(String(decoding: ready.body, as: UTF8.self))")
        #expect(ready.status == 503)
        #expect(try LeanProcessTests.forkServer(stack)?["preloadFailed"] as? Bool == true)
        let upload = try await stack.upload(image: try Scans.jpeg)
        #expect(upload.status == 503, "\(String(decoding: upload.body, as: UTF8.self))")
        #expect(try await stack.request("GET", "/api/health").status == 200)
    }
}
