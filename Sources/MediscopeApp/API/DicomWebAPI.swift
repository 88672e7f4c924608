import Foundation
import MediscopeImaging
import MediscopeServer
import MediscopeStudies

/// DICOMweb STOW-RS (PS3.18 10.5): a PACS or a clinician's tool stores instances with
/// `POST /dicom-web/studies` or `POST /dicom-web/studies/{StudyInstanceUID}`, a
/// `multipart/related; type="application/dicom"` body of one instance per part. Each instance goes
/// through the `DicomInbox` like a C-STORE's (checked, kept durably, its analysis queued) and belongs to
/// the caller's organisation (a clinician's API token or session).
///
/// Answers (PS3.18 Table 10.5.3-1), with a Store Instances Response Module in `application/dicom+json`:
/// 200 every instance stored; 202 some stored, others in the FailedSOPSequence with a Failure Reason;
/// 409 none stored; 415 not `multipart/related; type="application/dicom"`; 400 a malformed body.
/// There is no RetrieveURL: Mediscope keeps no archive to retrieve from (the PACS is the archive).
enum DicomWebAPI {
    static let studiesPattern = "/dicom-web/studies"
    static let studyPattern = "/dicom-web/studies/{study}"
    /// Instances in one request (Orthanc sends 10 by default).
    static let maxParts = 1000

    static let routes: [RouteSpec] = [
        RouteSpec(method: "POST", pattern: studiesPattern, access: .clinical, audit: "dicom.store") { s, req, _, c throws(Problem) in
            try store(s, req, c, study: nil)
        },
        RouteSpec(method: "POST", pattern: studyPattern, access: .clinical, audit: "dicom.store") { s, req, p, c throws(Problem) in
            guard isUID(p["study"]) else {
                throw Problem.badRequest("the Study Instance UID in the path is not a UID (digits and dots, at most 64 characters)")
            }
            return try store(s, req, c, study: p["study"])
        },
    ]

    /// PS3.5 9.1: components of digits without leading zeros, separated by dots, at most 64 characters.
    static func isUID(_ text: String) -> Bool {
        guard (1...64).contains(text.utf8.count) else { return false }
        return text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { c in
            !c.isEmpty && c.utf8.allSatisfy { (0x30...0x39).contains($0) } && (c == "0" || c.first != "0")
        }
    }

    static func store(_ s: Services, _ req: HTTPRequest, _ caller: Caller, study: String?) throws(Problem) -> HTTPResponse {
        if let accept = req.header("accept"), !accepts(accept) {
            throw Problem(status: 406, detail: "the response is application/dicom+json; the Accept header does not allow it")
        }
        let body = try MultipartForm.parseRelated(contentType: req.header("content-type"), type: "application/dicom",
                                                  body: req.body, maxParts: maxParts)
        let inbox = try s.dicomInbox()
        var response = StoreResponse()
        var reasons: [String] = []
        for part in body.parts {
            let delivery = DicomInbox.Delivery(organization: caller.user.organizationId, transport: "stow-rs", sender: caller.user.id,
                                               studyInstanceUID: study)
            let outcome: DicomInbox.Outcome
            if let type = part.contentType, (try? MultipartForm.parseHeaderValue(type))?.0 != "application/dicom" {
                outcome = .refused(0xC000, "the part is not application/dicom")
            } else if let why = part.unsupportedTransferEncoding {
                outcome = .refused(0xC000, why)
            } else if let limit = s.config.dicom?.maxInstanceBytes, part.body.count > limit {
                outcome = .refused(0xA700, "the instance is larger than dicom.max_instance_bytes")
            } else {
                outcome = inbox.take(bytes: part.body, delivery)
            }
            do { try inbox.index.count(DicomListenerWork.counterName(outcome, transport: "stow-rs")) } catch {
                s.server.log.warning("dicom_counter_not_written", [:])
            }
            let ids = identifiers(part.body)
            switch outcome {
            case .kept, .keptBefore, .ownResult:
                response.referenced.append(ids)
            case .refused(let reason, let why):
                s.server.log.warning("dicom_instance_refused", ["transport": .word("stow-rs"), "reason": .token(.init(why))])
                response.failed.append((ids, reason))
                if !reasons.contains(why) { reasons.append(why) }
            }
        }
        let status = response.failed.isEmpty ? 200 : response.referenced.isEmpty ? 409 : 202
        // The Failure Reason codes say little to the person reading the sender's log: as PS3.18 does for what a
        // service ignores, Warning header fields (code 299) say why. Our reasons name no patient data.
        let warnings = reasons.map { ("Warning", "299 mediscope \"\(Self.quotable($0))\"") }
        return HTTPResponse(status: status, headers: [("Content-Type", "application/dicom+json"), ("Cache-Control", "no-store")] + warnings,
                            body: response.json())
    }

