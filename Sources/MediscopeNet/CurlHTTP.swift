import CCurl
import Foundation

/// A failed transfer (no HTTP response, or a response we refused). Never carries response bodies.
package struct CurlError: Error, Sendable, Equatable, CustomStringConvertible {
    /// One of the CCURL_ERR_* codes of `ccurl.h`.
    package var code: Int32
    package var message: String
    package var description: String { "HTTP fetch failed (\(code)): \(message)" }
    /// The response was larger than the request allowed.
    package var isTooLarge: Bool { code == Int32(CCURL_ERR_TOO_LARGE) }
}

/// One outgoing HTTP request.
package struct HTTPClientRequest: Sendable {
    package var method: String
    package var url: URL
    /// Header fields to send, e.g. `("Authorization", "Bearer …")`; names and values must hold no CR or LF.
    package var headers: [(String, String)]
    package var body: [UInt8]
    /// Whole-transfer timeout, seconds.
    package var timeout: Double
    /// Connect timeout, seconds (nil: the smaller of `timeout` and 5 s).
    package var connectTimeout: Double?
    /// Largest response body accepted, bytes; a larger one fails with `CurlError.isTooLarge`.
    package var maxResponseBytes: Int

    package init(method: String, url: URL, headers: [(String, String)] = [], body: [UInt8] = [], timeout: Double = 10,
                connectTimeout: Double? = nil, maxResponseBytes: Int = CurlHTTP.maxBodyBytes) {
        self.method = method; self.url = url; self.headers = headers; self.body = body; self.timeout = timeout
        self.connectTimeout = connectTimeout; self.maxResponseBytes = maxResponseBytes
    }
}

/// What came back: any status (the caller decides what a 4xx or 5xx means).
package struct HTTPClientResponse: Sendable {
    package var status: Int
    package var body: [UInt8]
    /// The `Cache-Control` header's value, if any.
    package var cacheControl: String?
    /// The `Retry-After` header's value, if any (seconds or an HTTP date, as sent).
    package var retryAfter: String?
}

/// Blocking HTTP(S) over libcurl (`Sources/CCurl`).
///
/// - Follows no redirects (a 3xx comes back as a status), only http/https.
/// - `CURLOPT_NOSIGNAL` is set, so it is safe in the forked single-threaded workers.
/// - TLS peer and host verification are on (system CA store).
package enum CurlHTTP {
    /// The default largest response body: 1 MiB (`CCURL_MAX_BODY`).
    package static let maxBodyBytes = Int(CCURL_MAX_BODY)

    /// Performs `request`; throws `CurlError` when no response was received or it was refused.
    package static func perform(_ request: HTTPClientRequest) throws(CurlError) -> HTTPClientResponse {
        func ms(_ seconds: Double) -> Int { seconds.isFinite && seconds > 0 ? max(1, Int(min(seconds, 3600) * 1000)) : 0 }
        let lines = request.headers.map { "\($0.0): \($0.1)" }
        guard !lines.contains(where: { $0.contains("\r") || $0.contains("\n") }) else {
            throw CurlError(code: Int32(CCURL_ERR_ARGS), message: "a header holds a line break")
        }
        var response = ccurl_response()
        var err = [CChar](repeating: 0, count: 512)
        let cLines = lines.map { strdup($0) }
        defer { cLines.forEach { free($0) } }
        let rc: Int32 = request.method.withCString { method in
            request.url.absoluteString.withCString { url in
                cLines.map { UnsafePointer($0) }.withUnsafeBufferPointer { headers in
                    request.body.withUnsafeBufferPointer { body in
                        err.withUnsafeMutableBufferPointer { buf in
                            var req = ccurl_request(
                                method: method, url: url, headers: headers.baseAddress, n_headers: headers.count,
                                body: body.baseAddress, body_len: body.count, timeout_ms: ms(request.timeout),
                                connect_timeout_ms: ms(request.connectTimeout ?? 0), max_body: max(1, request.maxResponseBytes))
                            return ccurl_perform(&req, &response, buf.baseAddress, buf.count)
                        }
                    }
                }
            }
        }
        defer { ccurl_response_free(&response) }
        guard rc == 0 else {
            let message = err.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw CurlError(code: rc, message: message.isEmpty ? "unknown error" : message)
        }
        var body: [UInt8] = []
        if let p = response.body, response.body_len > 0 {
            body = Array(UnsafeBufferPointer(start: p, count: response.body_len))
        }
        return HTTPClientResponse(status: Int(response.status), body: body,
                                  cacheControl: response.cache_control.map { String(cString: $0) },
                                  retryAfter: response.retry_after.map { String(cString: $0) })
    }

    /// GET with the defaults (1 MiB body limit).
    /// - Parameter timeout: whole-transfer timeout in seconds (connect timeout is at most 5 s).
    /// - Returns: the status code, the body and the `Cache-Control` header value (if any).
    package static func get(_ url: URL, timeout: Double) throws -> (status: Int, body: [UInt8], cacheControl: String?) {
        let r = try perform(HTTPClientRequest(method: "GET", url: url, timeout: timeout > 0 && timeout.isFinite ? timeout : 5))
        return (r.status, r.body, r.cacheControl)
    }
}
