import CFastCGI
import Foundation

/// One connection from the web server and its libfcgi request object (FCGX re-entrant API).
///
/// The worker accepts connections itself (to check the peer against the pool's allowed clients) and
/// hands each to libfcgi, which reads requests from it. The request object has no listening socket, so
/// libfcgi can never accept on its own behind our check. When the web server asks to keep the
/// connection (FCGI_KEEP_CONN, nginx's `fastcgi_keep_conn on`), it stays open after `finish` and the
/// worker waits for the next request on it.
final class FastCGIConnection {
    private let request: UnsafeMutablePointer<FCGX_Request>

    /// Takes ownership of the accepted connection `fd`.
    init(connectionFD fd: Int32) {
        request = .allocate(capacity: 1)
        FCGX_InitRequest(request, -1, 0)
        request.pointee.ipcFd = fd
        // FCGX_Accept_r first finishes the previous request and closes the connection unless it is to be
        // kept; there is none yet, so keep it. The BEGIN_REQUEST record then sets the web server's wish.
        request.pointee.keepConnection = 1
    }

    deinit {
        FCGX_Free(request, 1)
        request.deallocate()
    }

    /// Reads the next request's parameters from the connection. false when the web server closed it or
    /// sent something that is not FastCGI (libfcgi has closed it then).
    func accept() -> Bool { FCGX_Accept_r(request) == 0 }

    /// Ends the request; the connection stays open only when the web server asked to keep it.
    func finish() { FCGX_Finish_r(request) }

    /// The connection's descriptor while it is open, else -1.
    var descriptor: Int32 { request.pointee.ipcFd }

    /// Closes the connection now (a kept one the worker gives up).
    func close() { FCGX_Free(request, 1) }

    /// All FastCGI params (CGI environment) of the current request.
    func parameters() -> [String: String] {
        var params: [String: String] = [:]
        guard var cursor = request.pointee.envp else { return params }
        while let entry = cursor.pointee {
            let pair = String(cString: entry)
            if let eq = pair.firstIndex(of: "=") {
                params[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
            }
            cursor += 1
        }
        return params
    }

    /// Reads exactly `count` body bytes; fewer means the client went away.
    func readBody(count: Int) -> [UInt8] {
        guard count > 0 else { return [] }
        var body = [UInt8](repeating: 0, count: count)
        var filled = 0
        body.withUnsafeMutableBufferPointer { buffer in
            while filled < count {
                let chunk = Int32(min(count - filled, 1 << 20))
                let n = buffer.baseAddress!.advanced(by: filled).withMemoryRebound(to: CChar.self, capacity: Int(chunk)) {
                    FCGX_GetStr($0, chunk, request.pointee.in)
                }
                if n <= 0 { break }
                filled += Int(n)
            }
        }
        return filled == count ? body : Array(body.prefix(filled))
    }

    /// Writes status line, headers and body. false if the client is gone.
    @discardableResult
    func write(_ response: HTTPResponse) -> Bool {
        var head = "Status: \(response.status) \(HTTPStatus.reason(response.status))\r\n"
        var hasLength = false
        for (name, value) in response.headers {
            // Header injection guard: values come from our code, but never let a newline through.
            let clean = value.replacingOccurrences(of: "\r", with: "").replacingOccurrences(of: "\n", with: "")
            head += "\(name): \(clean)\r\n"
            if name.lowercased() == "content-length" { hasLength = true }
        }
        if !hasLength && response.header("X-Accel-Redirect") == nil { head += "Content-Length: \(response.body.count)\r\n" }
        head += "\r\n"
        let out = request.pointee.out
        var ok = head.withCString { FCGX_PutStr($0, Int32(strlen($0)), out) } >= 0
        if ok && !response.body.isEmpty {
            ok = response.body.withUnsafeBufferPointer { buffer in
                buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                    FCGX_PutStr($0, Int32(buffer.count), out)
                }
            } >= 0
        }
        return ok && FCGX_FFlush(out) >= 0
    }
}

/// Turns FastCGI params into an HTTPRequest (headers arrive as HTTP_* params).
func makeRequest(params: [String: String], body: [UInt8]) -> HTTPRequest {
    var headers: [String: String] = [:]
    for (key, value) in params where key.hasPrefix("HTTP_") {
        headers[key.dropFirst(5).lowercased().replacingOccurrences(of: "_", with: "-")] = value
    }
    if let type = params["CONTENT_TYPE"], !type.isEmpty { headers["content-type"] = type }
    if let length = params["CONTENT_LENGTH"], !length.isEmpty { headers["content-length"] = length }
    let uri = params["DOCUMENT_URI"] ?? params["REQUEST_URI"].map { String($0.split(separator: "?", maxSplits: 1).first ?? "") } ?? "/"
    var request = HTTPRequest(
        method: params["REQUEST_METHOD"] ?? "GET",
        path: uri.isEmpty ? "/" : uri,
        query: HTTPRequest.parseQuery(params["QUERY_STRING"] ?? ""),
        headers: headers,
        body: body,
        remoteAddress: params["REMOTE_ADDR"] ?? "",
        isTLS: (params["HTTPS"] ?? "").lowercased() == "on")
    request.queryString = params["QUERY_STRING"] ?? ""
    request.queuedAt = params["MEDISCOPE_QUEUED_AT"].flatMap(Double.init)
    // Debian's fastcgi_params send HTTP_HOST as $host, without the port: rebuild the origin from SERVER_PORT.
    if let host = headers["host"], !host.isEmpty {
        let scheme = request.isTLS ? "https" : "http"
        let port = params["SERVER_PORT"] ?? ""
        let defaultPort = request.isTLS ? "443" : "80"
        let hostHasPort = host.hasPrefix("[") ? host.contains("]:") : host.contains(":")
        request.ownOrigin = "\(scheme)://\(host)" + (port.isEmpty || port == defaultPort || hostHasPort ? "" : ":\(port)")
    }
    return request
}
