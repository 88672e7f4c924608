import FirestoreTestKit
import Foundation
import Testing
import TestSupport

/// A real serving stack for one test suite: `mediscope serve` (the pre-forked pools) behind a real nginx,
/// on a free port, with its own state folder. Stopped (and its folder removed) by `stop()`.
final class Stack: HTTPEndpoint, @unchecked Sendable {
    /// The repository's root, under the name the browser and input-check suites use.
    static var root: URL { Repository.root }

    private let folder = TemporaryFolder("mediscope-it")
    var dir: URL { folder.url }
    let port: Int
    var varDir: URL { dir.appendingPathComponent("var") }
    var logFile: URL { dir.appendingPathComponent("mediscope.log") }
    var baseURL: String { "http://127.0.0.1:\(port)" }
    private(set) var server: Process?
    private var nginx: Process?
    let environment: [String: String]
    /// Patient details, passwords and tokens this stack was given: `stop()` checks that no log holds any.
    private let sensitiveLock = NSLock()
    private var sensitive: Set<String> = [Stack.password]
    func remember(_ values: some Sequence<String>) {
        sensitiveLock.withLock { sensitive.formUnion(values.filter { $0.count >= 4 }) }
    }

    /// Credentials sent when a request names none: a clinician's API token, made at start-up.
    var defaultAuth: Auth?

    enum Auth {
        case bearer(String)
        /// Cookie session; `csrf` nil sends no X-CSRF-Token, `origin` nil sends no Origin.
        case session(cookie: String, csrf: String?, origin: String?)
        case none
    }

    static let password = "correct horse battery staple"
    /// `host.name` of every stack: the label its metrics carry.
    static let hostName = "it-host"

    /// `settings` are MEDISCOPE_* variables for the server, e.g. ["POOLS_INFERENCE_WORKERS": "1"];
    /// `environment` other variables (e.g. FIRESTORE_EMULATOR_HOST).
    /// `socketActivated`: the pools' sockets are bound and held by Tests/Support/socket-activate.py,
    /// which starts `mediscope serve` with them as systemd's socket activation does (`server` is then
    /// that script; SIGHUP to it restarts the server, `activatedServerPID` names the running one).
    init(settings: [String: String] = [:], environment extra: [String: String] = [:], bodyLimit: String = "20m",
         socketActivated: Bool = false) throws {
        self.socketActivated = socketActivated
        let dir = folder.url
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("var/nginx"), withIntermediateDirectories: true)
        port = try Self.freePort()
        var env = ProcessInfo.processInfo.environment
        env["MEDISCOPE_VAR"] = dir.appendingPathComponent("var").path
        env["MEDISCOPE_MANIFEST"] = Repository.root.appendingPathComponent("models/manifest.json").path
        env["MEDISCOPE_LOG_FILE"] = dir.appendingPathComponent("mediscope.log").path
        env["MEDISCOPE_SOCKET_MODE"] = "0666"  // nginx's workers run as nobody
        env["MEDISCOPE_POOLS_INFERENCE_WORKERS"] = "1"
        env["MEDISCOPE_HOST_NAME"] = Stack.hostName
        for (k, v) in settings { env["MEDISCOPE_" + k] = v }
        for (k, v) in extra { env[k] = v }
        environment = env

        try Self.buildWeb(into: varDir.appendingPathComponent("www"))
        try Self.renderNginx(to: dir.appendingPathComponent("nginx.conf"),
                             ["VAR": varDir.path, "LISTEN": "127.0.0.1:\(port)", "BODY_LIMIT": bodyLimit])

