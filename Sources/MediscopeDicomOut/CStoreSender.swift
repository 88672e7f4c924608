import MediscopeDicomNet

/// DICOM C-STORE (PS3.4 Annex B) as a sender: every object of a round over one association, through DCMTK's
/// dcmnet (`StorageSCU`).
///
/// - No association (connection refused or timed out, A-ASSOCIATE-RJ, a peer that never answers): the
///   destination backs off; a permanent rejection (a wrong AE title) waits for the operator the same way.
/// - Success and warning statuses (0xB000, 0xB006, 0xB007) are stored; 0xA7xx (out of resources) is the
///   PACS's state, not the object's: the destination backs off; any other failure status, or a SOP class
///   or transfer syntax the PACS does not accept, refuses the object.
/// - An association that ended before an object's response: that object and those after it wait.
package struct CStoreSender: DicomSender {
    package let scu: StorageSCU

    /// - Parameter timeout: seconds for the connection, the association's negotiation and each response.
    package init(host: String, port: UInt16, callingAETitle: String, calledAETitle: String, timeout: Int) {
        var settings = StorageSCU.Settings(host: host, port: port, callingAETitle: callingAETitle, calledAETitle: calledAETitle)
        let seconds = UInt32(max(1, timeout))
        settings.connectTimeout = min(seconds, 10)
        settings.acseTimeout = seconds
        settings.dimseTimeout = seconds
        scu = StorageSCU(settings: settings)
    }

    package func send(_ objects: [DicomObject]) throws(DestinationUnreachable) -> [SentObject] {
        let delivery: StorageSCU.Delivery
        do { delivery = try scu.send(objects.map(\.bytes)) } catch {
            guard error.kind == .badInput else { throw DestinationUnreachable("C-STORE: \(error.message)") }
            // Nothing was sent: refuse the object DCMTK could not read ("object N of M ...") and send the rest.
            let refused = SentObject.refused("C-STORE: \(error.message)")
            guard let n = Self.badObject(error.message, count: objects.count) else { return objects.map { _ in refused } }
            var rest = try send(Array(objects[..<n] + objects[(n + 1)...]))
            rest.insert(refused, at: n)
            return rest
        }
        var later = false
        // DCMTK's note says which object and why (position and SOP class only): kept with the reason.
        let note = delivery.note.map { " (\($0))" } ?? ""
        return delivery.outcomes.map { outcome in
            if later { return .later("C-STORE: the association ended" + note) }
            switch outcome {
            case .responded(let status):
                switch StorageSCU.StatusCategory(status) {
                case .success, .warning: return .stored
                case .failure where status & 0xFF00 == 0xA700:
                    later = true
                    return .later("C-STORE: \(outcome) (out of resources)")
                case .failure: return .refused("C-STORE: \(outcome)")
                }
            case .notSent(.sopClassNotAccepted), .notSent(.transferSyntaxNotAccepted):
                return .refused("C-STORE: \(outcome)")
            case .notSent(.associationEnded), .noResponse:
                later = true
                return .later("C-STORE: \(outcome)" + note)
            }
        }
    }

    /// The 0-based index of the object an "object N of M" message names, when it names one of `count`.
    static func badObject(_ message: String, count: Int) -> Int? {
        guard let range = message.range(of: "object ") else { return nil }
        let digits = message[range.upperBound...].prefix { $0.isNumber }
        guard let n = Int(digits), (1...count).contains(n) else { return nil }
        return n - 1
    }
}
