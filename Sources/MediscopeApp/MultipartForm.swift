import MediscopeServer
import MultipartKit

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

    /// Parses with vapor/multipart-kit; every malformation is a 400, never a crash.
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

        var form = MultipartForm()
        var current: Part?
        var open = false
        var tooMany = false
        let parser = MultipartParser(boundary: boundary)
        parser.onHeader = { name, value in
            open = true
            if current == nil { current = Part(name: "", filename: nil, contentType: nil, body: []) }
            switch name.lowercased() {
            case "content-disposition":
                let (_, p) = parseHeaderValue(value)
                current?.name = p["name"] ?? ""
                current?.filename = p["filename"]
            case "content-type":
                current?.contentType = value
            default:
                break
            }
        }
        parser.onBody = { buffer in
            open = true
            if current == nil { current = Part(name: "", filename: nil, contentType: nil, body: []) }
            if let bytes = buffer.readBytes(length: buffer.readableBytes) { current?.body += bytes }
        }
        parser.onPartComplete = {
            if let part = current {
                if form.parts.count < maxParts { form.parts.append(part) } else { tooMany = true }
            }
            current = nil
            open = false
        }
        do { try parser.execute(body) } catch {
            throw Problem.badRequest("the multipart body is malformed")
        }
        // The closing delimiter must be there: a body cut short would otherwise lose its last part silently.
        guard !open, contains(body, Array("--\(boundary)--".utf8)) else {
            throw Problem.badRequest("the multipart body is incomplete (no closing boundary)")
        }
        if tooMany { throw Problem.badRequest("too many parts (at most \(maxParts))") }
        guard !form.parts.isEmpty else { throw Problem.badRequest("the multipart body has no parts") }
        return form
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

    private static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        // The closing delimiter sits at the end; search from there.
        var i = haystack.count - needle.count
        while i >= 0 {
            if haystack[i] == needle[0] && Array(haystack[i..<(i + needle.count)]) == needle { return true }
            i -= 1
        }
        return false
    }
}
