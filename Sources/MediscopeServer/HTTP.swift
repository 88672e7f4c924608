import Foundation

/// One HTTP request as nginx handed it over FastCGI.
package struct HTTPRequest: Sendable {
    package var method: String
    /// Decoded path without the query string.
    package var path: String
    /// Decoded query parameters; a name given twice keeps its first value, and a value whose bytes are
    /// not UTF-8 stays percent-encoded. Where that matters (patient data), use `queryValues(_:)`.
    package var query: [String: String]
    /// The query string as received (still percent-encoded).
    package var queryString: String = ""
    /// Lowercased header names.
    package var headers: [String: String]
    package var body: [UInt8]
    package var remoteAddress: String
    package var isTLS: Bool
    /// This site's own origin (scheme://host[:port]) as nginx received the request, for Origin checks.
    package var ownOrigin: String?
    /// When nginx handed the request to the pool (Unix seconds, from its `$msec`), if it said.
    package var queuedAt: Double?

    package init(method: String, path: String, query: [String: String] = [:], headers: [String: String] = [:],
                body: [UInt8] = [], remoteAddress: String = "127.0.0.1", isTLS: Bool = false) {
        self.method = method; self.path = path; self.query = query; self.headers = headers
        self.body = body; self.remoteAddress = remoteAddress; self.isTLS = isTLS
        ownOrigin = headers["host"].map { (isTLS ? "https://" : "http://") + $0 }
    }

    package func header(_ name: String) -> String? { headers[name.lowercased()] }

    package var isLoopback: Bool {
        remoteAddress == "127.0.0.1" || remoteAddress == "::1" || remoteAddress.hasPrefix("127.")
    }

    /// Every value of the query parameter `name`, percent-decoded to bytes ('+' is a space), in order.
    /// Bytes, not text: the caller decides what invalid UTF-8 or a repeated parameter means.
    package func queryValues(_ name: String) -> [[UInt8]] {
        queryString.split(separator: "&", omittingEmptySubsequences: true).compactMap { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard Self.percentDecodedBytes(parts[0]) == Array(name.utf8) else { return nil }
            return parts.count > 1 ? Self.percentDecodedBytes(parts[1]) : []
        }
    }

    /// `a%20b+c` -> the bytes of "a b c"; a `%` not followed by two hex digits stays as it is.
    static func percentDecodedBytes(_ text: Substring) -> [UInt8] {
        let utf8 = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        var i = 0
        while i < utf8.count {
            if utf8[i] == UInt8(ascii: "%"), i + 2 < utf8.count,
               let byte = UInt8(String(decoding: utf8[i + 1...i + 2], as: UTF8.self), radix: 16) {
                out.append(byte)
                i += 3
            } else {
                out.append(utf8[i] == UInt8(ascii: "+") ? 0x20 : utf8[i])
                i += 1
            }
        }
        return out
    }

    /// Parses `a=1&b=two%20words` (form encoding: '+' is a space).
    package static func parseQuery(_ string: String) -> [String: String] {
        var result: [String: String] = [:]
        for pair in string.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String {
                String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s)
            }
            let key = decode(parts[0])
            if result[key] == nil { result[key] = parts.count > 1 ? decode(parts[1]) : "" }
        }
        return result
    }
}

