import MediscopeDicomWrite
import MediscopeImaging
import MediscopeServer
import MediscopeStore

/// An analysis as DICOM downloads (issue 25): `GET /api/analyses/{id}/dicom/sr`, its Comprehensive SR as the
/// report stands (UNVERIFIED until signed, then VERIFIED with its predecessor), and
/// `GET /api/analyses/{id}/dicom/sc/{result}`, the Secondary Capture of a result's heatmap
/// (`MediscopeDicomWrite.DicomResults`). Both are written on request: the same request gives the same UIDs.
enum DicomResultsAPI {
    static let srPattern = "/api/analyses/{id}/dicom/sr"
    static let scPattern = "/api/analyses/{id}/dicom/sc/{result}"
    static let contentType = "application/dicom"

    static let routes: [RouteSpec] = [
        // Patient data leaving in a standard form: audited like any view, refused the same way
        // (another organisation's analysis is "not found").
        RouteSpec(method: "GET", pattern: srPattern, access: .clinical, audit: "analysis.dicom") { s, _, p, c throws(Problem) in
            let rec = try AnalysisAPI.record(s, c.user, p["id"])
            let versions: [ReportVersion]
            // Like FHIR: no SR without the report's state (an UNVERIFIED SR of a signed report would misstate it).
            do { versions = try s.reportStore().versions(analysisId: rec.id, organizationId: rec.organizationId) } catch {
                throw s.problem(error)
            }
            let organization = try Guard.accountsCall(s) { try $0.organizationName(id: rec.organizationId) } ?? rec.organizationId
            let bytes: [UInt8]
            do { bytes = try DicomResults.structuredReport(rec, versions: versions, organization: organization) } catch let error as DicomWriteError {
                throw Problem(status: 500, detail: error.message)
            } catch {
                throw Problem(status: 500, detail: "the SR could not be written")
            }
            return response(bytes, filename: "mediscope-\(rec.id)-sr.dcm")
        },
        RouteSpec(method: "GET", pattern: scPattern, access: .clinical, audit: "analysis.dicom") { s, _, p, c throws(Problem) in
            let rec = try AnalysisAPI.record(s, c.user, p["id"])
            guard let result = rec.results.first(where: { $0.id == p["result"] }) else {
                throw Problem.notFound("analysis \(rec.id) has no result \(p["result"].prefix(64))")
            }
            let stored: [UInt8]?
            do { stored = try s.store().bytes(of: result.heatmap) } catch { throw s.problem(error) }
            guard let stored else { throw Problem.notFound("the heatmap is missing") }
            let bytes: [UInt8]
            do {
                let image = try ImageDecoder.decode(stored)
                bytes = try DicomResults.secondaryCapture(rec, result: result, image: image)
            } catch let error as DicomWriteError {
                throw Problem(status: 500, detail: error.message)
            } catch {
                throw Problem(status: 500, detail: "the heatmap cannot be read")
            }
            return response(bytes, filename: "mediscope-\(rec.id)-sc-\(safe(result.id)).dcm")
        },
    ]

    /// A PS3.10 file as an attachment, never kept by a cache (patient data; the SR changes on signing).
    static func response(_ bytes: [UInt8], filename: String) -> HTTPResponse {
        HTTPResponse(status: 200, headers: [("Content-Type", contentType), ("Content-Disposition", "attachment; filename=\"\(filename)\""),
                                            ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")], body: bytes)
    }

    /// `text` with only the characters a file name may carry unquoted.
    static func safe(_ text: String) -> String {
        String(text.prefix(64).map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") ? $0 : "_" })
    }
}
