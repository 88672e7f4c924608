import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 19, item 8 ("slow clients"): 300 connections that never finish their request header made nginx
/// refuse every other client until they timed out. Through the real nginx (nginx/local.conf.template,
/// rendered by deploy/render-nginx.sh with its defaults) and the real pool. Every client socket is bound
/// to its own loopback source address first (127.0.0.0/8 all reach lo on Linux), so "another client"
/// has another address, as nginx's per-address limit sees it.
@Suite struct SlowClientTests {
    /// CONN_PER_ADDRESS's default in deploy/render-nginx.sh.
    static let perAddress = 64

    @Test func unfinishedRequestsFromOneAddressNeitherLockOthersOutNorOutliveTheHeaderTimeout() async throws {
        let stack = try Stack()
        defer { stack.stop() }
        var flood: [RawConnection] = []
        defer { flood.forEach { $0.close() } }
        for i in 0..<300 {
            let c = try RawConnection(port: stack.port, from: "127.0.0.1")
            // Half stop inside the request line, half inside the headers; none ever sends the blank line.
            try c.send(i % 2 == 0 ? "GET /api/hea" : "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            flood.append(c)
        }

        // Another address is answered at once, for the API and for a static page (socket deadline 5 s each;
        // the header timeout that would otherwise free nginx is 10 s).
        let health = try RawConnection.get("/api/health", port: stack.port, from: "127.0.0.2")
        #expect(health.status == 200, "\(health.head)")
        let page = try RawConnection.get("/", port: stack.port, from: "127.0.0.2")
        #expect(page.status == 200 && page.body.contains("<html"), "\(page.head)")
        // ...while every slow connection was still open: nginx held all 300 and still had room.
        #expect(flood.filter { $0.closedByPeer() }.isEmpty, "nginx dropped slow connections instead of holding them")

        // nginx closes each of them once client_header_timeout (10 s) has passed.
        let closed = await eventually(timeout: 40, every: .milliseconds(200)) { flood.allSatisfy { $0.closedByPeer() } }
        #expect(closed, "\(flood.filter { !$0.closedByPeer() }.count) of 300 slow connections still open after 40 s")
        // And nginx serves that address again.
        #expect(try RawConnection.get("/api/health", port: stack.port, from: "127.0.0.1").status == 200)
    }

    @Test func anAddressHasItsShareOfRequestsInProgressAndTheNextIsAnswered429() async throws {
        let stack = try Stack()
        defer { stack.stop() }
        // Uploads are authenticated before their body is read (issue 21): these carry a clinician's token.
        let token = try stack.token(forNewUser: "slow-clinician", role: "clinician")
        var uploads: [RawConnection] = []
        defer { uploads.forEach { $0.close() } }
        // Slow uploads: a whole header, then the start of a body that never ends. nginx says 100 Continue when it
        // starts reading the body, so each one is past limit_conn (counted) once that answer is here.
        for i in 0..<Self.perAddress {
            let c = try RawConnection(port: stack.port, from: "127.0.0.1")
            try c.send("POST /api/analyses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=slow\r\n"
                       + "Authorization: Bearer \(token)\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n")
            let interim = try c.readHead()
            #expect(interim.hasPrefix("HTTP/1.1 100 Continue"), "upload \(i + 1): \(interim)")
            try c.send("--slow\r\nContent-Disposition: form-data; name=\"patient_id\"\r\n\r\nP-SLOW\r\n")
            uploads.append(c)
        }

        // The next request from that address, API or static, is refused with the limit's problem+json.
        for path in ["/api/health", "/"] {
            let refused = try RawConnection.get(path, port: stack.port, from: "127.0.0.1")
            #expect(refused.status == 429, "\(path): \(refused.head)")
            #expect(refused.header("Content-Type") == "application/problem+json", "\(path)")
            #expect(refused.header("Retry-After") != nil, "\(path)")
            #expect(refused.body.contains("too many requests in progress from this address"), "\(path): \(refused.body)")
        }
        // Another address is not affected.
        #expect(try RawConnection.get("/api/health", port: stack.port, from: "127.0.0.2").status == 200)
        #expect(try RawConnection.get("/", port: stack.port, from: "127.0.0.3").status == 200)

        // One upload given up frees its slot for the next request of that address.
        uploads.removeLast().close()
        let served = try await eventually(timeout: 15, every: .milliseconds(100)) {
            try RawConnection.get("/api/health", port: stack.port, from: "127.0.0.1").status == 200
        }
        #expect(served, "a closed upload's slot was not given back")
        // The other uploads are still open: admitted requests are never cut by the limit.
        #expect(uploads.filter { $0.closedByPeer() }.isEmpty)

        // The upload rate limit's 429 (limit_req, same @rate_limited answer) keeps its own words: 1 + burst 10
        // uploads from an address that is not exempt, then refused.
        var rateLimited: RawConnection.Response?
        for _ in 0..<20 where rateLimited == nil {
            let r = try RawConnection.request("POST", "/api/analyses", port: stack.port, from: "127.0.0.4")
            if r.status == 429 { rateLimited = r }
        }
        #expect(rateLimited?.body.contains("too many uploads from this address") == true, "\(rateLimited?.body ?? "no 429")")
    }
}

/// A plain TCP client socket to nginx on 127.0.0.1, bound to a chosen loopback source address, speaking
/// HTTP/1.1 by hand so that it can stop anywhere in a request.
private final class RawConnection {
    private var fd: Int32

