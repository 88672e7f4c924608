/// Matches method + path patterns like `/api/analyses/{id}/heatmaps/{result}.webp`.
package struct Router: Sendable {
    package typealias Handler = @Sendable (HTTPRequest, PathParameters) throws(Problem) -> HTTPResponse

    package struct Route: Sendable {
        package let method: String
        package let pattern: String
        let segments: [Segment]
        let handler: Handler
    }

    enum Segment: Sendable, Equatable {
        case literal(String)
        /// `{name}` with an optional literal suffix, e.g. `{result}.webp`.
        case parameter(String, suffix: String)
    }

    package private(set) var routes: [Route] = []

    package init() {}

    package mutating func add(_ method: String, _ pattern: String, _ handler: @escaping Handler) {
        let segments = pattern.split(separator: "/").map { part -> Segment in
            guard part.hasPrefix("{"), let close = part.firstIndex(of: "}") else { return .literal(String(part)) }
            let name = String(part[part.index(after: part.startIndex)..<close])
            return .parameter(name, suffix: String(part[part.index(after: close)...]))
        }
        routes.append(Route(method: method, pattern: pattern, segments: segments, handler: handler))
    }

    /// The route's answer, as sent for the request's method (`HTTPResponse.answering`): a GET's 200 with
    /// its ETag (or a 304), a HEAD with every header a GET would get, Content-Length included, and no body.
    package func handle(_ request: HTTPRequest) -> HTTPResponse {
        route(request).answering(request)
    }

    private func route(_ request: HTTPRequest) -> HTTPResponse {
        let parts = request.path.split(separator: "/").map(String.init)
        var allowed: [String] = []
        for route in routes {
            guard let params = match(route.segments, parts) else { continue }
            guard route.method == request.method || (route.method == "GET" && request.method == "HEAD") else {
                allowed.append(route.method)
                continue
            }
            do {
                return try route.handler(request, params)
            } catch {
                return error.response
            }
        }
        if !allowed.isEmpty {
            var r = Problem(status: 405, detail: "\(request.method) is not allowed here").response
            r.headers.append(("Allow", allowed.joined(separator: ", ")))
            return r
        }
        return Problem.notFound("no route for \(request.method) \(request.path)").response
    }

    private func match(_ segments: [Segment], _ parts: [String]) -> PathParameters? {
        guard segments.count == parts.count else { return nil }
        var params = PathParameters()
        for (segment, part) in zip(segments, parts) {
            switch segment {
            case .literal(let literal):
                guard literal == part else { return nil }
            case .parameter(let name, let suffix):
                guard part.hasSuffix(suffix), part.count > suffix.count else { return nil }
                params.values[name] = String(part.dropLast(suffix.count))
            }
        }
        return params
    }
}

package struct PathParameters: Sendable {
    package var values: [String: String] = [:]
    package subscript(_ name: String) -> String { values[name] ?? "" }
}
