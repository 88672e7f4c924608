import CCurl
import Foundation

/// A failed transfer (no HTTP response, or a response we refused). Never carries response bodies.
public struct CurlError: Error, Sendable, Equatable, CustomStringConvertible {
    /// One of the CCURL_ERR_* codes of `ccurl.h`.
    public var code: Int32
    public var message: String
    public var description: String { "HTTP fetch failed (\(code)): \(message)" }
}

/// Blocking HTTP(S) GET over libcurl (`Sources/CCurl`).
///
/// - Follows no redirects (a 3xx comes back as a status), only http/https.
/// - Bodies larger than 1 MiB (`CCURL_MAX_BODY`) fail with `CurlError`.
/// - `CURLOPT_NOSIGNAL` is set, so it is safe in the forked single-threaded workers.
/// - TLS peer and host verification are on (system CA store).
public enum CurlHTTP {
    public static let maxBodyBytes = Int(CCURL_MAX_BODY)

    /// - Parameter timeout: whole-transfer timeout in seconds (connect timeout is at most 5 s).
    /// - Returns: the status code, the body and the `Cache-Control` header value (if any).
    public static func get(_ url: URL, timeout: Double) throws -> (status: Int, body: [UInt8], cacheControl: String?) {
        let ms: Int
        if timeout.isFinite, timeout > 0 { ms = max(1, Int(min(timeout, 3600) * 1000)) } else { ms = 5000 }
        var response = ccurl_response()
        var err = [CChar](repeating: 0, count: 512)
        let rc = url.absoluteString.withCString { cURL in
            err.withUnsafeMutableBufferPointer { buf in
                ccurl_get(cURL, ms, &response, buf.baseAddress, buf.count)
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
        let cacheControl = response.cache_control.map { String(cString: $0) }
        return (Int(response.status), body, cacheControl)
    }
}