    /// `text` as a quoted-string's content: printable ASCII but quotes and backslashes, others as "?" (a part's
    /// header value may carry a CR).
    static func quotable(_ text: String) -> String {
        String(text.unicodeScalars.map { (0x20...0x7E).contains($0.value) && $0 != "\"" && $0 != "\\" ? Character($0) : "?" })
    }

    /// Whether an Accept header allows application/dicom+json (RFC 9110 12.5.1): the most specific range
    /// that matches it decides (the type itself, then application/json as an alias, application/*, */*),
    /// and a quality of 0 means "not acceptable".
    static func accepts(_ accept: String) -> Bool {
        let precedence = ["application/dicom+json": 3, "application/json": 2, "application/*": 1, "*/*": 0]
        var best: (rank: Int, quality: Double)?
        for range in accept.split(separator: ",") {
            let fields = range.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let type = fields.first?.lowercased(), let rank = precedence[type] else { continue }
            var quality = 1.0
            for field in fields.dropFirst() where field.lowercased().hasPrefix("q=") {
                quality = Double(field.dropFirst(2)) ?? 1   // a malformed weight is ignored, as if absent
            }
            if best == nil || rank > best!.rank { best = (rank, quality) }
        }
        return (best?.quality ?? 0) > 0
    }

    /// The SOP Class and Instance UIDs of a part, as far as its attributes can be read (a part the reader
    /// refuses may still name them; else they stay empty).
    static func identifiers(_ bytes: [UInt8]) -> (sopClass: String?, sopInstance: String?) {
        guard let file = try? DicomFile.read(bytes, limits: ImageLimits(maxPixels: 1), decodePixels: false) else { return (nil, nil) }
        return (file.attributes.sopClassUID, file.attributes.sopInstanceUID)
    }

    /// PS3.18 10.5.3's Store Instances Response Module: ReferencedSOPSequence (0008,1199) and
    /// FailedSOPSequence (0008,1198) with Failure Reason (0008,1197).
    struct StoreResponse {
        var referenced: [(sopClass: String?, sopInstance: String?)] = []
        var failed: [((sopClass: String?, sopInstance: String?), UInt16)] = []

        func json() -> [UInt8] {
            func uid(_ value: String?) -> [String: Any] { value.map { ["vr": "UI", "Value": [$0]] } ?? ["vr": "UI"] }
            func item(_ ids: (sopClass: String?, sopInstance: String?)) -> [String: Any] {
                ["00081150": uid(ids.sopClass), "00081155": uid(ids.sopInstance)]
            }
            var dataset: [String: Any] = [:]
            if !referenced.isEmpty { dataset["00081199"] = ["vr": "SQ", "Value": referenced.map(item)] }
            if !failed.isEmpty {
                dataset["00081198"] = ["vr": "SQ", "Value": failed.map { ids, reason in
                    item(ids).merging(["00081197": ["vr": "US", "Value": [Int(reason)]]]) { a, _ in a }
                }]
            }
            let data = (try? JSONSerialization.data(withJSONObject: dataset, options: [.sortedKeys])) ?? Data("{}".utf8)
            return Array(data)
        }
    }
}
