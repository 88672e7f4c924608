import Foundation
import MediscopeNet

/// DICOMweb STOW-RS (PS3.18 10.5) as a client: every object of a round in one
/// `multipart/related; type="application/dicom"` POST to `<url>/studies`, over libcurl (`CurlHTTP`).
///
/// The answer says what was stored (PS3.18 10.5.3): 200, 202 or 409 with a Store Instances Response naming
/// each instance stored (Referenced SOP Sequence) or refused (Failed SOP Sequence, with its Failure Reason);
/// 413 for several objects: each half again in a request of its own; 400, 413 (one object) or 415 the
/// request refused (each object refused). No answer, a 200 that is no Store Instances Response, a redirect,
/// 401, 403, 404, 408, 429 and 5xx leave everything unsent: the destination backs off (a credential or URL
/// the operator fixes, a PACS that is down or busy).
package struct StowRSSender: DicomSender {
    package let url: URL
    package let tokenFile: String?
    package let authorization: DicomDestination.Authorization
    /// Seconds the whole request may take.
    package var timeout: Double = 120

    package init(url: URL, tokenFile: String?, authorization: DicomDestination.Authorization) {
        self.url = url
        self.tokenFile = tokenFile
        self.authorization = authorization
    }

    package func send(_ objects: [DicomObject]) throws(DestinationUnreachable) -> [SentObject] {
        guard !objects.isEmpty else { return [] }
        var headers = [("Accept", "application/dicom+json")]
        if tokenFile != nil { headers.append(("Authorization", try credential())) }
        let boundary = "mediscope-" + (0..<4).map { _ in String(UInt32.random(in: .min ... .max), radix: 16) }.joined()
        headers.append(("Content-Type", "multipart/related; type=\"application/dicom\"; boundary=\(boundary)"))
        var body: [UInt8] = []
        for object in objects {
            body += Array("--\(boundary)\r\nContent-Type: application/dicom\r\n\r\n".utf8)
            body += object.bytes
            body += Array("\r\n".utf8)
        }
        body += Array("--\(boundary)--\r\n".utf8)
        let response: HTTPClientResponse
        do {
            response = try CurlHTTP.perform(HTTPClientRequest(method: "POST", url: url.appendingPathComponent("studies"), headers: headers,
                                                             body: body, timeout: timeout, connectTimeout: 10))
        } catch {
            throw DestinationUnreachable("STOW-RS request failed: \(error.message)")
        }
        switch response.status {
        case 200, 202, 409:
            return try Self.outcomes(objects, response)
        case 413 where objects.count > 1:
            // Larger than a proxy or the PACS takes in one request: each half in a request of its own.
            let half = objects.count / 2
            return try send(Array(objects[..<half])) + send(Array(objects[half...]))
        case 400, 413, 415:
            return objects.map { _ in .refused("STOW-RS \(response.status)") }
        case 300...399:
            throw DestinationUnreachable("STOW-RS answered \(response.status), a redirect: configure the URL it points to")
        default:
            throw DestinationUnreachable("STOW-RS answered \(response.status)")
        }
    }

    /// What a Store Instances Response (PS3.18 10.5.3, `application/dicom+json`) says of each object: in the
    /// Referenced SOP Sequence stored; in the Failed SOP Sequence refused, or later for a Failure Reason
    /// 0xA7xx (out of resources: the PACS's state); in neither, refused. A 200 that is no such response
    /// (a login page, a proxy's own answer) stores nothing: the destination is not the STOW-RS service.
    static func outcomes(_ objects: [DicomObject], _ response: HTTPClientResponse) throws(DestinationUnreachable) -> [SentObject] {
        guard let json = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] else {
            throw DestinationUnreachable("STOW-RS answered \(response.status) without a Store Instances Response (application/dicom+json)")
        }
        let stored = Set(items(json, "00081199").compactMap { uid($0) })
        var failed: [String: Int] = [:]
        for item in items(json, "00081198") {
            guard let uid = uid(item) else { continue }
            failed[uid] = ((item["00081197"] as? [String: Any])?["Value"] as? [Any])?.first as? Int ?? 0xC000
        }
        return objects.map { object in
            if let reason = failed[object.sopInstanceUID] {
                let text = "STOW-RS \(response.status): Failure Reason " + String(format: "0x%04X", reason)
                return reason & 0xFF00 == 0xA700 ? .later(text + " (out of resources)") : .refused(text)
            }
            if stored.contains(object.sopInstanceUID) { return .stored }
            return .refused("STOW-RS \(response.status): the response names it neither stored nor failed")
        }
    }

    /// The items of the sequence `tag` of a DICOM JSON object.
    private static func items(_ json: [String: Any], _ tag: String) -> [[String: Any]] {
        (json[tag] as? [String: Any])?["Value"] as? [[String: Any]] ?? []
    }

    /// The Referenced SOP Instance UID of an item.
    private static func uid(_ item: [String: Any]) -> String? {
        ((item["00081155"] as? [String: Any])?["Value"] as? [Any])?.first as? String
    }

    /// The `Authorization` value from the credential file (its text, without the line end).
    func credential() throws(DestinationUnreachable) -> String {
        let path = tokenFile ?? ""
        guard let data = FileManager.default.contents(atPath: path),
              var text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty else {
            throw DestinationUnreachable("the credential file \(path) cannot be read or is empty")
        }
        guard !text.contains("\n"), !text.contains("\r") else {
            throw DestinationUnreachable("the credential file \(path) must hold one line")
        }
        switch authorization {
        case .bearer:
            if text.lowercased().hasPrefix("bearer ") { text = String(text.dropFirst(7)).trimmingCharacters(in: .whitespaces) }
            return "Bearer " + text
        case .basic: return "Basic " + Data(text.utf8).base64EncodedString()
        }
    }

}
