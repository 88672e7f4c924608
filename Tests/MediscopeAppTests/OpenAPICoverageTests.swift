import Foundation
import Testing
import TestSupport
@testable import MediscopeApp

/// public/openapi.json against the router's own route table (`API.specs`): every route is described, every
/// described operation is a route, and what the document says about who may call it agrees with the table.
/// That the document is valid OpenAPI 3.1, and that the stack answers as it says, is ContractFuzzTests'.
@Suite struct OpenAPICoverageTests {
    /// Operations nginx answers itself, with no route behind them: the document's own address.
    static let servedByNginx: Set<String> = ["GET /api/openapi.json"]

    /// "METHOD /path/{template}" -> the operation object, for every operation of the document.
    static func operations() throws -> [String: [String: Any]] {
        let data = try Data(contentsOf: Repository.root.appendingPathComponent("public/openapi.json"))
        let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        var operations: [String: [String: Any]] = [:]
        let methods: Set = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]
        for (path, item) in paths {
            for (method, operation) in item where methods.contains(method) {
                operations["\(method.uppercased()) \(path)"] = try #require(operation as? [String: Any])
            }
        }
        return operations
    }

    @Test func everyRouteIsDescribedAndEveryDescribedOperationIsARoute() throws {
        let routes = Set(API.routeSignatures)
        let described = Set(try Self.operations().keys)
        #expect(routes.count == API.routeSignatures.count, "a route is in the table twice")
        #expect(routes.subtracting(described).isEmpty,
                "routes missing from public/openapi.json: \(routes.subtracting(described).sorted())")
        #expect(described.subtracting(routes).subtracting(Self.servedByNginx).isEmpty,
                "operations in public/openapi.json that no route answers: \(described.subtracting(routes).subtracting(Self.servedByNginx).sorted())")
        #expect(Self.servedByNginx.isSubset(of: described))
    }

    /// Open routes need no credential in the document; the others need one (and clinical and admin routes
    /// document the 403 a caller of the other role gets).
    @Test func securityAgreesWithTheAccessTable() throws {
        let operations = try Self.operations()
        for (signature, access) in API.routeAccess {
            let operation = try #require(operations[signature], "\(signature) is not described")
            let security = try #require(operation["security"] as? [[String: Any]], "\(signature) states no security")
            let anonymous = security.contains { $0.isEmpty }
            switch access {
            case .everyone:
                #expect(security.count == 1 && anonymous, "\(signature) is open: its security is [{}]")
            case .operatorOrAdmin:
                #expect(anonymous && security.count > 1, "\(signature): loopback without credentials, or an admin's")
            case .signedIn, .clinical, .admin:
                #expect(!anonymous, "\(signature) needs a signed-in caller")
            }
            let statuses = try #require(operation["responses"] as? [String: Any]).keys
            if access == .clinical || access == .admin || access == .operatorOrAdmin {
                #expect(statuses.contains("403"), "\(signature) does not document its 403")
            }
            // Any credential that is sent must be valid, on every route; and any pool may be saturated.
            #expect(statuses.contains("401") && statuses.contains("503"), "\(signature) lacks 401 or 503")
        }
    }

    /// The routes whose handlers read an Idempotency-Key (AnalysisAPI.createAnalysis, ReportAPI.change)
    /// declare the header, and no other does; the list's query parameters are the ones its handler reads.
    @Test func parametersAreTheOnesTheHandlersRead() throws {
        let operations = try Self.operations()
        func parameters(_ signature: String) throws -> [String] {
            let operation = try #require(operations[signature], "\(signature)")
            return (operation["parameters"] as? [[String: Any]] ?? []).compactMap { ($0["name"] ?? $0["$ref"]) as? String }
        }
        let keyed: Set = ["POST /api/analyses", "PUT /api/analyses/{id}/report", "POST /api/analyses/{id}/report/sign",
                          "POST /api/analyses/{id}/report/amend"]
        for signature in operations.keys.sorted() {
            let declares = try parameters(signature).contains("#/components/parameters/IdempotencyKey")
            #expect(declares == keyed.contains(signature), "\(signature): Idempotency-Key declared \(declares)")
        }
        #expect(try Set(parameters("GET /api/analyses")) == ["limit", "cursor", "patient_id"])
    }

    @Test func operationIdsAreUnique() throws {
        let operations = try Self.operations()
        let ids = operations.values.compactMap { $0["operationId"] as? String }
        #expect(ids.count == Set(ids).count && ids.count == operations.count)
    }
}
