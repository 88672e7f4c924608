import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A local HTTP/1.1 server on 127.0.0.1 standing in for a Google endpoint that cannot be reached from
/// here (the OAuth token endpoint, the metadata server, a Firestore that fails on cue). Each request
/// gets the answer `respond` gives it; every request is recorded. One connection at a time,
/// `Connection: close`.
package final class ScriptedHTTPServer: @unchecked Sendable {
    package struct Request: Sendable {
        package var method: String
        package var path: String
        /// Lowercased names.
        package var headers: [String: String]
        package var body: [UInt8]
    }
    package struct Response: Sendable {
        package var status: Int
        package var headers: [(String, String)]
        package var body: [UInt8]
        /// Close the connection without answering (a response lost on the way back).
        package var cut = false
        package init(status: Int = 200, headers: [(String, String)] = [("Content-Type", "application/json")], body: [UInt8] = []) {
            self.status = status; self.headers = headers; self.body = body
        }
        package static func json(_ status: Int, _ text: String) -> Response { Response(status: status, body: Array(text.utf8)) }
        /// No answer: the connection is closed after the request was read.
        package static var cutConnection: Response { var r = Response(status: 0); r.cut = true; return r }
    }

    package let port: UInt16
    package var baseURL: URL { URL(string: "http://127.0.0.1:\(port)/")! }
    private let fd: Int32
    private let lock = NSLock()
    private var recorded: [Request] = []
    private var stopped = false
    private let done = DispatchSemaphore(value: 0)
    private let respond: @Sendable (Request, Int) -> Response

    /// `respond(request, index)`: index counts requests from 0. `port` 0 takes a free one.
    package init(port wanted: UInt16 = 0, respond: @escaping @Sendable (Request, Int) -> Response) throws {
        self.respond = respond
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = wanted.bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(fd, sa, len) == 0 && listen(fd, 16) == 0 && getsockname(fd, sa, &len) == 0
            }
        }
        guard ok else { close(fd); throw POSIXError(.EADDRNOTAVAIL) }
        self.fd = fd
        port = UInt16(bigEndian: addr.sin_port)
        Thread { [self] in serve() }.start()
    }

    deinit { stop() }

    package var requests: [Request] { lock.withLock { recorded } }

    package func stop() {
        let first = lock.withLock { () -> Bool in defer { stopped = true }; return !stopped }
        if first { done.wait() }
    }

    private func serve() {
        defer { close(fd); done.signal() }
        while !lock.withLock({ stopped }) {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 50) > 0 else { continue }
            let client = accept(fd, nil, nil)
            guard client >= 0 else { continue }
            handle(client)
            close(client)
        }
    }

    private func handle(_ client: Int32) {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        var headerEnd: Int?
        var contentLength = 0
        while true {
            if let end = headerEnd, data.count >= end + contentLength { break }
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return }
            data.append(contentsOf: buffer[0..<n])
            if headerEnd == nil, let r = data.firstRange(of: Array("\r\n\r\n".utf8)) {
                headerEnd = r.upperBound
                let head = String(decoding: data[..<r.lowerBound], as: UTF8.self)
                for line in head.split(separator: "\r\n").dropFirst() where line.lowercased().hasPrefix("content-length:") {
                    contentLength = Int(line.dropFirst(15).trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
        }
        guard let end = headerEnd else { return }
        let lines = String(decoding: data[..<(end - 4)], as: UTF8.self).split(separator: "\r\n")
        let first = lines.first?.split(separator: " ") ?? []
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let request = Request(method: first.first.map(String.init) ?? "", path: first.dropFirst().first.map(String.init) ?? "",
                              headers: headers, body: Array(data[end..<min(data.count, end + contentLength)]))
        let index = lock.withLock { () -> Int in recorded.append(request); return recorded.count - 1 }
        let response = respond(request, index)
        if response.cut { return }
        var head = "HTTP/1.1 \(response.status) Scripted\r\nContent-Length: \(response.body.count)\r\nConnection: close\r\n"
        for (name, value) in response.headers { head += "\(name): \(value)\r\n" }
        let out = Array((head + "\r\n").utf8) + response.body
        var sent = 0
        while sent < out.count {
            let n = out.withUnsafeBytes { send(client, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return }
            sent += n
        }
    }
}
