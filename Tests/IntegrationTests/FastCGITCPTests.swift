import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A pool on TCP, spoken to in raw FastCGI records (as nginx speaks it): FCGI_KEEP_CONN keeps the
/// connection for the next request, and a peer not in `allowed_clients` is refused and logged.
@Suite(.serialized) final class FastCGITCPTests {
    let folder = TemporaryFolder("mediscope-fcgi")
    var dir: URL { folder.url }
    let port: Int
    let server: Process

    init() async throws {
        let dir = folder.url
        let port = try Stack.freePort()
        self.port = port
        var env = ProcessInfo.processInfo.environment
        env["MEDISCOPE_VAR"] = dir.path
        env["MEDISCOPE_MANIFEST"] = Repository.root.appendingPathComponent("models/manifest.json").path
        env["MEDISCOPE_LOG_FILE"] = dir.appendingPathComponent("mediscope.log").path
        env["MEDISCOPE_POOLS_INFERENCE_WORKERS"] = "1"
        env["MEDISCOPE_POOLS_IO_WORKERS"] = "1"
        env["MEDISCOPE_POOLS_IO_LISTEN"] = "tcp:127.0.0.1:\(port)"
        // The allow-list comes from the file, so that a reload can change it.
        let configFile = dir.appendingPathComponent("mediscope.json")
        try #"{"pools":{"io":{"allowed_clients":"127.0.0.1"}}}"#.write(to: configFile, atomically: true, encoding: .utf8)
        server = Process()
        server.executableURL = Repository.executable
        server.arguments = ["serve", "--config", configFile.path]
        server.environment = env
        server.currentDirectoryURL = Repository.root
        try server.run()
        // Ready, not only healthy: the inference pool has its worker (forked after the models preloaded).
        try await onOwnThread {
            let deadline = Date().addingTimeInterval(90)
            while Date() < deadline {
                if let c = try? FastCGIClient(port: port), (try? c.get("/api/ready").status) == 200 { return }
                Thread.sleep(forTimeInterval: 0.1)
            }
            throw StackError("the TCP pool did not answer on \(port)")
        }
    }

    deinit {
        kill(server.processIdentifier, SIGTERM)
        server.waitUntilExit()
    }

    var log: String { (try? String(contentsOf: dir.appendingPathComponent("mediscope.log"), encoding: .utf8)) ?? "" }
    var configFile: URL { dir.appendingPathComponent("mediscope.json") }

    func served(from source: String) -> Bool {
        (try? FastCGIClient(port: port, from: source).get("/api/health").status) == 200
    }

