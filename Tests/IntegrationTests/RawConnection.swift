import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A plain TCP client socket to nginx on 127.0.0.1, bound to a chosen loopback source address, speaking
/// HTTP/1.1 by hand so that it can stop anywhere in a request.
final class RawConnection {
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

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) throws {
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
