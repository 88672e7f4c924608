import FirestoreTestKit
import Foundation
import Synchronization
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Simulated hosts on this machine: network namespaces on one bridge, made and removed by
/// Tests/Support/netns-lab.sh. This (root) namespace has an address on the bridge too ("root").
final class NetworkLab: @unchecked Sendable {
    static let script = Repository.root.appendingPathComponent("Tests/Support/netns-lab.sh").path
    static let ip = FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip"
    private static let sequence = Mutex(0)

    /// msl<pid>n<k>: netns-lab.sh's sweep removes it once this process is gone, however it ended.
    let name: String
    /// Host name -> IPv4 address, "root" included.
    let addresses: [String: String]

    init(hosts: [String]) throws {
        _ = try Self.script(["sweep"])
        name = "msl\(getpid())n\(Self.sequence.withLock { $0 += 1; return $0 })"
        let out = try Self.script(["up", name] + hosts)
        var addresses: [String: String] = [:]
        for line in out.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2 { addresses[String(parts[0])] = String(parts[1]) }
        }
        guard addresses.count == hosts.count + 1 else {
            _ = try? Self.script(["down", name])
            throw StackError("netns-lab.sh up printed \(out)")
        }
        self.addresses = addresses
    }

    func address(_ host: String) -> String { addresses[host]! }

    /// `ip netns exec` enters the namespace and execs the program: the pid is the program's.
    func prefix(_ host: String) -> [String] { [Self.ip, "netns", "exec", "\(name)-\(host)"] }

    func process(on host: String, _ executable: String, _ arguments: [String], environment: [String: String]? = nil) -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.ip)
        p.arguments = Array(prefix(host).dropFirst()) + [executable] + arguments
        if let environment { p.environment = environment }
        return p
    }

    /// Kills whatever still runs in the namespaces and removes them.
    func down() { _ = try? Self.script(["down", name]) }

    @discardableResult
    static func script(_ arguments: [String]) throws -> String {
        let run = try runProcess(URL(fileURLWithPath: "/bin/bash"), [script] + arguments)
        guard run.status == 0 else { throw StackError("netns-lab.sh \(arguments.joined(separator: " ")): \(run.stderr)") }
        return run.stdout
    }
}

