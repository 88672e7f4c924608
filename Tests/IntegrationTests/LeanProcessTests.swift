import Foundation
import Testing
import TestSupport

/// Where libtorch lives in the serving stack, through real nginx and the real pools: only in the
/// inference pool's fork server and the workers forked from it, which share the preloaded weights
/// copy-on-write; never in the master, the io workers or the background processes.
@Suite(.serialized) struct LeanProcessTests {
    /// One process of the stack as /proc shows it.
    struct ProcessView {
        let pid: Int32
        /// /proc/PID/stat's fields after the command name (state, parent, ...); nil once the process is gone.
        private var statFields: [Substring]? {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            return stat[stat.index(after: close)...].split(separator: " ")
        }
        var parent: Int32? { statFields.flatMap { $0.count > 1 ? Int32($0[1]) : nil } }
        /// Gone, or a zombie: it has exited and its descriptors are closed.
        var hasExited: Bool { statFields?.first.map { $0 == "Z" } ?? true }
        var mapsLibtorch: Bool { LeanProcessTests.read("/proc/\(pid)/maps").contains("libtorch_cpu.so") }
        /// Fields of smaps_rollup in KiB (Rss, Pss, Shared_Dirty...).
        var memory: [String: Int] {
            let text = LeanProcessTests.read("/proc/\(pid)/smaps_rollup")
            var fields: [String: Int] = [:]
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: " ", omittingEmptySubsequences: true)
                if parts.count >= 2, parts[0].hasSuffix(":"), let kb = Int(parts[1]) { fields[String(parts[0].dropLast())] = kb }
            }
            return fields
        }
        /// Its threads now.
        var threads: Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").count) ?? 0 }
        /// Resident memory this process shares with others, in MiB.
        var sharedMiB: Int { ((memory["Shared_Clean"] ?? 0) + (memory["Shared_Dirty"] ?? 0)) / 1024 }
    }

    /// A /proc file whole (String(contentsOfFile:) stops after its first page); empty when the process
    /// has gone. readToEnd, not readDataToEndOfFile: the latter traps on a read error, and reading a
    /// process that exits meanwhile fails with ESRCH.
    static func read(_ path: String) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        return String(decoding: (try? handle.readToEnd()) ?? Data(), as: UTF8.self)
    }

    /// The master's children: workers, fork servers and background processes.
    static func children(of master: Int32) -> [Int32] {
        read("/proc/\(master)/task/\(master)/children").split(separator: " ").compactMap { Int32($0) }
    }

    static func forkServer(_ stack: Stack) throws -> [String: Any]? {
        let pools = try #require(try stack.status()["pools"] as? [String: Any])
        let snapshot = try #require((pools["inference"] as? [String: Any])?["snapshot"] as? [String: Any])
        return snapshot["forkServer"] as? [String: Any]
    }

    /// Waits until the inference pool has `count` idle workers; returns their pids.
    static func readyWorkers(_ stack: Stack, count: Int) async throws -> [Int32] {
        var pids: [Int32] = []
        var seen: [(pid: Int32, state: String, generation: Int)] = []
        let ready = try await eventually(timeout: 60) {
            seen = try stack.workers("inference")
            pids = seen.filter { $0.state == "idle" && $0.pid > 0 }.map(\.pid)
            return pids.count == count
        }
        try #require(ready, "the inference pool has not got \(count) idle workers: \(seen)")
        return pids
    }

    static func probabilities(_ response: Stack.Response) -> [Double] {
        ((response.json?["results"] as? [[String: Any]]) ?? []).flatMap { result in
            ((result["probabilities"] as? [[String: Any]]) ?? []).compactMap { $0["probability"] as? Double }
        }
    }

    @Test func libtorchLivesOnlyWhereModelsRunAndWeightsAreShared() async throws {
        let stack = try await Stack.start(settings: ["POOLS_INFERENCE_WORKERS": "2"])
        defer { stack.stop() }
        let master = stack.masterPID
        var server: [String: Any] = [:]
        let preloaded = try await eventually(timeout: 60) {
            server = try Self.forkServer(stack) ?? [:]
            return server["state"] as? String == "ready"
        }
        try #require(preloaded, "the fork server did not become ready: \(server)")
        let forkServer = Int32(try #require(server["pid"] as? Int))
        let inference = try await Self.readyWorkers(stack, count: 2)
        let io = try stack.workers("io").map(\.pid)
        let others = Self.children(of: master).filter { !inference.contains($0) && !io.contains($0) && $0 != forkServer }
        #expect(!others.isEmpty, "the report job process is a child of the master")

        // Where libtorch is mapped.
        #expect(!ProcessView(pid: master).mapsLibtorch, "the master maps libtorch")
        for pid in io + others { #expect(!ProcessView(pid: pid).mapsLibtorch, "process \(pid) (io or background) maps libtorch") }
        #expect(ProcessView(pid: forkServer).mapsLibtorch)
        // fork() copies only the calling thread: the preload must leave no other one running.
        #expect(ProcessView(pid: forkServer).threads == 1)
        for pid in inference {
            let worker = ProcessView(pid: pid)
            #expect(worker.mapsLibtorch)
            #expect(worker.parent == master, "worker \(pid) is a child of the master, which reaps and times it")
        }

        // The models are there before any analysis, and the weights (a 62 MiB fp32 file) are shared.
        let models = try #require(try await stack.request("GET", "/api/models").json?["models"] as? [[String: Any]])
        #expect(models.allSatisfy { $0["loaded"] as? Bool == true }, "\(models)")
        for pid in inference { #expect(ProcessView(pid: pid).sharedMiB >= 60, "worker \(pid): \(ProcessView(pid: pid).memory)") }

        // Running a model does not copy the weights.
        for _ in 0..<4 {
            let upload = try await stack.upload(image: try Scans.jpeg)
            #expect(upload.status == 201, "\(String(decoding: upload.body, as: UTF8.self))")
        }
        for pid in inference { #expect(ProcessView(pid: pid).sharedMiB >= 60, "worker \(pid) after analyses: \(ProcessView(pid: pid).memory)") }
        #expect(!ProcessView(pid: master).mapsLibtorch)
        for pid in io { #expect(!ProcessView(pid: pid).mapsLibtorch, "io worker \(pid) maps libtorch after analyses") }
    }

    @Test func forkServerAndWorkersComeBackAfterKillsAndReload() async throws {
        let stack = try await Stack.start(settings: ["POOLS_INFERENCE_WORKERS": "2"])
        defer { stack.stop() }
        let master = stack.masterPID
        let first = try await Self.readyWorkers(stack, count: 2)
        let firstServer = try #require(try Self.forkServer(stack)?["pid"] as? Int)

        // The fork server killed: a new one preloads; the workers it forked live on meanwhile.
        kill(Int32(firstServer), SIGKILL)
        var server: [String: Any] = [:]
        let restarted = try await eventually(timeout: 60) {
            server = try Self.forkServer(stack) ?? [:]
            return server["state"] as? String == "ready" && server["pid"] as? Int != firstServer && server["starts"] as? Int == 2
        }
        #expect(restarted, "\(server)")
        #expect(try stack.workers("inference").map(\.pid).sorted() == first.sorted())

        // A worker killed: the new fork server forks its successor, adopted by the master.
        kill(first[0], SIGKILL)
        var replaced: [Int32] = []
        let back = try await eventually(timeout: 60) {
            replaced = try stack.workers("inference").filter { $0.state == "idle" }.map(\.pid)
            return replaced.count == 2 && !replaced.contains(first[0])
        }
        try #require(back, "\(replaced)")
        let successor = try #require(replaced.first { $0 != first[1] })
        #expect(ProcessView(pid: successor).parent == master)
        #expect(ProcessView(pid: successor).mapsLibtorch)
        let upload = try await stack.upload(image: try Scans.jpeg)
        #expect(upload.status == 201)

        // A reload replaces the fork server and then the workers.
        let before = try #require(try Self.forkServer(stack)?["starts"] as? Int)
        stack.signalServer(SIGHUP)
        var fresh: [Int32] = []
        let reloaded = try await eventually(timeout: 90) {
            server = try Self.forkServer(stack) ?? [:]
            fresh = try stack.workers("inference").filter { $0.state == "idle" }.map(\.pid)
            return server["starts"] as? Int == before + 1 && server["state"] as? String == "ready"
                && fresh.count == 2 && Set(fresh).isDisjoint(with: replaced)
        }
        #expect(reloaded, "\(server) \(fresh)")
        #expect(try await stack.upload(image: try Scans.jpeg).status == 201)
    }

    @Test func withoutPreloadWorkersLoadOnFirstUseWithTheSameNumbers() async throws {
        let preloaded: [Double]
        do {
            let stack = try await Stack.start()
            defer { stack.stop() }
            let upload = try await stack.upload(image: try Scans.jpeg)
            try #require(upload.status == 201)
            preloaded = Self.probabilities(upload)
        }
        let stack = try await Stack.start(settings: ["POOLS_INFERENCE_PRELOAD": "false"])
        defer { stack.stop() }
        #expect(try Self.forkServer(stack) == nil)
        let workers = try await Self.readyWorkers(stack, count: 1)
        #expect(!ProcessView(pid: workers[0]).mapsLibtorch, "a worker without preload maps libtorch before its first analysis")
        let models = try #require(try await stack.request("GET", "/api/models").json?["models"] as? [[String: Any]])
        #expect(models.allSatisfy { $0["loaded"] as? Bool == false })

        let upload = try await stack.upload(image: try Scans.jpeg)
        #expect(upload.status == 201)
        #expect(ProcessView(pid: workers[0]).mapsLibtorch)
        #expect(!preloaded.isEmpty)
        #expect(Self.probabilities(upload) == preloaded, "a preloaded model gives the numbers a model loaded on first use gives")
        #expect(!ProcessView(pid: stack.masterPID).mapsLibtorch)
    }
}
