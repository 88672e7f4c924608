import Foundation
import MediscopeIdempotency
import Glibc
import MediscopeServer

/// A parsed multipart/form-data body: text fields and file parts by name.
struct MultipartForm {
    struct Part {
        var name: String
        var filename: String?
        var contentType: String?
        var body: [UInt8]
        /// The part's Content-Transfer-Encoding, lowercased; nil when it has none.
        var transferEncoding: String? = nil

        /// Why the part's body is not its bytes as sent, nil when it is: HTTP carries bodies binary, and
        /// RFC 7578 (4.7) deprecates any other Content-Transfer-Encoding.
        var unsupportedTransferEncoding: String? {
            guard let transferEncoding, !["binary", "8bit", "7bit"].contains(transferEncoding) else { return nil }
            return "the part's Content-Transfer-Encoding \(transferEncoding.prefix(40)) is not supported: send its bytes as they are (binary)"
        }
    }
    var parts: [Part] = []

    func first(_ name: String) -> Part? { parts.first { $0.name == name } }
    /// The part's body as text, for tests and non-patient fields; patient text goes through FieldText.
    func text(_ name: String) -> String? { first(name).map { String(decoding: $0.body, as: UTF8.self) } }

    /// What the form says, for an Idempotency-Key: each field's name and bytes, by name (names are
    /// unique), so a retry built anew (another boundary, another part order, another file name) is the
    /// same request.
    var fingerprint: RequestFingerprint {
        var fingerprint = RequestFingerprint("multipart/form-data")
        for part in parts.sorted(by: { $0.name < $1.name }) {
            fingerprint.add(part.name)
            fingerprint.add(part.body)
        }
        return fingerprint
    }

    /// Every malformation is a 400, never a crash.
    static func parse(contentType: String?, body: [UInt8], maxParts: Int = 32) throws(Problem) -> MultipartForm {
        guard let contentType, !contentType.isEmpty else {
            throw Problem(status: 415, detail: "expected multipart/form-data with an `image` field; no Content-Type was sent")
        }
        let mediaType: String, params: [String: String]
        do { (mediaType, params) = try parseHeaderValue(contentType) } catch {
            throw Problem.badRequest("the Content-Type header is malformed: \(error.message)")
        }
        guard mediaType == "multipart/form-data" else {
            throw Problem(status: 415, detail: "expected multipart/form-data with an `image` field, got \(mediaType.prefix(60))")
        }
        guard let boundary = params["boundary"], !boundary.isEmpty, boundary.count <= 70 else {
            throw Problem.badRequest("multipart/form-data needs a boundary parameter (1 to 70 characters)")
        }
        guard !body.isEmpty else { throw Problem.badRequest("the request body is empty") }

        let form = try parseParts(body, boundary: Array(boundary.utf8), maxParts: maxParts, formData: true)
        // A field given twice is refused, not resolved: keeping either copy may keep the wrong patient.
        var seen = Set<String>()
        for part in form.parts where !part.name.isEmpty {
            guard seen.insert(part.name).inserted else {
                throw Problem.badRequest("the form has the field `\(part.name.prefix(64))` more than once; send each field once")
            }
        }
        return form
    }

    /// A multipart/related body (RFC 2387) whose root `type` is `type` (STOW-RS: `application/dicom`): its
    /// parts in order, each with its Content-Type; names are empty. A wrong media type or root type is a
    /// 415, a malformed body a 400.
    static func parseRelated(contentType: String?, type: String, body: [UInt8], maxParts: Int) throws(Problem) -> MultipartForm {
        let expected = "multipart/related; type=\"\(type)\""
        guard let contentType, !contentType.isEmpty else {
            throw Problem(status: 415, detail: "expected \(expected); no Content-Type was sent")
        }
        let mediaType: String, params: [String: String]
        do { (mediaType, params) = try parseHeaderValue(contentType) } catch {
            throw Problem.badRequest("the Content-Type header is malformed: \(error.message)")
        }
        guard mediaType == "multipart/related", params["type"]?.lowercased() == type else {
            throw Problem(status: 415, detail: "expected \(expected), got \(contentType.prefix(80))")
        }
        // RFC 2046 allows 70 characters; Orthanc's DICOMweb client sends 73 (two UUIDs): be liberal.
        guard let boundary = params["boundary"], !boundary.isEmpty, boundary.count <= 200 else {
            throw Problem.badRequest("multipart/related needs a boundary parameter (1 to 200 characters)")
        }
        guard !body.isEmpty else { throw Problem.badRequest("the request body is empty") }
        return try parseParts(body, boundary: Array(boundary.utf8), maxParts: maxParts, formData: false)
    }

