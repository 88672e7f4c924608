import Foundation
import MediscopeServer

/// The DICOM listener's settings (`dicom.*`; MEDISCOPE_DICOM_*): off unless `dicom.listen` is set.
package struct DicomSettings: Sendable, Equatable {
    /// A sender allowed to associate: its calling AE title at its address; its instances belong to
    /// `organization`.
    package struct Peer: Sendable, Equatable, Decodable {
        package var aeTitle: String
        package var host: String
        package var organization: String

        enum CodingKeys: String, CodingKey { case aeTitle = "ae_title", host, organization }
    }

    /// TCP port (`dicom.listen`: `PORT`, `*:PORT` or `0.0.0.0:PORT`; DCMTK 3.6.7 listens on every address).
    package var port: UInt16
    /// The AE title senders call (`dicom.ae_title`, default MEDISCOPE).
    package var aeTitle: String
    /// Who may send (`dicom.peers`: a JSON array of `{"ae_title", "host", "organization"}`).
    package var peers: [Peer]
    /// Largest instance kept, bytes (`dicom.max_instance_bytes`, default 128 MiB: the listener and the
    /// worker each hold about two copies of an instance while they check it, on a 1 GiB box).
    package var maxInstanceBytes: Int
    /// Largest PDU received, bytes (`dicom.max_pdu`, 4096...131072, default 65536).
    package var maxPDU: Int
    /// Seconds an association may stay idle before it is aborted (`dicom.idle_timeout_seconds`, default 60).
    package var idleTimeoutSeconds: Int
    /// Seconds an association may last in all before it is aborted (`dicom.association_timeout_seconds`,
    /// default 1800: a study of a few thousand instances on a slow link; one association holds the listener).
    package var associationTimeoutSeconds: Int

    /// The settings `string` and `int` read, nil when `dicom.listen` is unset or empty; throws naming a
    /// wrong key.
    static func read(_ string: (String) -> String?, int: (String, Int) -> Int) throws -> DicomSettings? {
        guard let listen = string("dicom.listen")?.trimmingCharacters(in: .whitespaces), !listen.isEmpty else { return nil }
        let portText = listen.split(separator: ":", omittingEmptySubsequences: false).last.map(String.init) ?? ""
        let host = listen.count > portText.count ? String(listen.dropLast(portText.count + 1)) : "*"
        guard ["*", "0.0.0.0"].contains(host), let port = UInt16(portText), port > 0 else {
            throw ServerError("dicom.listen must be PORT or *:PORT (the listener takes every address; dicom.peers and "
                              + "the firewall say who may send), got \(listen)")
        }
        let aeTitle = string("dicom.ae.title") ?? "MEDISCOPE"
        guard Self.isAETitle(aeTitle) else {
            throw ServerError("dicom.ae_title must be 1 to 16 printable ASCII characters without a backslash, got \(aeTitle)")
        }
        let peersText = string("dicom.peers") ?? "[]"
        let peers: [Peer]
        do { peers = try JSONDecoder().decode([Peer].self, from: Data(peersText.utf8)) } catch {
            throw ServerError("dicom.peers must be a JSON array of {\"ae_title\", \"host\", \"organization\"}")
        }
        var seen = Set<String>()
        for peer in peers {
            guard Self.isAETitle(peer.aeTitle), AppConfig.isNumericAddress(peer.host), !peer.organization.isEmpty else {
                throw ServerError("dicom.peers: each peer needs an AE title (1 to 16 characters), a numeric IP address and "
                                  + "an organization, got \(peer.aeTitle) at \(peer.host)")
            }
            // One sender is one organisation's: the same AE title at the same address twice could file one
            // hospital's studies under another.
            guard seen.insert(peer.aeTitle + "@" + peer.host).inserted else {
                throw ServerError("dicom.peers lists \(peer.aeTitle) at \(peer.host) twice")
            }
        }
        let settings = DicomSettings(port: port, aeTitle: aeTitle, peers: peers,
                                     maxInstanceBytes: int("dicom.max.instance.bytes", 128 << 20),
                                     maxPDU: int("dicom.max.pdu", 65_536), idleTimeoutSeconds: int("dicom.idle.timeout.seconds", 60),
                                     associationTimeoutSeconds: int("dicom.association.timeout.seconds", 1800))
        guard (1 << 10...4 << 30).contains(settings.maxInstanceBytes), (4096...131_072).contains(settings.maxPDU),
              (1...3600).contains(settings.idleTimeoutSeconds), (1...86_400).contains(settings.associationTimeoutSeconds) else {
            throw ServerError("dicom.max_instance_bytes must be 1 KiB to 4 GiB, dicom.max_pdu 4096 to 131072, "
                              + "dicom.idle_timeout_seconds 1 to 3600, dicom.association_timeout_seconds 1 to 86400")
        }
        return settings
    }

    /// PS3.5's AE title: 1 to 16 characters of the default repertoire, no backslash or control character;
    /// leading and trailing spaces are not significant, so none are allowed here.
    static func isAETitle(_ text: String) -> Bool {
        (1...16).contains(text.utf8.count) && text.utf8.allSatisfy { (0x20...0x7E).contains($0) && $0 != 0x5C }
            && text.first != " " && text.last != " "
    }

    /// The peer `callingAETitle` at `address` is, if it is one.
    package func peer(callingAETitle: String, address: String) -> Peer? {
        peers.first { $0.aeTitle == callingAETitle && $0.host == address }
    }
}