    init(port: Int, from source: String, timeout seconds: Int = 5) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StackError("socket failed (errno \(errno))") }
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = UInt16(port).bigEndian
        remote.sin_addr.s_addr = inet_addr("127.0.0.1")
        let size = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, size) } }
        guard bound == 0 else { close(); throw StackError("cannot bind to \(source) (errno \(errno))") }
        let connected = withUnsafePointer(to: &remote) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, size) } }
        guard connected == 0 else { close(); throw StackError("connect from \(source) failed (errno \(errno))") }
    }

    deinit { close() }

    func close() {
        if fd >= 0 { _ = Glibc.close(fd) }
        fd = -1
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw StackError("send failed (errno \(errno))") }
            sent += n
        }
    }

    /// Reads up to the end of a response head ("\r\n\r\n"); throws past the socket's deadline.
    func readHead() throws -> String {
        var data: [UInt8] = []
        var byte: UInt8 = 0
        while !data.ends(with: [13, 10, 13, 10]) {
            guard recv(fd, &byte, 1, 0) == 1 else { throw StackError("no response head (errno \(errno)): \(String(decoding: data, as: UTF8.self))") }
            data.append(byte)
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Reads until nginx closes the connection; throws past the socket's deadline.
    func readToEnd() throws -> String {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { break }
            guard n > 0 else { throw StackError("no complete response (errno \(errno)): \(String(decoding: data, as: UTF8.self))") }
            data += buffer[..<n]
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Whether nginx has closed this connection (end of stream or reset), without waiting.
    func closedByPeer() -> Bool {
        guard fd >= 0 else { return true }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 { continue }  // something nginx sent (e.g. an error page before closing): read past it
            if n == 0 { return true }
            return !(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        }
    }

    struct Response {
        var head: String
        var body: String
        var status: Int { head.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0 }
        func header(_ name: String) -> String? {
            head.split(separator: "\r\n").dropFirst().compactMap { line -> String? in
                guard let colon = line.firstIndex(of: ":"), line[..<colon].lowercased() == name.lowercased() else { return nil }
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }.first
        }
    }

    /// One whole GET from `source` on a connection of its own, answered within the socket's deadline.
    static func get(_ path: String, port: Int, from source: String) throws -> Response {
        try request("GET", path, port: port, from: source)
    }

    /// One whole bodyless request from `source` on a connection of its own, answered within the socket's deadline.
    static func request(_ method: String, _ path: String, port: Int, from source: String) throws -> Response {
        let c = try RawConnection(port: port, from: source)
        defer { c.close() }
        let length = method == "GET" ? "" : "Content-Length: 0\r\n"
        try c.send("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\(length)Connection: close\r\n\r\n")
        let text = try c.readToEnd()
        guard let split = text.range(of: "\r\n\r\n") else { throw StackError("no response head from \(path): \(text)") }
        return Response(head: String(text[..<split.lowerBound]), body: String(text[split.upperBound...]))
    }
}

private extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }
}
