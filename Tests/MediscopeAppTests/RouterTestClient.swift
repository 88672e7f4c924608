import Foundation
import MediscopeAuth
import MediscopeServer
import TestSupport
@testable import MediscopeApp

/// The API's router in this process: requests in, responses out; no nginx, no socket, no fork (after
/// Hummingbird's router-level test client). Everything behind it is real: accounts and analyses in
/// SQLite in a temporary folder, the repository's models and templates, a scoreboard and crash ledger
/// mapped here (`StandaloneWorker`). What needs nginx (body limits, auth_request, X-Accel-Redirect,
/// slow clients) stays in the integration tests.
final class RouterTestClient {
    let folder = TemporaryFolder("mediscope-router")
    let services: Services
    let router: Router
    /// Where requests come from unless a test says otherwise: not loopback, so operator routes are closed.
    static let remoteAddress = "10.20.30.40"

    init(environment: [String: String] = [:]) throws {
        let config = try AppConfig.load(file: nil, environment: [
            "MEDISCOPE_VAR": folder.path,
            "MEDISCOPE_MANIFEST": Repository.root.appendingPathComponent("models/manifest.json").path,
            "MEDISCOPE_TEMPLATES": Repository.root.appendingPathComponent("templates").path,
        ].merging(environment) { $1 })
        services = Services(config: config, runtime: try StandaloneWorker())
        router = API.router(services)
    }

    /// A user of `organization`, and an API token for them.
    func user(_ name: String, role: Role, organization: String = "org-a") throws -> (user: User, token: String) {
        let accounts = try services.accounts()
        try accounts.ensureOrganization(id: organization, name: "Organisation \(organization)")
        let user = try accounts.addUser(username: name, password: "correct horse battery staple", role: role,
                                        organizationId: organization, displayName: nil)
        return (user, try accounts.createToken(userId: user.id, name: "router tests").token)
    }

    /// A signed-in browser session of `user`: its cookie header and CSRF token.
    func session(_ user: User) throws -> (cookie: String, csrf: String) {
        let (token, csrf, _) = try services.accounts().createSession(userId: user.id)
        return ("\(Cookies.sessionName)=\(token)", csrf)
    }

    /// Sends one request through the router, as nginx would hand it over.
    func send(_ method: String, _ path: String, token: String? = nil, headers: [String: String] = [:], body: [UInt8] = [],
              remoteAddress: String = RouterTestClient.remoteAddress) -> HTTPResponse {
        var all = ["host": "mediscope.test"].merging(headers.map { ($0.key.lowercased(), $0.value) }) { $1 }
        if let token { all["authorization"] = "Bearer \(token)" }
        let (pathOnly, query) = Self.split(path)
        var request = HTTPRequest(method: method, path: pathOnly, query: query.reduce(into: [:]) { $0[$1.0] = $0[$1.0] ?? $1.1 },
                                  headers: all, body: body, remoteAddress: remoteAddress)
        request.queryString = query.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
        return router.handle(request)
    }

    /// A JSON request body, sent with its content type.
    func sendJSON(_ method: String, _ path: String, _ json: String, token: String? = nil, headers: [String: String] = [:]) -> HTTPResponse {
        send(method, path, token: token, headers: headers.merging(["content-type": "application/json"]) { $1 }, body: Array(json.utf8))
    }

    /// The audit entries of `organization`, oldest first.
    func audit(_ organization: String = "org-a") throws -> [AuditEntry] {
        var filter = AuditFilter()
        filter.organizationId = organization
        filter.limit = 1000
        return try services.accounts().auditEntries(filter)
    }

    private static func split(_ path: String) -> (String, [(String, String)]) {
        guard let q = path.firstIndex(of: "?") else { return (path, []) }
        let pairs = path[path.index(after: q)...].split(separator: "&").map { pair -> (String, String) in
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            return (parts[0], parts.count > 1 ? parts[1] : "")
        }
        return (String(path[..<q]), pairs)
    }
}

extension HTTPResponse {
    /// The body as a JSON object, nil when it is not one.
    var json: [String: Any]? { try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] }
    /// The problem's `detail`, for messages.
    var detail: String { json?["detail"] as? String ?? String(decoding: body.prefix(200), as: UTF8.self) }
}
