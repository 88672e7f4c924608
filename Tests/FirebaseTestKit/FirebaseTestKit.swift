import Crypto
import Foundation
import X509
import _CryptoExtras
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Fixtures for the Firebase tests: a tiny blocking HTTP/1.1 server on 127.0.0.1, generated RSA keys
// with self-signed X.509 certificates, a token signer and an adjustable clock.

/// A one-connection-at-a-time HTTP/1.1 server on its own Thread. Every request gets the current
/// response (`Connection: close`); `requestCount` counts the GET requests it answered.
final class FirebaseTestHTTPServer: @unchecked Sendable {
    struct Response: Sendable {
        var status: Int = 200
        var headers: [(String, String)] = []
        var body: [UInt8] = []
    }

    private final class State: @unchecked Sendable {
        let lock = NSLock()
        var response = Response()
        var requests = 0
        var stopped = false
        let done = DispatchSemaphore(value: 0)
    }

    let port: UInt16
    private let fd: Int32
    private let state = State()

    var url: URL { URL(string: "http://127.0.0.1:\(port)/robot/v1/metadata/x509/securetoken")! }

    init(_ response: Response = Response()) throws {
        state.response = response
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(fd, sa, len) == 0 && listen(fd, 16) == 0 && getsockname(fd, sa, &len) == 0
            }
        }
        guard ok else { close(fd); throw POSIXError(.EADDRNOTAVAIL) }
        self.fd = fd
        self.port = UInt16(bigEndian: addr.sin_port)
        let state = self.state
        let thread = Thread { Self.serve(fd: fd, state: state) }
        thread.start()
    }

    deinit { stop() }

    var requestCount: Int { state.lock.withLock { state.requests } }

    func setResponse(_ response: Response) { state.lock.withLock { state.response = response } }

    /// Stops accepting and closes the listening socket (afterwards connections are refused).
    func stop() {
        let first = state.lock.withLock { () -> Bool in
            defer { state.stopped = true }
            return !state.stopped
        }
        if first { state.done.wait() }
    }

    private static func serve(fd: Int32, state: State) {
        defer { close(fd); state.done.signal() }
        while !state.lock.withLock({ state.stopped }) {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 50) > 0 else { continue }
            let client = accept(fd, nil, nil)
            guard client >= 0 else { continue }
            handle(client: client, state: state)
            close(client)
        }
    }

    private static func handle(client: Int32, state: State) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        let terminator: [UInt8] = Array("\r\n\r\n".utf8)
        while request.count < 65536 {
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return }
            request.append(contentsOf: buffer[0..<n])
            if request.count >= 4, request.suffix(4).elementsEqual(terminator) { break }
        }
        guard request.starts(with: Array("GET ".utf8)) else { return }
        let response = state.lock.withLock { () -> Response in
            state.requests += 1
            return state.response
        }
        var head = "HTTP/1.1 \(response.status) Test\r\nContent-Length: \(response.body.count)\r\nConnection: close\r\n"
        for (name, value) in response.headers { head += "\(name): \(value)\r\n" }
        head += "\r\n"
        var out = Array(head.utf8)
        out.append(contentsOf: response.body)
        var sent = 0
        #if os(Linux)
        let flags = Int32(MSG_NOSIGNAL)
        #else
        let flags: Int32 = 0
        #endif
        while sent < out.count {
            let n = out.withUnsafeBytes { send(client, $0.baseAddress! + sent, $0.count - sent, flags) }
            guard n > 0 else { return } // client hung up (e.g. it refused an oversize body)
            sent += n
        }
    }
}

/// An RSA signing key with its self-signed certificate, as Google publishes them.
struct FirebaseTestKey: Sendable {
    let kid: String
    let privateKey: _RSA.Signing.PrivateKey
    let certificatePEM: String

    init(kid: String) throws {
        self.kid = kid
        privateKey = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let name = try DistinguishedName { CommonName("securetoken.system.gserviceaccount.com") }
        let now = Date()
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(privateKey.publicKey),
            notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(86_400 * 2),
            issuer: name,
            subject: name,
            signatureAlgorithm: .sha256WithRSAEncryption,
            extensions: Certificate.Extensions(),
            issuerPrivateKey: Certificate.PrivateKey(privateKey)
        )
        certificatePEM = try certificate.serializeAsPEM().pemString
    }
}

/// Keys are expensive to generate: made once per test process.
enum FirebaseFixtures {
    static let projectId = "mediscope-test"
    static let keyA = try! FirebaseTestKey(kid: "kid-a-0001")
    static let keyB = try! FirebaseTestKey(kid: "kid-b-0002")
    /// Same kid as keyA, different key material (forgery attempts).
    static let impostorA = try! FirebaseTestKey(kid: "kid-a-0001")

    static func certificatesJSON(_ keys: [FirebaseTestKey]) -> [UInt8] {
        var doc: [String: String] = [:]
        for key in keys { doc[key.kid] = key.certificatePEM }
        return Array(try! JSONSerialization.data(withJSONObject: doc, options: [.sortedKeys]))
    }

    static func certificatesResponse(_ keys: [FirebaseTestKey], cacheControl: String? = "public, max-age=600, must-revalidate, no-transform")
        -> FirebaseTestHTTPServer.Response {
        var headers = [("Content-Type", "application/json; charset=UTF-8")]
        if let cacheControl { headers.append(("Cache-Control", cacheControl)) }
        return .init(status: 200, headers: headers, body: certificatesJSON(keys))
    }

    static func base64URL(_ bytes: some DataProtocol) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func json(_ object: [String: Any]) -> [UInt8] {
        Array(try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
    }

    /// Claims of a good token at `now` for the test project.
    static func claims(now: Date, overrides: [String: Any] = [:], removing: [String] = []) -> [String: Any] {
        let t = now.timeIntervalSince1970.rounded(.down)
        var claims: [String: Any] = [
            "iss": "https://securetoken.google.com/\(projectId)",
            "aud": projectId,
            "sub": "uid-0123456789",
            "user_id": "uid-0123456789",
            "auth_time": Int(t - 300),
            "iat": Int(t - 60),
            "exp": Int(t + 3540),
            "email": "dr.who@example.org",
            "email_verified": true,
            "mediscope_role": "clinician",
            "mediscope_org": "org-42",
            "firebase": ["sign_in_provider": "password", "identities": ["email": ["dr.who@example.org"]]],
        ]
        for (k, v) in overrides { claims[k] = v }
        for k in removing { claims[k] = nil }
        return claims
    }

    /// A compact RS256 JWS signed with `key` (header and payload as given).
    static func token(header: [String: Any], claims: [String: Any], key: FirebaseTestKey) -> String {
        let signingInput = base64URL(json(header)) + "." + base64URL(json(claims))
        let signature = try! key.privateKey.signature(for: SHA256.hash(data: Array(signingInput.utf8)), padding: .insecurePKCS1v1_5)
        return signingInput + "." + base64URL(signature.rawRepresentation)
    }

    static func token(key: FirebaseTestKey, kid: String? = nil, claims: [String: Any]) -> String {
        token(header: ["alg": "RS256", "kid": kid ?? key.kid, "typ": "JWT"], claims: claims, key: key)
    }
}

/// An injectable clock the tests move by hand.
final class FirebaseTestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date
    init(_ start: Date = Date()) { current = start }
    var now: Date { lock.withLock { current } }
    func advance(_ seconds: TimeInterval) { lock.withLock { current = current.addingTimeInterval(seconds) } }
}

/// Counts calls of a fake fetch.
final class FirebaseFetchCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func increment() { lock.withLock { value += 1 } }
    var count: Int { lock.withLock { value } }
}