    // Our own parser: vapor/multipart-kit 4.7.1 traps (index out of range) on a header-name byte >= 0x80,
    // which a fuzz test found; a crafted upload must never kill a worker. `formData`: every part must be a
    // form-data field (a part without Content-Disposition has no name); else parts are taken as they come
    // (multipart/related).
    private static func parseParts(_ body: [UInt8], boundary: [UInt8], maxParts: Int, formData: Bool) throws(Problem) -> MultipartForm {
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
                var seenHeaders = Set<String>()
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
                    guard seenHeaders.insert(name).inserted || !["content-disposition", "content-type"].contains(name) else {
                        throw Problem.badRequest("a multipart part has more than one \(name) header")
                    }
                    if name == "content-disposition" && formData {
                        let kind: String, p: [String: String]
                        do { (kind, p) = try parseHeaderValue(value) } catch {
                            throw Problem.badRequest("a multipart part's Content-Disposition is malformed: \(error.message)")
                        }
                        guard kind == "form-data" else { throw Problem.badRequest("a multipart part is not form-data") }
                        guard let fieldName = p["name"], !fieldName.isEmpty else {
                            throw Problem.badRequest("a multipart part's Content-Disposition has no name")
                        }
                        part.name = fieldName
                        part.filename = p["filename*"] ?? p["filename"]
                    } else if name == "content-type" {
                        part.contentType = value
                    } else if name == "content-transfer-encoding" {
                        part.transferEncoding = value.lowercased()
                    }
                }
            }
            let bodyStart = headerEnd + 4
            guard let next = find(delimiter, in: body, from: bodyStart) else {
                throw Problem.badRequest("the multipart body is incomplete (no closing boundary)")
            }
            part.body = Array(body[bodyStart..<next])
            // A form's file in base64 would be refused as no image, without saying why.
            if formData, let why = part.unsupportedTransferEncoding { throw Problem.badRequest(why) }
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

    /// A header value with parameters, as RFC 9110 section 5.6.6 (Content-Type), RFC 2183 and RFC 7578
    /// (Content-Disposition) define it: `type/sub; a=1; b="two; three"`.
    ///
    /// The main value and parameter names are case-insensitive (returned lowercased); parameter order
    /// is free; a value is a token or a quoted string, inside which `;` and `=` are data and a backslash
    /// escapes the next character. `filename*` (RFC 8187 `UTF-8''percent-encoded`) is decoded and
    /// stored under `filename*`. Throws a description of the fault for an unterminated quoted string,
    /// a parameter without `=` or a name given twice.
    static func parseHeaderValue(_ value: String) throws(HeaderValueError) -> (String, [String: String]) {
        let s = Array(value.unicodeScalars)
        var i = 0
        func skipSpace() { while i < s.count, s[i] == " " || s[i] == "\t" { i += 1 } }
        func isToken(_ c: Unicode.Scalar) -> Bool { c.isASCII && isTokenByte(UInt8(c.value)) }

        var main = ""
        skipSpace()
        while i < s.count, s[i] != ";" { main.unicodeScalars.append(s[i]); i += 1 }
        main = main.trimmingCharacters(in: .whitespaces).lowercased()
        var params: [String: String] = [:]
        while i < s.count {
            i += 1  // the ';'
            skipSpace()
            if i == s.count || s[i] == ";" { continue }  // an empty parameter (`a=1;;b=2`, a trailing `;`)
            var name = ""
            while i < s.count, isToken(s[i]) { name.unicodeScalars.append(s[i]); i += 1 }
            skipSpace()
            guard !name.isEmpty, i < s.count, s[i] == "=" else {
                throw HeaderValueError("a parameter is not of the form name=value")
            }
            i += 1
            skipSpace()
            var parameter = ""
            if i < s.count, s[i] == "\"" {
                i += 1
                let opened = i
                var closed = false
                while i < s.count {
                    let c = s[i]
                    i += 1
                    if c == "\"" { closed = true; break }
                    if c == "\\" {
                        guard i < s.count else { break }
                        parameter.unicodeScalars.append(s[i])
                        i += 1
                    } else {
                        parameter.unicodeScalars.append(c)
                    }
                }
                if !closed {
                    // Browsers (WHATWG) and curl send a backslash in a file name as it is, so `"T2\"` ends
                    // in a backslash, not an escaped quote: read the value again with backslashes as data.
                    guard let end = s[opened...].firstIndex(of: "\"") else {
                        throw HeaderValueError("parameter `\(name.lowercased())` has an unterminated quoted string")
                    }
                    parameter = String(String.UnicodeScalarView(s[opened..<end]))
                    i = end + 1
                }
            } else {
                // A token; browsers only ever quote, so be lenient with what an older client sends bare.
                while i < s.count, s[i] != ";", s[i] != " ", s[i] != "\t" { parameter.unicodeScalars.append(s[i]); i += 1 }
            }
            skipSpace()
            guard i == s.count || s[i] == ";" else {
                throw HeaderValueError("parameter `\(name.lowercased())` has text after its value")
            }
            let key = name.lowercased()
            guard params[key] == nil else { throw HeaderValueError("parameter `\(key)` is given twice") }
            if key.hasSuffix("*") {
                guard let decoded = decodeExtendedValue(parameter) else {
                    throw HeaderValueError("parameter `\(key)` is not a valid RFC 8187 value")
                }
                parameter = decoded
            }
            params[key] = parameter
        }
        return (main, params)
    }

    /// RFC 8187 ext-value: `UTF-8'language'percent-encoded`; only UTF-8 is accepted (RFC 7578 section 4.2).
    static func decodeExtendedValue(_ value: String) -> String? {
        let pieces = value.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
        guard pieces.count == 3, pieces[0].lowercased() == "utf-8" else { return nil }
        var bytes: [UInt8] = []
        var utf8 = Array(pieces[2].utf8)[...]
        while let b = utf8.popFirst() {
            if b == UInt8(ascii: "%") {
                guard utf8.count >= 2, let v = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) else { return nil }
                bytes.append(v)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(b)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
