import Foundation
import MediscopeDicomOut
import MediscopeServer

/// Where results go back to (`dicom.destinations`, `dicom.send_results` and the delivery's limits;
/// MEDISCOPE_DICOM_*), whether or not the listener is on.
package struct DicomSendingSettings: Sendable, Equatable {
    /// Every destination an operator may send to (`dicom.destinations`: a JSON array of
    /// `{"name", "kind": "c-store", "ae_title", "host", "port"}` or
    /// `{"name", "kind": "stow-rs", "url", "token_file", "authorization": "bearer" | "basic"}`).
    package var destinations: [DicomDestination]
    /// The destinations that get every new analysis's SR and Secondary Captures, and the new SR when a
    /// report is signed or amended (`dicom.send_results`: a JSON array of names, or names separated by commas).
    package var sendResults: [String]
    /// Mediscope's AE title when it calls a C-STORE destination (`dicom.ae_title`, default MEDISCOPE).
    package var callingAETitle: String
    /// Refusals of one object before it is parked (`dicom.send_max_attempts`, 1...100, default 10: with the
    /// back-off, about 13 minutes of refusals, so a short fault of the PACS parks nothing).
    package var maxAttempts: Int
    /// Longest back-off between tries, seconds (`dicom.send_retry_max_seconds`, 1...3600, default 300).
    package var retryMaxSeconds: Int
    /// Seconds one exchange with a destination may take: connect, negotiate, each answer
    /// (`dicom.send_timeout_seconds`, 1...600, default 60).
    package var timeoutSeconds: Int

    /// The destinations `send_results` names, in its order.
    package var resultDestinations: [DicomDestination] { sendResults.compactMap { name in destinations.first { $0.name == name } } }

    /// One entry of `dicom.destinations` as written.
    private struct Entry: Decodable {
        var name: String
        var kind: String
        var aeTitle: String?
        var host: String?
        var port: Int?
        var url: String?
        var tokenFile: String?
        var authorization: String?

        enum CodingKeys: String, CodingKey {
            case name, kind, host, port, url, authorization
            case aeTitle = "ae_title", tokenFile = "token_file"
        }
    }

    /// The settings `string` and `int` read; throws naming a wrong key.
    static func read(_ string: (String) -> String?, int: (String, Int) -> Int) throws -> DicomSendingSettings {
        let text = string("dicom.destinations")?.trimmingCharacters(in: .whitespaces) ?? ""
        let entries: [Entry]
        do { entries = text.isEmpty ? [] : try JSONDecoder().decode([Entry].self, from: Data(text.utf8)) } catch {
            throw ServerError("dicom.destinations must be a JSON array of {\"name\", \"kind\": \"c-store\", \"ae_title\", \"host\", \"port\"} "
                              + "or {\"name\", \"kind\": \"stow-rs\", \"url\", \"token_file\"}")
        }
        var destinations: [DicomDestination] = []
        for entry in entries {
            guard isName(entry.name), !destinations.contains(where: { $0.name == entry.name }) else {
                throw ServerError("dicom.destinations: each name must be 1 to 64 letters, digits, '.', '-' or '_', and unique, got \(entry.name)")
            }
            switch entry.kind {
            case "c-store":
                guard let ae = entry.aeTitle, DicomSettings.isAETitle(ae), let host = entry.host, isHost(host),
                      let port = entry.port, (1...65_535).contains(port), entry.url == nil else {
                    throw ServerError("dicom.destinations: \(entry.name) (c-store) needs an ae_title (1 to 16 characters), a host "
                                      + "(a name or an IPv4 address, at most 57 characters) and a port (1 to 65535)")
                }
                destinations.append(DicomDestination(name: entry.name, transport: .cStore(aeTitle: ae, host: host, port: UInt16(port))))
            case "stow-rs":
                guard let text = entry.url, let url = URL(string: text), ["http", "https"].contains(url.scheme?.lowercased() ?? ""),
                      let host = url.host, !host.isEmpty, url.query == nil, entry.aeTitle == nil, entry.host == nil else {
                    throw ServerError("dicom.destinations: \(entry.name) (stow-rs) needs a url, the DICOMweb service's http:// or "
                                      + "https:// root (POST <url>/studies)")
                }
                guard let authorization = DicomDestination.Authorization(rawValue: entry.authorization ?? "bearer"),
                      entry.tokenFile.map({ $0.hasPrefix("/") }) ?? true else {
                    throw ServerError("dicom.destinations: \(entry.name): token_file must be an absolute path and authorization "
                                      + "bearer or basic")
                }
                destinations.append(DicomDestination(name: entry.name, transport: .stowRS(url: url, tokenFile: entry.tokenFile,
                                                                                          authorization: authorization)))
            default:
                throw ServerError("dicom.destinations: \(entry.name)'s kind must be c-store or stow-rs, got \(entry.kind)")
            }
        }
        let namesText = string("dicom.send.results")?.trimmingCharacters(in: .whitespaces) ?? ""
        let names: [String]
        if namesText.hasPrefix("[") {
            guard let list = try? JSONDecoder().decode([String].self, from: Data(namesText.utf8)) else {
                throw ServerError("dicom.send_results must be a JSON array of destination names, or names separated by commas")
            }
            names = list
        } else {
            names = namesText.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        for name in names where !destinations.contains(where: { $0.name == name }) {
            throw ServerError("dicom.send_results names \(name), which dicom.destinations does not list")
        }
        guard Set(names).count == names.count else { throw ServerError("dicom.send_results names a destination twice") }
        let settings = DicomSendingSettings(
            destinations: destinations, sendResults: names, callingAETitle: string("dicom.ae.title") ?? "MEDISCOPE",
            maxAttempts: int("dicom.send.max.attempts", 10), retryMaxSeconds: int("dicom.send.retry.max.seconds", 300),
            timeoutSeconds: int("dicom.send.timeout.seconds", 60))
        guard DicomSettings.isAETitle(settings.callingAETitle) else {
            throw ServerError("dicom.ae_title must be 1 to 16 printable ASCII characters without a backslash")
        }
        guard (1...100).contains(settings.maxAttempts), (1...3600).contains(settings.retryMaxSeconds),
              (1...600).contains(settings.timeoutSeconds) else {
            throw ServerError("dicom.send_max_attempts must be 1 to 100, dicom.send_retry_max_seconds 1 to 3600 and "
                              + "dicom.send_timeout_seconds 1 to 600")
        }
        return settings
    }

    /// A destination's name: what metrics label and logs carry.
    static func isName(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count) && text.utf8.allSatisfy { $0 == 45 || $0 == 46 || $0 == 95 || (48...57).contains($0)
            || (65...90).contains($0) || (97...122).contains($0) }
    }

    /// A host name (RFC 1123 letters, digits, '-' and '.') or an IPv4 address, at most 57 characters:
    /// DCMTK 3.6.7 takes no IPv6 literal and keeps a short "host:port".
    static func isHost(_ text: String) -> Bool {
        ((1...57).contains(text.utf8.count)
            && text.utf8.allSatisfy { $0 == 45 || $0 == 46 || (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) })
    }
}
