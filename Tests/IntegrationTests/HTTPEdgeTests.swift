import Foundation
import Glibc
import Testing

/// Issue 21: HTTP edges a hospital's clients hit, through the real nginx and the real pools. HEAD and
/// `Expect: 100-continue` are spoken on a raw socket, byte for byte, so nothing in between adds or hides
/// a header or a "100 Continue".
@Suite(.serialized) final class HTTPEdgeTests {
    let stack: Stack
    let token: String

    init() async throws {
        stack = try await Stack.start()
        guard case .bearer(let token)? = stack.defaultAuth else { throw StackError("the stack has no clinician token") }
        self.token = token
    }
    deinit { stack.stop() }

    // MARK: HEAD

    /// HEAD answered `Content-Length: 0` and no ETag. It now gets the headers GET gets, the length of the
    /// body GET sends among them, and no body; the ETag answers If-None-Match with a 304.
    @Test func headAnswersWhatGetWouldWithoutTheBody() async throws {
        let upload = try await stack.upload(image: try Scans.jpeg)
        let id = try #require(upload.json?["id"] as? String, "\(upload.status) \(String(decoding: upload.body, as: UTF8.self))")
        // Once the draft is written the analysis no longer changes between a GET and a HEAD.
        #expect(try await eventually(timeout: 60, every: .milliseconds(100)) {
            try await stack.request("GET", "/api/analyses/\(id)/report").json?["status"] as? String == "draft"
        })
        for path in ["/api/analyses/\(id)", "/api/analyses/\(id)/report", "/api/models", "/api/health", "/api/me"] {
            let get = try RawHTTP.exchange(port: stack.port, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\nConnection: close\r\n\r\n")
            let head = try RawHTTP.exchange(port: stack.port, "HEAD \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\nConnection: close\r\n\r\n")
            #expect(get.status == 200 && head.status == 200, "\(path): GET \(get.status), HEAD \(head.status)")
            #expect(get.headers["content-length"] == String(get.body.count), "\(path): GET says its length")
            #expect(head.headers["content-length"] == get.headers["content-length"], "\(path): HEAD \(head.headers["content-length"] ?? "none"), GET \(get.body.count)")
            #expect(head.body.isEmpty, "\(path): a HEAD has no body")
            let etag = try #require(get.headers["etag"], "\(path): GET has an ETag")
            #expect(head.headers["etag"] == etag, "\(path)")
            #expect(head.headers["content-type"] == get.headers["content-type"] && head.headers["cache-control"] == get.headers["cache-control"])
            // A client that has this version asks with If-None-Match and gets a 304 without the body.
            let again = try RawHTTP.exchange(port: stack.port, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\n"
                                             + "If-None-Match: \(etag)\r\nConnection: close\r\n\r\n")
            #expect(again.status == 304 && again.body.isEmpty && again.headers["etag"] == etag, "\(path): \(again.status)")
        }
        // A HEAD that fails says so as the GET would, without the body.
        let missing = try RawHTTP.exchange(port: stack.port, "HEAD /api/analyses/01JNOSUCHANALYSIS000000000 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                           + "Authorization: Bearer \(token)\r\nConnection: close\r\n\r\n")
        #expect(missing.status == 404 && missing.body.isEmpty && Int(missing.headers["content-length"] ?? "0") ?? 0 > 0)
    }

    // MARK: Expect: 100-continue

    /// The head of an upload of `length` bytes that asks before sending them.
    func uploadHead(_ authorization: String?, length: Int, boundary: String = "edge") -> String {
        "POST /api/analyses HTTP/1.1\r\nHost: 127.0.0.1:\(stack.port)\r\n" + (authorization.map { "Authorization: \($0)\r\n" } ?? "")
            + "Content-Type: multipart/form-data; boundary=\(boundary)\r\nContent-Length: \(length)\r\nExpect: 100-continue\r\n\r\n"
    }

    /// An upload with a bad or missing token got "100 Continue", sent its whole body, then the 401. Now the
    /// caller is checked first: the answer to the head is the 401 (or 403) itself, and no byte of the body
    /// is asked for.
    @Test(arguments: [("Bearer msk_not_a_token_at_all", 401), ("Bearer not-a-jwt", 401), (nil, 401)])
    func anUploadWithABadOrMissingTokenIsRefusedBeforeItsBody(_ authorization: String?, _ status: Int) throws {
        let connection = try RawHTTP(port: stack.port)
        try connection.send(Array(uploadHead(authorization, length: 20_000_000).utf8))
        let answer = try connection.readHead(timeout: 30)
        #expect(answer.status == status, "the answer to the head: \(answer.statusLine)")
        #expect(answer.statusLine.contains("100") == false)
        #expect(answer.headers["content-type"]?.contains("application/problem+json") == true)
    }

    @Test func anAdminsUploadIsRefusedBeforeItsBody() async throws {
        let admin = try stack.token(forNewUser: "edgeadmin", role: "admin")
        let connection = try RawHTTP(port: stack.port)
        try connection.send(Array(uploadHead("Bearer \(admin)", length: 20_000_000).utf8))
        let answer = try connection.readHead(timeout: 30)
        #expect(answer.status == 403, "\(answer.statusLine)")
    }

    /// A clinician's upload that asks first is told to go on, and is analysed.
    @Test func aClinicianUploadThatAsksFirstIsContinuedAndStored() throws {
        let (body, contentType) = Multipart.body(fields: ["patient_id": "P-EDGE-1"], files: [("image", "scan.jpg", try Scans.jpeg)],
                                                 boundary: "edgeboundary")
        #expect(contentType.hasSuffix("boundary=edgeboundary"))
        let connection = try RawHTTP(port: stack.port)
        try connection.send(Array(uploadHead("Bearer \(token)", length: body.count, boundary: "edgeboundary").utf8))
        let interim = try connection.readHead(timeout: 30)
        #expect(interim.status == 100, "\(interim.statusLine)")
        try connection.send([UInt8](body))
        let final = try connection.readHead(timeout: 120)
        #expect(final.status == 201, "\(final.statusLine)")
        // The list (a GET of the same location) is not held by the check.
        #expect(try stack.syncRequest("GET", "/api/analyses?limit=1").status == 200)
    }

    // MARK: Duplicate JSON keys

    /// `{"text": "FIRST", ..., "text": "SECOND"}` was accepted and one of the two signed. Every JSON route now
    /// answers a key given twice with a 400, and nothing changes.
    @Test func aJSONKeyGivenTwiceIsRefusedOnEveryJSONRoute() async throws {
        let id = try #require(try await stack.upload(image: try Scans.jpeg).json?["id"] as? String)
        let path = "/api/analyses/\(id)/report"
        #expect(try await eventually(timeout: 60, every: .milliseconds(100)) {
            try await stack.request("GET", path).json?["status"] as? String == "draft"
        })
        func json(_ method: String, _ path: String, _ body: String, auth: Stack.Auth? = nil) async throws -> Stack.Response {
            try await stack.request(method, path, body: Data(body.utf8), contentType: "application/json", auth: auth)
        }
        for (method, route) in [("PUT", path), ("POST", path + "/sign")] {
            let r = try await json(method, route, #"{"text": "FIRST", "baseVersion": 1, "text": "SECOND"}"#)
            #expect(r.status == 400 && r.header("Content-Type")?.contains("problem+json") == true, "\(method) \(route): \(r.status)")
            #expect(String(decoding: r.body, as: UTF8.self).contains("more than once"))
            // The same key escaped is the same key.
            #expect(try await json(method, route, #"{"text": "FIRST", "baseVersion": 1, "\u0074ext": "SECOND"}"#).status == 400)
        }
        let report = try #require(try await stack.request("GET", path).json)
        #expect(report["status"] as? String == "draft" && report["version"] as? Int == 1, "nothing was stored: \(report)")

        try stack.addUser("dupadmin", role: "admin")
        let session = try stack.syncSignIn("dupadmin")
        let signIn = try await json("POST", "/api/session", #"{"username": "dupadmin", "password": "wrong", "password": "\#(Stack.password)"}"#,
                                    auth: Stack.Auth.none)
        #expect(signIn.status == 400 && signIn.header("Set-Cookie") == nil, "sign-in: \(signIn.status)")
        #expect(try await json("POST", "/api/tokens", #"{"name": "a", "name": "b"}"#, auth: session).status == 400)
        let user = try await json("POST", "/api/users",
                                  #"{"username": "dupuser", "password": "\#(Stack.password)", "role": "clinician", "role": "admin"}"#, auth: session)
        #expect(user.status == 400, "user creation: \(user.status)")
        let users = try await stack.request("GET", "/api/users", auth: session)
        #expect(!String(decoding: users.body, as: UTF8.self).contains("dupuser"), "no user was made")
    }
}

