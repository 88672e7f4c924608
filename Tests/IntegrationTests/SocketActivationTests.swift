import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Restarts that fail no request (an upgrade of the package restarts the service): the pools' sockets
/// are held by a service manager (systemd's socket activation, mediscope.socket; here
/// Tests/Support/socket-activate.py, which does what systemd does), so requests sent while one
/// `mediscope serve` stops and the next starts wait in the sockets' queues and the next answers them.
/// Without it, nginx finds no socket for that time and answers 502.
@Suite(.serialized) final class SocketActivationTests {
    let stack: Stack

    init() throws {
        stack = try Stack(socketActivated: true)
    }
    deinit { stack.stop() }

    /// What a client sent and what came back.
    struct Sent: Sendable {
        var started: Date
        var what: String
        var status: Int
    }

    /// Answers gathered by concurrent clients, and the flag that stops them.
    final class Clients: @unchecked Sendable {
        private let lock = NSLock()
        private var answers: [Sent] = []
        private var stopped = false
        var all: [Sent] { lock.withLock { answers } }
        var count: Int { lock.withLock { answers.count } }
        var isStopped: Bool { lock.withLock { stopped } }
        func add(_ sent: Sent) { lock.withLock { answers.append(sent) } }
        func stop() { lock.withLock { stopped = true } }
    }

    @Test func aRestartFailsNoRequestAndTheNextServerAnswersThem() async throws {
        let stack = self.stack
        let first = try #require(stack.activatedServerPID)
        #expect(try stack.status()["masterPid"] as? Int == Int(first))
        let scan = try Scans.jpeg
        let clients = Clients()
        // Three clients without pause: uploads (the inference pool) and lists (the io pool).
        let running = Task {
            await withTaskGroup(of: Void.self) { group in
                for client in 0..<3 {
                    group.addTask {
                        var n = 0
                        while !clients.isStopped {
                            n += 1
                            let started = Date()
                            let upload = client == 0
                            var status = -1
                            if upload {
                                status = (try? await stack.upload(image: scan, fields: ["patient_id": "P-RESTART-\(n)"]))?.status ?? -1
                            } else {
                                status = (try? await stack.request("GET", "/api/analyses?limit=5"))?.status ?? -1
                            }
                            clients.add(Sent(started: started, what: upload ? "upload \(n)" : "list \(client).\(n)", status: status))
                        }
                    }
                }
            }
        }
        defer { clients.stop() }
        #expect(try await eventually(timeout: 120, every: .milliseconds(50)) { clients.count >= 6 }, "answers before the restart")

        // `systemctl restart`: SIGTERM to the server, wait until it has exited, start the next.
        let restartBegan = Date()
        stack.signalServer(SIGHUP)
        let restarted = try await eventually(timeout: 60, every: .milliseconds(20)) { (stack.activatedServerPID ?? first) != first }
        #expect(restarted, "the server was started again")
        try stack.waitUntilHealthy()
        let nextAnswered = Date()
        let second = try #require(stack.activatedServerPID)
        #expect(second != first)
        #expect(try stack.status()["masterPid"] as? Int == Int(second), "the next server answers")

        // Lists and an upload sent after the next server answered, answered by it.
        #expect(try await eventually(timeout: 120, every: .milliseconds(50)) {
            let after = clients.all.filter { $0.started > nextAnswered }
            return after.count >= 6 && after.contains { $0.what.hasPrefix("upload") }
        }, "answers after the restart")
        clients.stop()
        await running.value

        let sent = clients.all
        let failed = sent.filter { !(200..<300).contains($0.status) }
        #expect(failed.isEmpty, "\(failed.count) of \(sent.count) failed, e.g. \(failed.prefix(5).map { "\($0.what): \($0.status)" })")
        #expect(sent.contains { $0.started > restartBegan && $0.started < nextAnswered },
                "some request was sent between the SIGTERM and the next server's first answer")
        let nginxErrors = (try? String(contentsOf: stack.varDir.appendingPathComponent("nginx/error.log"), encoding: .utf8)) ?? ""
        #expect(!nginxErrors.contains("connect() to unix:"), "nginx always found the sockets")
        for pool in ["inference", "io"] {
            #expect(FileManager.default.fileExists(atPath: stack.varDir.appendingPathComponent("run/\(pool).sock").path),
                    "the \(pool) socket is the service manager's: the stopped server left it")
        }
    }

    /// A socket that no pool listens on is a mistake in the socket unit or the settings: the server
    /// refuses to start and says which, instead of leaving connections to it unanswered.
    @Test func aSocketNoPoolListensOnStopsTheStartAndIsNamed() throws {
        let folder = TemporaryFolder("mediscope-activation")
        var environment = stack.environment
        environment["MEDISCOPE_VAR"] = folder.url.appendingPathComponent("var").path
        let stray = folder.url.appendingPathComponent("var/run/stray.sock").path
        let run = try runProcess(URL(fileURLWithPath: "/usr/bin/python3"),
                                 [Repository.root.appendingPathComponent("Tests/Support/socket-activate.py").path,
                                  "--pid-file", folder.url.appendingPathComponent("pid").path]
                                    + ["inference", "io"].flatMap { ["--listen", folder.url.appendingPathComponent("var/run/\($0).sock").path] }
                                    + ["--listen", stray, "--", Repository.executable.path, "serve"],
                                 environment: environment, timeout: 120)
        #expect(run.status != 0)
        #expect(run.stderr.contains("unix:\(stray)") && run.stderr.contains("no pool listens on"), "\(run.stderr)")
    }
}
