import Foundation
import MediscopeServer
import MediscopeStore

/// An analysis for an EHR: `GET /api/analyses/{id}/fhir` answers a FHIR R4 DiagnosticReport
/// (`FhirDiagnosticReport`) whose status follows the report: preliminary, final once signed, amended after.
enum FhirAPI {
    static let pattern = "/api/analyses/{id}/fhir"

    static let routes: [RouteSpec] = [
        // Patient data leaving in a standard form: audited like any view, refused the same way
        // (another organisation's analysis is "not found").
        RouteSpec(method: "GET", pattern: pattern, access: .clinical, audit: "analysis.fhir") { s, _, p, c throws(Problem) in
            let rec = try AnalysisAPI.record(s, c.user, p["id"])
            let versions: [ReportVersion]
            // Unlike the analysis view, no report-less answer while the store is down: a DiagnosticReport
            // without its report's status would misstate it (503, ask again).
            do { versions = try s.reportStore().versions(analysisId: rec.id, organizationId: rec.organizationId) } catch {
                throw s.problem(error)
            }
            return FhirDiagnosticReport(rec, versions: versions).response
        },
    ]
}
