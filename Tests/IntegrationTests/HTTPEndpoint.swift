import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TestSupport

/// Something tests speak HTTP to (through nginx): one stack, or the balancer of several hosts.
protocol HTTPEndpoint: AnyObject {
    var baseURL: String { get }
    /// Credentials sent when a request names none.
    var defaultAuth: Stack.Auth? { get }
    /// Patient details, passwords and tokens that no log may hold.
    func remember(_ values: some Sequence<String>)
}

extension HTTPEndpoint {
    /// Signs in through nginx; returns the session as a browser would hold it.
    func syncSignIn(_ username: String, password: String = Stack.password) throws -> Stack.Auth {
        let r = try syncRequest("POST", "/api/session", body: Data(#"{"username":"\#(username)","password":"\#(password)"}"#.utf8),
                                contentType: "application/json")
        guard r.status == 201, let csrf = r.json?["csrfToken"] as? String,
              let cookie = r.header("Set-Cookie")?.split(separator: ";").first.map(String.init) else {
            throw StackError("sign-in as \(username) failed: \(r.status)")
        }
        return .session(cookie: cookie, csrf: csrf, origin: baseURL)
    }

    func syncCreateToken(_ session: Stack.Auth) throws -> String {
        let r = try syncRequest("POST", "/api/tokens", body: Data(#"{"name":"tests"}"#.utf8), contentType: "application/json", auth: session)
        if let token = r.json?["token"] as? String { remember([token, String(token.dropFirst(4))]) }
        guard r.status == 201, let token = r.json?["token"] as? String else {
            throw StackError("token creation failed: \(r.status) \(String(decoding: r.body, as: UTF8.self))")
        }
        return token
    }

    /// An API token of `username`, made from a session they signed in to, as a person would.
    func token(for username: String, password: String = Stack.password) throws -> String {
        try syncCreateToken(try syncSignIn(username, password: password))
    }

    func apply(_ auth: Stack.Auth?, to req: inout URLRequest) {
        switch auth ?? defaultAuth ?? .none {
        case .bearer(let token): req.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        case .session(let cookie, let csrf, let origin):
            req.setValue(cookie, forHTTPHeaderField: "Cookie")
            if let csrf { req.setValue(csrf, forHTTPHeaderField: "X-CSRF-Token") }
            if let origin { req.setValue(origin, forHTTPHeaderField: "Origin") }
        case .none: break
        }
    }

    func request(_ method: String, _ path: String, body: Data? = nil, contentType: String? = nil, auth: Stack.Auth? = nil,
                 headers: [String: String] = [:]) async throws -> Stack.Response {
        var req = URLRequest(url: URL(string: baseURL + path)!)
        req.httpMethod = method
        req.timeoutInterval = 60
        if let contentType { req.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        apply(auth, to: &req)
        for (k, v) in headers { req.setValue(v, forHTTPHeaderField: k) }
        req.httpBody = body
        let config = URLSessionConfiguration.ephemeral
        config.httpMaximumConnectionsPerHost = 64
        let session = URLSession(configuration: config)
        defer { session.finishTasksAndInvalidate() }
        let (data, response) = try await session.data(for: req)
        let http = response as! HTTPURLResponse
        var headers: [String: String] = [:]
        for (k, v) in http.allHeaderFields { headers["\(k)"] = "\(v)" }
        return Stack.Response(status: http.statusCode, headers: headers, body: data)
    }

    /// Blocking variant for set-up and polling code. Uses a completion handler, not Swift concurrency,
    /// so waiting never ties up a thread of the cooperative pool.
    func syncRequest(_ method: String, _ path: String, body: Data? = nil, contentType: String? = nil, auth: Stack.Auth? = nil,
                     timeout: Double = 30) throws -> Stack.Response {
        var req = URLRequest(url: URL(string: baseURL + path)!)
        req.httpMethod = method
        req.timeoutInterval = timeout
        req.httpBody = body
        if let contentType { req.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        apply(auth, to: &req)
        let box = LockedBox<Result<Stack.Response, Error>?>(nil)
        let semaphore = DispatchSemaphore(value: 0)
        let session = URLSession(configuration: .ephemeral)
        defer { session.finishTasksAndInvalidate() }
        session.dataTask(with: req) { data, response, error in
            if let http = response as? HTTPURLResponse {
                var headers: [String: String] = [:]
                for (k, v) in http.allHeaderFields { headers["\(k)"] = "\(v)" }
                box.mutate { $0 = .success(Stack.Response(status: http.statusCode, headers: headers, body: data ?? Data())) }
            } else {
                box.mutate { $0 = .failure(error ?? StackError("no response")) }
            }
            semaphore.signal()
        }.resume()
        semaphore.wait()
        return try box.value!.get()
    }

    func upload(image: Data, filename: String = "scan.jpg", fields: [String: String] = ["patient_id": "P-TEST-1"],
                imageField: String = "image", auth: Stack.Auth? = nil) async throws -> Stack.Response {
        remember(fields.values)
        let (body, type) = Multipart.body(fields: fields, files: [(imageField, filename, image)])
        return try await request("POST", "/api/analyses", body: body, contentType: type, auth: auth)
    }

    func status() throws -> [String: Any] {
        try #require(try syncRequest("GET", "/api/status").json)
    }

    /// The report of analysis `id` once the report job has written its draft (a deadline of 60 s).
    func draft(_ id: String) async throws -> [String: Any] {
        var report: [String: Any] = [:]
        let written = try await eventually(timeout: 60, every: .milliseconds(200)) {
            report = try #require(try await request("GET", "/api/analyses/\(id)/report").json)
            return report["status"] as? String == "draft"
        }
        try #require(written, "no draft: \(report)")
        return report
    }
}