        let nginx = Process()
        nginx.executableURL = URL(fileURLWithPath: "/usr/sbin/nginx")
        nginx.arguments = ["-c", dir.appendingPathComponent("nginx.conf").path, "-p", varDir.appendingPathComponent("nginx").path,
                           "-e", "stderr", "-g", "daemon off;"]
        nginx.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try nginx.run()
        self.nginx = nginx
        do {
            try startServer()
            try addUser("clinician", role: "clinician")
            let session = try syncSignIn("clinician")
            defaultAuth = .bearer(try syncCreateToken(session))
        } catch {
            stop()  // a failed start must not leave nginx and the pool running
            throw error
        }
    }

    /// A stack started through `FixtureStarts` (on a thread of its own, a few at a time): what suites and tests
    /// call, so the minute a stack may take to start on a loaded machine holds no thread of Swift's cooperative pool.
    static func start(settings: [String: String] = [:], environment extra: [String: String] = [:], bodyLimit: String = "20m",
                      socketActivated: Bool = false) async throws -> Stack {
        try await FixtureStarts.shared.run { try Stack(settings: settings, environment: extra, bodyLimit: bodyLimit, socketActivated: socketActivated) }
    }

    /// `mediscope user add`, the real command, on this stack's state folder.
    /// A new user of `organization` and an API token of theirs (made from a session, as a person would).
    func token(forNewUser username: String, role: String, organization: String = "default") throws -> String {
        try addUser(username, role: role, organization: organization)
        return try token(for: username)
    }

    func addUser(_ username: String, role: String, organization: String = "default") throws {
        try Self.addUser(username, role: role, organization: organization, environment: environment)
    }

    /// `mediscope user add` with `environment` (its state folder or its Firestore), password on stdin.
    static func addUser(_ username: String, role: String, organization: String = "default", environment: [String: String]) throws {
        let run = try runProcess(Repository.executable, ["user", "add", username, "--role", role, "--organization", organization],
                                 environment: environment, input: password + "\n")
        guard run.status == 0 else { throw StackError("mediscope user add \(username) failed: \(run.stderr)") }
    }

    /// Whether `server` is socket-activate.py holding the pools' sockets (see `init`).
    let socketActivated: Bool
    var activationPIDFile: URL { dir.appendingPathComponent("activated.pid") }
    /// The pid of the `mediscope serve` that socket-activate.py runs now.
    var activatedServerPID: Int32? {
        (try? String(contentsOf: activationPIDFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    static let python = URL(fileURLWithPath: "/usr/bin/python3")

    /// Arguments for `python` that run `mediscope serve` with the unix sockets at `listen` passed as
    /// systemd's socket activation passes them (Tests/Support/socket-activate.py; its pid in `pidFile`),
    /// the i-th with listen queue `backlogs[i]` (128 beyond them).
    static func socketActivation(listen: [String], backlogs: [Int] = [], pidFile: URL) -> [String] {
        [Repository.root.appendingPathComponent("Tests/Support/socket-activate.py").path, "--pid-file", pidFile.path]
            + listen.flatMap { ["--listen", $0] } + backlogs.flatMap { ["--backlog", String($0)] }
            + ["--", Repository.executable.path, "serve"]
    }

    func startServer() throws {
        let p = Process()
        if socketActivated {
            p.executableURL = Self.python
            // io first: the master matches sockets to pools by address, whatever their order. The listen queues
            // are the package's socket units' (mediscope-io.socket 128, mediscope-inference.socket 4).
            p.arguments = Self.socketActivation(listen: ["io", "inference"].map { varDir.appendingPathComponent("run/\($0).sock").path },
                                                backlogs: [128, 4], pidFile: activationPIDFile)
        } else {
            p.executableURL = Repository.executable
            p.arguments = ["serve"]
        }
        p.environment = environment
        p.currentDirectoryURL = Repository.root
        try p.run()
        server = p
        try waitUntilHealthy()
        try waitForInferenceWorker()
    }

    /// `startServer` from async code (what the compiler picks there): a restart of the stack waits on a thread
    /// of its own, not on one of the cooperative pool's.
    func startServer() async throws {
        try await onOwnThread { try self.startServer() }
    }

    /// Until the inference pool has a worker accepting (its fork server preloads the models first), so a
    /// test sees a whole stack; at most `timeout` seconds. Generous: when the suites start, dozens of
    /// stacks, emulators and browsers start at once on a loaded 2-core machine.
    func waitForInferenceWorker(timeout: Double = 240) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let workers = try? workers("inference"), workers.contains(where: { $0.state == "idle" || $0.state == "busy" }) { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw StackError("the inference pool had no worker in \(timeout) s")
    }

    func waitUntilHealthy(timeout: Double = 240) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let r = try? syncRequest("GET", "/api/health"), r.status == 200 { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw StackError("the stack did not become healthy in \(timeout) s")
    }

    var masterPID: Int32 { server?.processIdentifier ?? 0 }

    /// SIGKILL to the master and every child (workers, background processes) at once, as a power cut
    /// or the OOM killer of a whole cgroup would; then waits for the master to be gone.
    func killWholePool() {
        guard let server, server.isRunning else { return }
        let master = server.processIdentifier
        let children = LeanProcessTests.children(of: master)
        for pid in [master] + children { kill(pid, SIGKILL) }
        server.waitUntilExit()
        // Until every child has exited, so the next server finds the sockets stale instead of still listened
        // on by a child the kernel has not ended yet.
        let deadline = Date().addingTimeInterval(30)
        while !children.allSatisfy({ LeanProcessTests.ProcessView(pid: $0).hasExited }), Date() < deadline {
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    func signalServer(_ sig: Int32) { if let pid = server?.processIdentifier { kill(pid, sig) } }

    /// Waits for the server process to exit; returns its status.
    func waitForServerExit(timeout: Double = 30) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while server?.isRunning == true && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        return server?.isRunning == false ? server?.terminationStatus : nil
    }

    func stop() {
        defer { checkLogsHoldNothingSensitive() }
        if let server, server.isRunning {
            kill(server.processIdentifier, SIGTERM)
            if waitForServerExit(timeout: 25) == nil { kill(server.processIdentifier, SIGKILL) }
        }
        if let nginx, nginx.isRunning {
            kill(nginx.processIdentifier, SIGQUIT)
            nginx.waitUntilExit()
        }
    }

    /// Reads every log the stack wrote, then removes its folder.
    private func checkLogsHoldNothingSensitive() {
        var logs = ""
        for url in [logFile, varDir.appendingPathComponent("nginx/access.log"), varDir.appendingPathComponent("nginx/error.log")] {
            logs += (try? String(contentsOf: url, encoding: .utf8)) ?? ""
        }
        for value in sensitiveLock.withLock({ sensitive }) where logs.contains(value) {
            Issue.record("a log of this stack holds a patient detail, password or token (\(value.prefix(5))…)")
        }
        try? FileManager.default.removeItem(at: dir)
    }

    // MARK: HTTP

    struct Response {
        var status: Int
        var headers: [String: String]
        var body: Data
        var json: [String: Any]? { try? JSONSerialization.jsonObject(with: body) as? [String: Any] }
        func header(_ name: String) -> String? {
            headers.first { $0.key.lowercased() == name.lowercased() }?.value
        }
    }

    /// Workers of a pool from the status page: pid, state and generation (1, then one more per reload).
    func workers(_ pool: String) throws -> [(pid: Int32, state: String, generation: Int)] {
        let pools = try #require(try status()["pools"] as? [String: Any])
        let snapshot = try #require((pools[pool] as? [String: Any])?["snapshot"] as? [String: Any])
        let workers = try #require(snapshot["workers"] as? [[String: Any]])
        return try workers.map { worker in
            (Int32(try #require(worker["pid"] as? Int)), try #require(worker["state"] as? String),
             try #require(worker["generation"] as? Int))
        }
    }

    func poolNumber(_ pool: String, _ key: String) throws -> Int {
        let pools = try #require(try status()["pools"] as? [String: Any])
        let snapshot = try #require((pools[pool] as? [String: Any])?["snapshot"] as? [String: Any])
        return try #require(snapshot[key] as? Int)
    }

    /// deploy/build-web.sh: the dashboard's fingerprinted web root from public/, into `www`.
    static func buildWeb(into www: URL) throws {
        let run = try runProcess(URL(fileURLWithPath: "/bin/bash"), [Repository.root.appendingPathComponent("deploy/build-web.sh").path,
                                                                     Repository.root.appendingPathComponent("public").path, www.path])
        guard run.status == 0 else { throw StackError("build-web.sh failed (\(run.status)): \(run.stderr)") }
    }

    static func freePort() throws -> Int { try FirestoreEmulator.freePort() }

    /// deploy/render-nginx.sh on the local template with `settings` (VAR, LISTEN, BODY_LIMIT, UPSTREAM_*...),
    /// without its `nginx -t` (the test starts that nginx anyway).
    static func renderNginx(to output: URL, _ settings: [String: String]) throws {
        var env = ProcessInfo.processInfo.environment
        for (k, v) in settings { env[k] = v }
        env["NGINX_TEST"] = "0"
        let render = try runProcess(URL(fileURLWithPath: "/bin/bash"), [Repository.root.appendingPathComponent("deploy/render-nginx.sh").path,
                                                                        Repository.root.appendingPathComponent("nginx/local.conf.template").path,
                                                                        output.path], environment: env)
        guard render.status == 0 else { throw StackError("render-nginx.sh failed: \(render.stderr)") }
    }
}