/// HTTP/1.1 over a plain socket: what was sent is what nginx got, what it answered is what we read.
final class RawHTTP {
    struct Answer {
        var statusLine: String
        var status: Int
        /// Lowercased names.
        var headers: [String: String]
        var body: [UInt8]
    }

    let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StackError("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { close(fd); throw StackError("connect to 127.0.0.1:\(port) failed") }
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw StackError("send failed after \(sent) bytes") }
            sent += n
        }
    }

    /// Reads more into the buffer, waiting until `deadline`; false at the end of the stream or the deadline.
    private func fill(until deadline: Date) -> Bool {
        let left = deadline.timeIntervalSinceNow
        guard left > 0 else { return false }
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(min(left, 3600) * 1000)) > 0 else { return false }
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return false }
        buffer += chunk[0..<n]
        return true
    }

    /// The next response's status line and headers (an interim "100 Continue" is a response of its own).
    func readHead(timeout: Double) throws -> Answer {
        let deadline = Date().addingTimeInterval(timeout)
        let end: [UInt8] = Array("\r\n\r\n".utf8)
        while true {
            if let range = buffer.firstRange(of: end) {
                let head = String(decoding: buffer[..<range.lowerBound], as: UTF8.self)
                buffer.removeSubrange(..<range.upperBound)
                return Self.parse(head)
            }
            guard fill(until: deadline) else {
                throw StackError("no complete response head within \(timeout) s; got \(String(decoding: buffer.prefix(200), as: UTF8.self))")
            }
        }
    }

    /// Reads to the end of the stream (the request said `Connection: close`).
    func readToEnd(timeout: Double) -> [UInt8] {
        let deadline = Date().addingTimeInterval(timeout)
        while fill(until: deadline) {}
        defer { buffer = [] }
        return buffer
    }

    static func parse(_ head: String) -> Answer {
        let lines = head.components(separatedBy: "\r\n")
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let status = Int(lines.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        return Answer(statusLine: lines.first ?? "", status: status, headers: headers, body: [])
    }

    /// Sends `request` (which says `Connection: close`) on a new connection; the whole answer.
    static func exchange(port: Int, _ request: String, timeout: Double = 60) throws -> Answer {
        let connection = try RawHTTP(port: port)
        try connection.send(Array(request.utf8))
        var answer = try connection.readHead(timeout: timeout)
        answer.body = connection.readToEnd(timeout: timeout)
        return answer
    }
}