package struct HTTPResponse: Sendable {
    package var status: Int
    package var headers: [(String, String)]
    package var body: [UInt8]
    /// The id of what the request created, for the application's audit entry; never sent.
    package var createdID: String?

    package init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status; self.headers = headers; self.body = body
    }

    /// A 201 with `value` for the new resource `id` at `location` (the Location header): its id stays
    /// typed for whoever audits the request, rather than being parsed back out of the header.
    package static func created<T: Encodable>(_ value: T, id: String, location: String, headers: [(String, String)] = []) -> HTTPResponse {
        var response = json(value, status: 201, headers: [("Location", location)] + headers)
        response.createdID = id
        return response
    }

    package static func json<T: Encodable>(_ value: T, status: Int = 200, headers: [(String, String)] = []) -> HTTPResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        do {
            let data = try encoder.encode(value)
            return HTTPResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: Array(data))
        } catch {
            return Problem(status: 500, detail: "response could not be encoded").response
        }
    }

    package static func text(_ text: String, status: Int = 200, contentType: String = "text/plain; charset=utf-8") -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", contentType)], body: Array(text.utf8))
    }

    package static func html(_ html: String, status: Int = 200, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "text/html; charset=utf-8")] + headers, body: Array(html.utf8))
    }

    package static let noContent = HTTPResponse(status: 204)

    package func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// This response as sent to `request`. A 200 to a GET or HEAD gets a strong ETag of its body
    /// (`etag(of:)`) unless it has one or nginx sends the body (X-Accel-Redirect: nginx's file has its
    /// own); when the request's If-None-Match names that tag, it becomes a 304 without a body. A HEAD
    /// gets exactly the headers the GET would, Content-Length included, and no body.
    package func answering(_ request: HTTPRequest) -> HTTPResponse {
        let method = request.method
        guard method == "GET" || method == "HEAD" else { return self }
        var response = self
        if status == 200, header("X-Accel-Redirect") == nil, header("ETag") == nil {
            response.headers.append(("ETag", Self.etag(of: body)))
        }
        if status == 200, let tag = response.header("ETag"), let condition = request.header("if-none-match"),
           Self.matches(condition, tag) {
            // RFC 9110 15.4.5: the validators and caching headers the 200 would have had, no content.
            let kept: Set = ["etag", "cache-control", "vary", "expires", "content-location", "date"]
            response = HTTPResponse(status: 304, headers: response.headers.filter { kept.contains($0.0.lowercased()) })
            return response
        }
        if method == "HEAD" {
            // 204 and 304 have no content, so no length to state (RFC 9110 8.6).
            if response.header("Content-Length") == nil, response.header("X-Accel-Redirect") == nil,
               response.status != 204, response.status != 304 {
                response.headers.append(("Content-Length", String(response.body.count)))
            }
            response.body = []
        }
        return response
    }

    /// A strong entity tag for `body`: its 64-bit FNV-1a hash and its length, in hex. Tells versions of
    /// one resource apart (a change of any byte or of the length changes it); not a secret, not a MAC.
    package static func etag(of body: [UInt8]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in body {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        let hex = String(hash, radix: 16)
        return "\"" + String(repeating: "0", count: 16 - hex.count) + hex + "-" + String(body.count, radix: 16) + "\""
    }

    /// If-None-Match (RFC 9110 13.1.2): `*`, or a list naming `tag`, compared weakly (a `W/` prefix, as
    /// nginx puts on a tag when it compresses the body, does not matter).
    static func matches(_ condition: String, _ tag: String) -> Bool {
        func opaque(_ t: Substring) -> Substring {
            let t = t.trimmingCharacters(in: .whitespaces)
            return Substring(t.hasPrefix("W/") ? String(t.dropFirst(2)) : t)
        }
        if condition.trimmingCharacters(in: .whitespaces) == "*" { return true }
        return condition.split(separator: ",").contains { opaque($0) == opaque(Substring(tag)) }
    }
}

/// RFC 9457 problem details: every error the API returns.
package struct Problem: Error, Sendable, Encodable {
    package var type: String = "about:blank"
    package var title: String
    package var status: Int
    package var detail: String
    package var retryAfter: Int?

    enum CodingKeys: String, CodingKey { case type, title, status, detail }

    package init(status: Int, title: String? = nil, detail: String, retryAfter: Int? = nil) {
        self.status = status
        self.title = title ?? HTTPStatus.reason(status)
        self.detail = detail
        self.retryAfter = retryAfter
    }

    package var response: HTTPResponse {
        var r = HTTPResponse.json(self, status: status)
        r.headers[0] = ("Content-Type", "application/problem+json")
        if let retryAfter { r.headers.append(("Retry-After", String(retryAfter))) }
        return r
    }

    package static func badRequest(_ detail: String) -> Problem { Problem(status: 400, detail: detail) }
    package static func notFound(_ detail: String = "no such resource") -> Problem { Problem(status: 404, detail: detail) }
}

package enum HTTPStatus {
    package static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 201: "Created"
        case 204: "No Content"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 409: "Conflict"
        case 411: "Length Required"
        case 413: "Content Too Large"
        case 415: "Unsupported Media Type"
        case 422: "Unprocessable Content"
        case 429: "Too Many Requests"
        case 500: "Internal Server Error"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: "Status \(status)"
        }
    }
}
