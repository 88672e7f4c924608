import Glibc
import MediscopeServer

/// A parsed multipart/form-data body: text fields and file parts by name.
struct MultipartForm {
    struct Part {
        var name: String
        var filename: String?
        var contentType: String?
        var body: [UInt8]
    }
    var parts: [Part] = []

    func first(_ name: String) -> Part? { parts.first { $0.name == name } }
    func text(_ name: String) -> String? { first(name).map { String(decoding: $0.body, as: UTF8.self) } }

    /// Every malformation is a 400, never a crash.
    static func parse(contentType: String?, body: [UInt8], maxParts: Int = 32) throws(Problem) -> MultipartForm {
        guard let contentType, !contentType.isEmpty else {
            throw Problem(status: 415, detail: "expected multipart/form-data with an `image` field; no Content-Type was sent")
        }
        let (mediaType, params) = parseHeaderValue(contentType)
        guard mediaType == "multipart/form-data" else {
            throw Problem(status: 415, detail: "expected multipart/form-data with an `image` field, got \(mediaType.prefix(60))")
        }
        guard let boundary = params["boundary"], !boundary.isEmpty, boundary.count <= 200 else {
            throw Problem.badRequest("multipart/form-data needs a boundary parameter (1 to 70 characters)")
        }
        guard !body.isEmpty else { throw Problem.badRequest("the request body is empty") }

        return try parseParts(body, boundary: Array(boundary.utf8), maxParts: maxParts)
    }

    // Our own parser: vapor/multipart-kit 4.7.1 traps (index out of range) on a header-name byte >= 0x80,
    // which a fuzz test found; a crafted upload must never kill a worker.
    private static func parseParts(_ body: [UInt8], boundary: [UInt8], maxParts: Int) throws(Problem) -> MultipartForm {
        let dashBoundary = Array("--".utf8) + boundary
        let delimiter = Array("\r\n".utf8) + dashBoundary
        var form = MultipartForm()
        // The first boundary may open the body or follow a preamble.
        var cursor: Int
        if body.starts(with: dashBoundary) {
            cursor = dashBoundary.count
        } else if let found = find(delimiter, in: body, from: 0) {
            cursor = found + delimiter.count
        } else {
            throw Problem.badRequest("the multipart body has no boundary line")
        }
        while true {
            // After a boundary: "--" closes the body, CRLF opens a part (trailing spaces are allowed).
            if body.count >= cursor + 2, body[cursor] == 0x2D, body[cursor + 1] == 0x2D { break }
            while cursor < body.count, body[cursor] == 0x20 || body[cursor] == 0x09 { cursor += 1 }
            guard body.count >= cursor + 2, body[cursor] == 0x0D, body[cursor + 1] == 0x0A else {
                throw Problem.badRequest("the multipart body is incomplete (no closing boundary)")
            }
            cursor += 2
            // headerEnd: where the CRLFCRLF closing the header block starts (a part may have no headers).
            let headerEnd: Int
            if body[cursor...].starts(with: [0x0D, 0x0A]) {
                headerEnd = cursor - 2
            } else if let end = find(Array("\r\n\r\n".utf8), in: body, from: cursor, limit: 16 << 10) {
                headerEnd = end
            } else {
                throw Problem.badRequest("a multipart part has no end of headers")
            }
            var part = Part(name: "", filename: nil, contentType: nil, body: [])
            if headerEnd > cursor {
                for line in body[cursor..<headerEnd].split(separator: 0x0A) {
                    let text = String(decoding: line.last == 0x0D ? line.dropLast() : line, as: UTF8.self)
                    guard let colon = text.firstIndex(of: ":"), colon > text.startIndex else {
                        throw Problem.badRequest("a multipart part has a malformed header line")
                    }
                    let name = text[..<colon].lowercased()
                    guard name.utf8.allSatisfy(isTokenByte) else {
                        throw Problem.badRequest("a multipart part has a header name that is not a token")
                    }
                    let value = text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                    if name == "content-disposition" {
                        let (kind, p) = parseHeaderValue(value)
                        guard kind == "form-data" else { throw Problem.badRequest("a multipart part is not form-data") }
                        part.name = p["name"] ?? ""
                        part.filename = p["filename"]
                    } else if name == "content-type" {
                        part.contentType = value
                    }
                }
            }
            let bodyStart = headerEnd + 4
            guard let next = find(delimiter, in: body, from: bodyStart) else {
                throw Problem.badRequest("the multipart body is incomplete (no closing boundary)")
            }
            part.body = Array(body[bodyStart..<next])
            guard form.parts.count < maxParts else { throw Problem.badRequest("too many parts (at most \(maxParts))") }
            form.parts.append(part)
            cursor = next + delimiter.count
        }
        guard !form.parts.isEmpty else { throw Problem.badRequest("the multipart body has no parts") }
        return form
    }

    /// RFC 9110 tchar.
    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        default: return Array("!#$%&'*+-.^_`|~".utf8).contains(b)
        }
    }

    /// First index of `needle` in `haystack` at or after `from` (within `limit` bytes when given).
    static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int, limit: Int? = nil) -> Int? {
        guard from >= 0, from <= haystack.count, !needle.isEmpty else { return nil }
        let end = limit.map { min(haystack.count, from + $0) } ?? haystack.count
        guard end - from >= needle.count else { return nil }
        // memchr finds candidates for the first byte at C speed; memcmp checks the rest.
        return haystack.withUnsafeBytes { h in
            needle.withUnsafeBytes { n in
                let base = h.baseAddress!
                var i = from
                while i <= end - n.count {
                    guard let hit = memchr(base + i, Int32(n[0]), end - n.count + 1 - i) else { return nil }
                    i = UnsafeRawPointer(hit) - base
                    if memcmp(base + i, n.baseAddress!, n.count) == 0 { return i }
                    i += 1
                }
                return nil
            }
        }
    }

    /// `type/sub; a=1; b="two"` -> ("type/sub", ["a": "1", "b": "two"]).
    static func parseHeaderValue(_ value: String) -> (String, [String: String]) {
        var pieces = value.split(separator: ";", omittingEmptySubsequences: true).map { $0.trimmingCharacters(in: .whitespaces) }
        let main = pieces.isEmpty ? "" : pieces.removeFirst().lowercased()
        var params: [String: String] = [:]
        for piece in pieces {
            guard let eq = piece.firstIndex(of: "=") else { continue }
            let key = piece[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            var val = piece[piece.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if val.count >= 2, val.hasPrefix("\""), val.hasSuffix("\"") { val = String(val.dropFirst().dropLast()) }
            params[key] = val
        }
        return (main, params)
    }
}
