import Foundation
import MediscopeAuth
import MediscopeEncoding
import MediscopeImaging
import MediscopeInference
import MediscopeServer
import MediscopeStore

/// Every route of the API, and the router that runs them through Guard. The routes and their handlers
/// live with their resource: AnalysisAPI, ReportAPI, AccountAPI, DicomAPI, DicomWebAPI, StudyAPI, ServiceAPI, FhirAPI.
package enum API {
    /// Every route, who may call it and what the audit log calls it. The access test walks this table.
    static let specs: [RouteSpec] = AnalysisAPI.routes + ReportAPI.routes + AccountAPI.routes.map(auditingAdminReads) + DicomAPI.routes
        + DicomWebAPI.routes + StudyAPI.routes + ServiceAPI.routes + FhirAPI.routes + DicomResultsAPI.routes

    /// Admins' reads of the audit log and the user list, audited like every other access: who read the
    /// trail, and when, is part of it ("METHOD pattern" -> action).
    static let adminReadActions = ["GET /api/audit": "audit.view", "GET /api/audit/export": "audit.export", "GET /api/users": "user.list"]

    /// `spec` audited as `adminReadActions` says, when its table left it unaudited.
    static func auditingAdminReads(_ spec: RouteSpec) -> RouteSpec {
        guard spec.audit == nil, let action = adminReadActions["\(spec.method) \(spec.pattern)"] else { return spec }
        return spec.audited(as: action)
    }

    /// "METHOD pattern" of every route, for the access-table test.
    package static var routeSignatures: [String] { specs.map { "\($0.method) \($0.pattern)" } }
    package static var routeAccess: [String: Access] {
        Dictionary(uniqueKeysWithValues: specs.map { ("\($0.method) \($0.pattern)", $0.access) })
    }

    /// Every route of `specs` on one router, each run through `Guard`.
    static func router(_ s: Services) -> Router {
        var r = Router()
        for spec in specs {
            r.add(spec.method, spec.pattern) { req, p throws(Problem) in Guard.run(s, spec, req, p) }
        }
        return r
    }

    /// Whether `id` has the shape of an analysis id (26 characters of Crockford base32, upper case).
    static func validID(_ id: String) -> Bool {
        id.count == 26 && id.unicodeScalars.allSatisfy { ("0"..."9").contains($0) || ("A"..."Z").contains($0) }
    }

}
