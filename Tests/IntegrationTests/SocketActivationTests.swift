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

    init() async throws {
        // The int8 model: the next server's fork server preloads it in about a second, so requests queued
        // during the restart are answered well inside nginx's read timeouts even on a loaded machine.
        stack = try await Stack.start(settings: ["MANIFEST": Repository.root.appendingPathComponent("models/manifest-int8.json").path],
                          socketActivated: true)
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
        let accessLog = stack.varDir.appendingPathComponent("nginx/access.log")
        func accessEntries() -> [Substring] {
            ((try? String(contentsOf: accessLog, encoding: .utf8)) ?? "").split(separator: "\n")
        }
        let earlier = accessEntries().count   // the stack's start (its health polls) is not this test's
        let first = try #require(stack.activatedServerPID)
        #expect(try stack.status()["masterPid"] as? Int == Int(first))
        let scan = try Scans.jpeg
        let clients = Clients()
        // Three clients without pause, on threads of their own (not tasks: while other suites hold the cooperative
        // pool's threads the clients must keep sending): uploads (the inference pool) and lists (the io pool).
        let running = DispatchGroup()
        for client in 0..<3 {
            running.enter()
            Thread {
                defer { running.leave() }
                var n = 0
                while !clients.isStopped {
                    n += 1
                    let started = Date()
                    let upload = client == 0
                    var status = -1
                    if upload {
                        let fields = ["patient_id": "P-RESTART-\(n)"]
                        stack.remember(fields.values)
                        let (body, type) = Multipart.body(fields: fields, files: [("image", "scan.jpg", scan)])
                        status = (try? stack.syncRequest("POST", "/api/analyses", body: body, contentType: type, timeout: 90))?.status ?? -1
                    } else {
                        status = (try? stack.syncRequest("GET", "/api/analyses?limit=5", timeout: 90))?.status ?? -1
                    }
                    clients.add(Sent(started: started, what: upload ? "upload \(n)" : "list \(client).\(n)", status: status))
                }
            }.start()
        }
        defer { clients.stop() }
        #expect(try await eventually(timeout: 120, every: .milliseconds(50)) { clients.count >= 6 }, "answers before the restart")

        // `systemctl restart`: SIGTERM to the server, wait until it has exited, start the next.
        let restartBegan = Date()
        stack.signalServer(SIGHUP)
        let restarted = try await eventually(timeout: 60, every: .milliseconds(20)) { (stack.activatedServerPID ?? first) != first }
        #expect(restarted, "the server was started again")
        try await onOwnThread { try stack.waitUntilHealthy() }
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
        try await onOwnThread { running.wait() }

        let sent = clients.all
        let failed = sent.filter { !(200..<300).contains($0.status) }
        #expect(failed.isEmpty, "\(failed.count) of \(sent.count) failed, e.g. \(failed.prefix(5).map { "\($0.what): \($0.status)" })")
        #expect(sent.contains { $0.started > restartBegan && $0.started < nextAnswered && (200..<300).contains($0.status) },
                "some request sent between the SIGTERM and the next server's first answer was answered")
        // nginx's view: no connection to a pool was refused (502) or timed out (504) at any time.
        let upstreamStatuses = accessEntries().dropFirst(earlier).compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["upstream_status"] as? String
        }
        #expect(upstreamStatuses.count >= sent.count, "the access log has every request")
        #expect(!upstreamStatuses.contains { $0.contains("502") || $0.contains("504") }, "\(Set(upstreamStatuses))")
        for pool in ["inference", "io"] {
            #expect(FileManager.default.fileExists(atPath: stack.varDir.appendingPathComponent("run/\(pool).sock").path),
                    "the \(pool) socket is the service manager's: the stopped server left it")
        }
    }

    /// A socket that no pool listens on (a host whose pools moved to TCP, edited paths): the server starts
    /// anyway, its pools bind their own sockets as without systemd, and the operator is told which socket
    /// is unused. Refusing to start would take the service down at the upgrade that brought the sockets.
    @Test func aSocketNoPoolListensOnIsNamedAndThePoolsBindTheirOwn() async throws {
        let folder = TemporaryFolder("mediscope-activation")
        var environment = stack.environment
        let varDir = folder.url.appendingPathComponent("var")
        environment["MEDISCOPE_VAR"] = varDir.path
        environment["MEDISCOPE_LOG_FILE"] = folder.url.appendingPathComponent("mediscope.log").path
        let stray = varDir.appendingPathComponent("run/stray.sock").path
        let stderr = folder.url.appendingPathComponent("stderr.txt")
        FileManager.default.createFile(atPath: stderr.path, contents: nil)
        let server = Process()
        server.executableURL = Stack.python
        server.arguments = Stack.socketActivation(listen: [stray], pidFile: folder.url.appendingPathComponent("pid"))
        server.environment = environment
        server.currentDirectoryURL = Repository.root
        server.standardError = try FileHandle(forWritingTo: stderr)
        try server.run()
        defer { if server.isRunning { kill(server.processIdentifier, SIGTERM); server.waitUntilExit() } }
        let own = ["inference", "io"].map { varDir.appendingPathComponent("run/\($0).sock").path }
        #expect(try await eventually(timeout: 120, every: .milliseconds(50)) {
            own.allSatisfy { (try? FileManager.default.attributesOfItem(atPath: $0))?[.type] as? FileAttributeType == .typeSocket }
        }, "the pools bound their own sockets")
        let told = (try? String(contentsOf: stderr, encoding: .utf8)) ?? ""
        #expect(told.contains("unix:\(stray)") && told.contains("no pool listens on"), "\(told)")
        let log = (try? String(contentsOf: folder.url.appendingPathComponent("mediscope.log"), encoding: .utf8)) ?? ""
        #expect(log.contains("\"event\":\"socket_unused\""))
        kill(server.processIdentifier, SIGTERM)
        server.waitUntilExit()
        #expect(server.terminationStatus == 0, "a clean stop")
    }
}