    func waitUntil(_ what: String, _ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(60)
        while !condition() {
            guard Date() < deadline else { throw StackError("timed out waiting until \(what)") }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    /// SIGHUP re-reads the file: a broken one is refused (logged, the pool keeps serving as it was);
    /// a new allow-list applies to the workers the reload starts.
    @Test func aReloadAppliesANewAllowListAndRefusesABrokenFile() throws {
        try #"{"pools": "#.write(to: configFile, atomically: true, encoding: .utf8)
        kill(server.processIdentifier, SIGHUP)
        try waitUntil("the broken file is logged") { log.contains("\"reload_config_error\"") }
        #expect(!log.contains("\"reload\""), "no reload happened")
        #expect(served(from: "127.0.0.1") && !served(from: "127.0.0.2"))

        // The balancer moved to 127.0.0.2.
        try #"{"pools":{"io":{"allowed_clients":"127.0.0.2"}}}"#.write(to: configFile, atomically: true, encoding: .utf8)
        kill(server.processIdentifier, SIGHUP)
        try waitUntil("the new peer is served and the old one refused") { served(from: "127.0.0.2") && !served(from: "127.0.0.1") }
        #expect(server.isRunning)
    }

    @Test func keptConnectionsServeRequestAfterRequest() throws {
        let client = try FastCGIClient(port: port)
        for i in 0..<5 {
            let r = try client.get("/api/health", keepConnection: true)
            #expect(r.status == 200 && r.body.contains("ok"), "request \(i) on the same connection")
        }
        // Without FCGI_KEEP_CONN the worker closes the connection after the answer.
        _ = try client.get("/api/health", keepConnection: false)
        #expect(client.isClosedByPeer(), "the worker closed the connection it was not asked to keep")
        // And a second client is served while the first keeps its connection open.
        let kept = try FastCGIClient(port: port)
        #expect(try kept.get("/api/health", keepConnection: true).status == 200)
        #expect(try FastCGIClient(port: port).get("/api/health").status == 200, "one io worker, two connections: both served")
        #expect(try kept.get("/api/ready", keepConnection: true).status == 200)
    }

    @Test func aPeerNotAllowedIsRefusedAndLogged() throws {
        // 127.0.0.2 is loopback too, but not in allowed_clients.
        let stranger = try FastCGIClient(port: port, from: "127.0.0.2")
        #expect(throws: (any Error).self) { try stranger.get("/api/health") }
        let deadline = Date().addingTimeInterval(30)
        while !log.contains("connection_refused"), Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(log.contains("\"connection_refused\"") && log.contains("127.0.0.2"))
        #expect(try FastCGIClient(port: port).get("/api/health").status == 200, "the allowed peer is still served")
    }
}

/// A minimal FastCGI client (FastCGI 1.0 records, responder role), one request at a time.
final class FastCGIClient {
    let fd: Int32
    private var requestId: UInt16 = 0

    init(host: String = "127.0.0.1", port: Int, from source: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StackError("socket failed") }
        // A deadline, not a measure: with every suite running on a loaded 2-core CI machine, an answer once took
        // over 10 s.
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { close(fd); throw StackError("cannot bind to \(source)") }
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr(host)
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { close(fd); throw StackError("connect failed") }
    }

    deinit { close(fd) }

    func get(_ path: String, keepConnection: Bool = false) throws -> (status: Int, body: String) {
        requestId += 1
        var out: [UInt8] = []
        out += record(1, [0, 1, keepConnection ? 1 : 0, 0, 0, 0, 0, 0])  // BEGIN_REQUEST: responder
        var params: [UInt8] = []
        for (name, value) in [("REQUEST_METHOD", "GET"), ("DOCUMENT_URI", path), ("REQUEST_URI", path), ("QUERY_STRING", ""),
                              ("REMOTE_ADDR", "127.0.0.1"), ("SERVER_PORT", "80"), ("CONTENT_LENGTH", "0")] {
            params += [UInt8(name.utf8.count), UInt8(value.utf8.count)] + Array(name.utf8) + Array(value.utf8)
        }
        out += record(4, params) + record(4, []) + record(5, [])
        guard out.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == out.count else {
            throw StackError("send failed")
        }
        var stdout: [UInt8] = []
        while true {
            let header = try read(8)
            let length = Int(header[4]) << 8 | Int(header[5])
            let content = try read(length)
            _ = try read(Int(header[6]))
            if header[1] == 6 { stdout += content }   // STDOUT
            if header[1] == 3 { break }               // END_REQUEST
        }
        let text = String(decoding: stdout, as: UTF8.self)
        let status = text.split(separator: "\r\n").first { $0.hasPrefix("Status: ") }.flatMap { Int($0.dropFirst(8).prefix(3)) } ?? 200
        let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        return (status, body)
    }

    /// True when the peer has closed the connection (a read returns end of file).
    func isClosedByPeer() -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0
    }

    private func record(_ type: UInt8, _ content: [UInt8]) -> [UInt8] {
        [1, type, UInt8(requestId >> 8), UInt8(requestId & 0xFF), UInt8(content.count >> 8), UInt8(content.count & 0xFF), 0, 0] + content
    }

    private func read(_ count: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + filled, count - filled, 0) }
            guard n > 0 else { throw StackError("the connection closed") }
            filled += n
        }
        return buffer
    }
}
