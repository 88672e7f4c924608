import FirebaseTestKit
import Foundation
import MediscopeNet

/// A proxy between Mediscope and the real Firestore emulator that fails on cue: the outage tests'
/// network. Requests are forwarded unchanged (one at a time) while `mode` is `.pass`.
package final class FirestoreFaultProxy: @unchecked Sendable {
    /// What happens to the next requests.
    package enum Mode: Sendable, Equatable {
        /// Forward to the emulator and answer what it answered.
        case pass
        /// Nothing listens on the port: connections are refused.
        case refuse
        /// Wait this long (s), then forward.
        case delay(Double)
        /// Answer this HTTP status with Google's error body for it, never forwarding (429, 503, 400...).
        case status(Int)
        /// Forward (Firestore applies the request), then close the connection without answering.
        case cutAfterForward
    }

    package let emulator: FirestoreEmulator
    package let port: UInt16
    /// host:port, as FIRESTORE_EMULATOR_HOST takes it.
    package var host: String { "127.0.0.1:\(port)" }
    private let lock = NSLock()
    private var current: Mode = .pass
    private var server: ScriptedHTTPServer?
    private var forwarded = 0
    private var onlyCommits = false
    private var answered = 0

    package init(emulator: FirestoreEmulator) throws {
        self.emulator = emulator
        let server = try ScriptedHTTPServer(respond: { _, _ in .cutConnection })
        port = server.port
        server.stop()
        try listen()
    }

    deinit { lock.withLock { server }?.stop() }

    /// The current mode; setting `.refuse` closes the port, leaving it re-opens it.
    package var mode: Mode {
        get { lock.withLock { current } }
        set {
            let old = lock.withLock { () -> Mode in defer { current = newValue }; return current }
            if newValue == .refuse, old != .refuse {
                lock.withLock { () -> ScriptedHTTPServer? in defer { server = nil }; return server }?.stop()
            } else if old == .refuse, newValue != .refuse {
                try? listen()
            }
        }
    }

    /// When true the fault applies to `:commit` calls (writes) only; reads pass.
    package var commitsOnly: Bool {
        get { lock.withLock { onlyCommits } }
        set { lock.withLock { onlyCommits = newValue } }
    }

    /// Requests that reached the emulator through the proxy so far (commits, gets and queries).
    package var forwardedRequests: Int { lock.withLock { forwarded } }
    /// Requests the proxy answered without forwarding, or cut.
    package var faultedRequests: Int { lock.withLock { answered } }

    private func listen() throws {
        let target = URL(string: "http://\(emulator.host)")!
        let fresh = try ScriptedHTTPServer(port: port) { [weak self] request, _ in
            guard let self else { return .cutConnection }
            if self.commitsOnly, !request.path.hasSuffix(":commit") { return self.forward(request, to: target) }
            switch self.mode {
            case .refuse: return .cutConnection
            case .status(let code):
                self.lock.withLock { answered += 1 }
                let status = code == 429 ? "RESOURCE_EXHAUSTED" : code == 503 ? "UNAVAILABLE" : code == 400 ? "INVALID_ARGUMENT" : "INTERNAL"
                return .json(code, #"{"error": {"code": \#(code), "message": "fault proxy", "status": "\#(status)"}}"#)
            case .delay(let seconds):
                Thread.sleep(forTimeInterval: seconds)
                return self.forward(request, to: target)
            case .cutAfterForward:
                _ = self.forward(request, to: target)
                self.lock.withLock { answered += 1 }
                return .cutConnection
            case .pass:
                return self.forward(request, to: target)
            }
        }
        lock.withLock { server = fresh }
    }

    private func forward(_ request: ScriptedHTTPServer.Request, to target: URL) -> ScriptedHTTPServer.Response {
        lock.withLock { forwarded += 1 }
        var headers: [(String, String)] = []
        for name in ["authorization", "content-type"] { if let v = request.headers[name] { headers.append((name, v)) } }
        guard let url = URL(string: request.path, relativeTo: target),
              let response = try? CurlHTTP.perform(HTTPClientRequest(method: request.method, url: url, headers: headers,
                                                                     body: request.body, timeout: 30, maxResponseBytes: 64 << 20))
        else { return .cutConnection }
        return ScriptedHTTPServer.Response(status: response.status, body: response.body)
    }
}
