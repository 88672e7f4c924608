import Foundation
import MediscopeNet

/// DICOMweb STOW-RS (PS3.18 10.5) as a client: every object of a round in one
/// `multipart/related; type="application/dicom"` POST to `<url>/studies`, over libcurl (`CurlHTTP`).
///
/// The answer says what was stored (PS3.18 10.5.3): 200 all of it; 202 or 409 with a Failed SOP Sequence
/// naming the refused instances and their Failure Reasons (the rest stored); 400, 413 or 415 the request
/// refused (each object refused). No answer, 401, 403, 404, 408, 429 and 5xx leave everything unsent: the
/// destination backs off (a credential or URL the operator fixes, a PACS that is down or busy).
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
        case 200:
            return objects.map { _ in .stored }
        case 202, 409:
            let failed = Self.failures(response.body)
            return objects.map { object in
                if let reason = failed[object.sopInstanceUID] {
                    return .refused("STOW-RS \(response.status): Failure Reason " + String(format: "0x%04X", reason))
                }
                // A 409 that names no instance refused them all.
                return response.status == 409 && failed.isEmpty ? .refused("STOW-RS 409 without a Failed SOP Sequence") : .stored
            }
        case 400, 413, 415:
            return objects.map { _ in .refused("STOW-RS \(response.status)") }
        default:
            throw DestinationUnreachable("STOW-RS answered \(response.status)")
        }
    }

    /// The `Authorization` value from the credential file (its text, without the line end).
    func credential() throws(DestinationUnreachable) -> String {
        let path = tokenFile ?? ""
        guard let data = FileManager.default.contents(atPath: path),
              let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty,
              !text.contains("\n"), !text.contains("\r") else {
            throw DestinationUnreachable("the credential file \(path) cannot be read or is empty")
        }
        switch authorization {
        case .bearer: return "Bearer " + text
        case .basic: return "Basic " + Data(text.utf8).base64EncodedString()
        }
    }

    /// SOP Instance UID -> Failure Reason of each item of a response's Failed SOP Sequence (0008,1198).
    static func failures(_ body: [UInt8]) -> [String: Int] {
        guard let json = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
              let sequence = json["00081198"] as? [String: Any], let items = sequence["Value"] as? [[String: Any]] else { return [:] }
        var failures: [String: Int] = [:]
        for item in items {
            guard let uid = ((item["00081155"] as? [String: Any])?["Value"] as? [Any])?.first as? String else { continue }
            let reason = ((item["00081197"] as? [String: Any])?["Value"] as? [Any])?.first as? Int
            failures[uid] = reason ?? 0xC000
        }
        return failures
    }
}