/// One application host of a `Cluster`: `mediscope serve` in its own namespace, both pools on TCP
/// (inference :9000, io :9001), only the balancer allowed to connect, Firestore as the store.
final class AppHost: @unchecked Sendable {
    let name: String
    let address: String
    let dir: URL
    let environment: [String: String]
    private let lab: NetworkLab
    private(set) var server: Process?
    var logFile: URL { dir.appendingPathComponent("mediscope.log") }
    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    init(_ name: String, lab: NetworkLab, dir: URL, balancer: String, emulator: String, project: String) throws {
        self.name = name
        self.lab = lab
        address = lab.address(name)
        self.dir = dir
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("var"), withIntermediateDirectories: true)
        var env = ProcessInfo.processInfo.environment
        env["MEDISCOPE_VAR"] = dir.appendingPathComponent("var").path
        env["MEDISCOPE_MANIFEST"] = Repository.root.appendingPathComponent("models/manifest.json").path
        env["MEDISCOPE_LOG_FILE"] = dir.appendingPathComponent("mediscope.log").path
        env["MEDISCOPE_HOST_NAME"] = "host-\(name)"
        env["MEDISCOPE_POOLS_INFERENCE_WORKERS"] = "1"
        env["MEDISCOPE_POOLS_INFERENCE_LISTEN"] = "tcp:\(address):9000"
        env["MEDISCOPE_POOLS_IO_LISTEN"] = "tcp:\(address):9001"
        env["MEDISCOPE_POOLS_INFERENCE_ALLOWED_CLIENTS"] = balancer
        env["MEDISCOPE_POOLS_IO_ALLOWED_CLIENTS"] = balancer
        env["MEDISCOPE_STORE"] = "firestore"
        env["MEDISCOPE_FIRESTORE_PROJECT_ID"] = project
        env["MEDISCOPE_FIRESTORE_CACHE_SECONDS"] = "1"
        env["FIRESTORE_EMULATOR_HOST"] = emulator
        environment = env
    }

    var masterPID: Int32 { server?.processIdentifier ?? 0 }
    var isRunning: Bool { server?.isRunning == true }

    /// The master's children: workers and background processes.
    var children: [Int32] {
        (try? String(contentsOfFile: "/proc/\(masterPID)/task/\(masterPID)/children", encoding: .utf8))?
            .split(separator: " ").compactMap { Int32($0) } ?? []
    }

    /// Starts the pool and waits for its master to be ready (the balancer alone may connect, so
    /// readiness is read from the log).
    func start() throws {
        let before = log.components(separatedBy: "\"master_ready\"").count
        let p = lab.process(on: name, Repository.executable.path, ["serve"], environment: environment)
        p.currentDirectoryURL = Repository.root
        try p.run()
        server = p
        let deadline = Date().addingTimeInterval(90)
        while Date() < deadline {
            if log.components(separatedBy: "\"master_ready\"").count > before { return }
            guard p.isRunning else { throw StackError("host \(name) exited at start: \(log.suffix(2000))") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw StackError("host \(name) was not ready in 90 s")
    }

    /// SIGKILL to the master and all its children at once (a power cut).
    func killAll() {
        guard let server, server.isRunning else { return }
        for pid in [masterPID] + children { kill(pid, SIGKILL) }
        server.waitUntilExit()
    }

    /// SIGHUP, then waits until none of the processes that ran before it is left.
    func reload(timeout: Double = 60) throws {
        let old = Set(children)
        kill(masterPID, SIGHUP)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if Set(children).isDisjoint(with: old), children.count >= old.count { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw StackError("host \(name): the old workers were still there \(timeout) s after SIGHUP")
    }

    /// Graceful stop (SIGTERM); SIGKILL after `timeout`.
    func stop(timeout: Double = 25) {
        guard let server, server.isRunning else { return }
        kill(masterPID, SIGTERM)
        let deadline = Date().addingTimeInterval(timeout)
        while server.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if server.isRunning { killAll() }
        server.waitUntilExit()
    }
}

/// Several hosts on a simulated network: nginx on "lb" balancing over application hosts "a" and "b"
/// (deploy/render-nginx.sh with UPSTREAM_HOSTS), the Firestore emulator alone on "fs". Tests talk to
/// the balancer from the root namespace. `stop()` ends every process and removes every namespace.
final class Cluster: HTTPEndpoint, @unchecked Sendable {
    let lab: NetworkLab
    private let folder = TemporaryFolder("mediscope-cluster")
    var dir: URL { folder.url }
    let project = "cluster-\(UUID().uuidString.prefix(8).lowercased())"
    private(set) var hosts: [String: AppHost] = [:]
    private(set) var emulator: FirestoreEmulator?
    private var nginx: Process?
    var defaultAuth: Stack.Auth?
    /// An admin's API token: /api/status through the balancer (the client is not on loopback).
    private(set) var adminAuth: Stack.Auth = .none
    private let sensitive = Mutex<Set<String>>([Stack.password])

    var baseURL: String { "http://\(lab.address("lb")):8080" }
    var lbVar: URL { dir.appendingPathComponent("lb/var") }
    var accessLog: URL { lbVar.appendingPathComponent("nginx/access.log") }
    subscript(_ name: String) -> AppHost { hosts[name]! }

    func remember(_ values: some Sequence<String>) {
        sensitive.withLock { $0.formUnion(values.filter { $0.count >= 4 }) }
    }

    /// A cluster started through `FixtureStarts`, as `Stack.start`.
    static func start(upstream: [String: String] = [:]) async throws -> Cluster {
        try await FixtureStarts.shared.run { try Cluster(upstream: upstream) }
    }

    init(upstream: [String: String] = [:]) throws {
        lab = try NetworkLab(hosts: ["lb", "a", "b", "fs"])
        do {
            try FileManager.default.createDirectory(at: lbVar.appendingPathComponent("nginx"), withIntermediateDirectories: true)
            emulator = try FirestoreEmulator(address: lab.address("fs"), port: 8080, launchPrefix: lab.prefix("fs"))
            for name in ["a", "b"] {
                hosts[name] = try AppHost(name, lab: lab, dir: dir.appendingPathComponent(name), balancer: lab.address("lb"),
                                          emulator: emulator!.host, project: project)
                try hosts[name]!.start()
            }
            try Stack.buildWeb(into: lbVar.appendingPathComponent("www"))
            self.upstream = upstream
            try renderNginx(drained: [])
            let nginx = lab.process(on: "lb", "/usr/sbin/nginx", ["-c", dir.appendingPathComponent("lb/nginx.conf").path,
                                                                   "-p", lbVar.appendingPathComponent("nginx").path + "/",
                                                                   "-e", lbVar.appendingPathComponent("nginx/error.log").path,
                                                                   "-g", "daemon off;"])
            try nginx.run()
            self.nginx = nginx
            try addUser("clinician", role: "clinician")
            try addUser("admin", role: "admin")
            try waitUntil("the balancer answers", timeout: 20) { (try? self.syncRequest("GET", "/api/health").status) == 200 }
            defaultAuth = .bearer(try syncCreateToken(try syncSignIn("clinician")))
            adminAuth = .bearer(try syncCreateToken(try syncSignIn("admin")))
        } catch {
            stop()
            throw error
        }
    }

    private var upstream: [String: String] = [:]

    /// Renders the balancer's config with `drained` hosts marked down (UPSTREAM_HOSTS "addr=down").
    func renderNginx(drained: Set<String>) throws {
        var settings = upstream
        settings["VAR"] = lbVar.path
        settings["LISTEN"] = "\(lab.address("lb")):8080"
        settings["BODY_LIMIT"] = "20m"
        settings["UPSTREAM_HOSTS"] = ["a", "b"].map { lab.address($0) + (drained.contains($0) ? "=down" : "") }.joined(separator: " ")
        settings["UPLOAD_RATE_EXEMPT"] = lab.address("root") + "/32"
        try Stack.renderNginx(to: dir.appendingPathComponent("lb/nginx.conf"), settings)
    }

    /// nginx -s reload, then waits until the old worker processes have finished their requests.
    func reloadNginx() throws {
        guard let nginx else { return }
        let master = nginx.processIdentifier
        let old = Set(Self.children(of: master))
        kill(master, SIGHUP)
        try waitUntil("nginx's old workers exit", timeout: 60) {
            let now = Set(Self.children(of: master))
            return !now.isEmpty && now.isDisjoint(with: old)
        }
    }

    static func children(of pid: Int32) -> [Int32] {
        (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8))?
            .split(separator: " ").compactMap { Int32($0) } ?? []
    }

    /// `mediscope user add` against the cluster's Firestore, from this namespace.
    func addUser(_ username: String, role: String) throws {
        try Stack.addUser(username, role: role, environment: self["a"].environment)
    }

    /// /api/status of whichever host the balancer picked.
    func status() throws -> [String: Any] {
        let r = try syncRequest("GET", "/api/status", auth: adminAuth)
        guard r.status == 200, let json = r.json else { throw StackError("status: \(r.status)") }
        return json
    }

    /// Polls until every host's outbox is empty (each host delivers its own).
    func waitForDelivery(timeout: Double = 60) throws {
        var empty: Set<String> = []
        try waitUntil("every outbox is delivered", timeout: timeout) {
            guard let s = try? self.status(), let host = s["host"] as? String else { return false }
            let depth = (s["outbox"] as? [String: Any])?["depth"] as? Int
            if depth == 0 { empty.insert(host) } else { empty.remove(host) }
            return empty == ["host-a", "host-b"]
        }
    }

    /// The balancer's access log, one JSON object per request.
    func accessLogEntries() -> [[String: Any]] {
        let text = (try? String(contentsOf: accessLog, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    func waitUntil(_ what: String, timeout: Double, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw StackError("timed out after \(timeout) s waiting until \(what)")
    }

    func stop() {
        if let nginx, nginx.isRunning {
            kill(nginx.processIdentifier, SIGQUIT)
            nginx.waitUntilExit()
        }
        for host in hosts.values { host.stop() }
        emulator?.stop()
        lab.down()
        var logs = ""
        for url in hosts.values.map(\.logFile) + [accessLog, lbVar.appendingPathComponent("nginx/error.log")] {
            logs += (try? String(contentsOf: url, encoding: .utf8)) ?? ""
        }
        for value in sensitive.withLock({ $0 }) where logs.contains(value) {
            Issue.record("a log of the cluster holds a patient detail, password or token (\(value.prefix(5))…)")
        }
        try? FileManager.default.removeItem(at: dir)
    }
}
