import Foundation
import MediscopeAuth
import MediscopeServer

/// The session and CSRF cookies. Both are browser-session cookies (no Max-Age: the server ends the
/// session at its idle or absolute limit), SameSite=Strict, Path=/, never a Domain. When the request came
/// over TLS, or the configured public URL is https, they are Secure and named with the `__Host-` prefix,
/// which browsers accept only from a secure origin for exactly this host (no subdomain can set them).
enum Cookies {
    static let sessionName = "mediscope_session"
    static let csrfName = "mediscope_csrf"
    static let hostPrefix = "__Host-"

    /// The names and the Secure attribute cookies of one request get.
    struct Names {
        let secure: Bool
        let session: String
        let csrf: String
        /// The other naming (unprefixed on a Secure deployment): never read, expired when sent.
        var legacy: [String] { secure ? [Cookies.sessionName, Cookies.csrfName] : [] }
    }

    /// Secure (and `__Host-` names) when nginx says TLS, or the configured public URL is https.
    static func names(_ s: Services, _ req: HTTPRequest) -> Names {
        let secure = req.isTLS || s.config.publicURLIsHTTPS
        let prefix = secure ? hostPrefix : ""
        return Names(secure: secure, session: prefix + sessionName, csrf: prefix + csrfName)
    }

    static func parse(_ header: String?) -> [String: String] {
        var cookies: [String: String] = [:]
        for pair in (header ?? "").split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2, cookies[parts[0]] == nil { cookies[parts[0]] = parts[1] }
        }
        return cookies
    }

    /// A browser-session cookie (no Max-Age).
    static func set(_ name: String, _ value: String, httpOnly: Bool, secure: Bool) -> (String, String) {
        header("\(name)=\(value); Path=/; SameSite=Strict", httpOnly: httpOnly, secure: secure)
    }

    /// Tells the browser to drop the cookie now.
    static func expire(_ name: String, httpOnly: Bool, secure: Bool) -> (String, String) {
        header("\(name)=; Path=/; Max-Age=0; SameSite=Strict", httpOnly: httpOnly, secure: secure)
    }

    private static func header(_ cookie: String, httpOnly: Bool, secure: Bool) -> (String, String) {
        var cookie = cookie
        if httpOnly { cookie += "; HttpOnly" }
        if secure { cookie += "; Secure" }
        return ("Set-Cookie", cookie)
    }

    /// `response` with our cookies that the request should no longer carry expired: both when its session
    /// has ended, and cookies of the legacy naming. A cookie the response sets itself is left alone.
    static func expiringStale(_ response: HTTPResponse, _ s: Services, _ req: HTTPRequest, sessionEnded: Bool) -> HTTPResponse {
        let current = Self.names(s, req)
        let sent = parse(req.header("cookie"))
        var stale = current.legacy.filter { sent[$0] != nil }
        if sessionEnded { stale += [current.session, current.csrf] }
        let setAlready = Set(response.headers.filter { $0.0.lowercased() == "set-cookie" }
            .map { String($0.1.prefix { $0 != "=" }) })
        var result = response
        for name in stale where !setAlready.contains(name) {
            result.headers.append(expire(name, httpOnly: name.hasSuffix(sessionName), secure: current.secure))
        }
        return result
    }
}
