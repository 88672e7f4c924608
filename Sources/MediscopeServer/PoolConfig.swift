import Foundation

/// Where a pool listens.
package enum ListenAddress: Sendable, Equatable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)

    /// `unix:/path/to.sock`, `tcp:127.0.0.1:9000` or `tcp:[::1]:9000` (also `tcp:::1:9000`).
    package init?(_ text: String) {
        if text.hasPrefix("unix:") {
            self = .unix(path: String(text.dropFirst(5)))
        } else if text.hasPrefix("tcp:"), let colon = text.lastIndex(of: ":"), colon > text.index(text.startIndex, offsetBy: 3),
                  let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) {
            var host = text[text.index(text.startIndex, offsetBy: 4)..<colon]
            if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }  // tcp:[::1]:9000
            self = .tcp(host: String(host), port: port)
        } else {
            return nil
        }
    }

    package var description: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .tcp(let host, let port): "tcp:\(host):\(port)"
        }
    }
}

/// One pool of identical workers on one socket, managed like a PHP-FPM static pool.
package struct PoolConfig: Sendable, Equatable {
    package var name: String
    package var listen: ListenAddress
    package var workers: Int
    package var backlog: Int
    /// Recycle a worker after this many requests (0: never).
    package var maxRequests: Int
    /// Recycle a worker whose resident memory passes this after a request (0: no limit).
    package var memoryLimitMB: Int
    /// A request running longer is killed with its worker (0: no limit).
    package var requestTimeoutSeconds: Double
    /// Requests slower than this are counted and logged.
    package var slowRequestSeconds: Double
    /// Addresses allowed to connect to a TCP pool (PHP-FPM's `listen.allowed_clients`): numeric IPv4 or
    /// IPv6, exact match; empty: any. FastCGI has no authentication of its own, so a TCP pool should name
    /// its load balancer here (and sit on a private network). Unix sockets are guarded by file modes.
    package var allowedClients: [String] = []
    /// Connections one worker keeps open for the web server (FCGI_KEEP_CONN) at most; beyond, it closes them.
    package var maxKeptConnections = 16
    /// Fork the workers from a fork server that ran `WorkerApplication.preload` first (gunicorn's
    /// `preload_app`, with the master kept out of it): what it loaded (the models) is shared
    /// copy-on-write by every worker and ready when one starts. The master stays free of it.
    package var preload = false

    package init(name: String, listen: ListenAddress, workers: Int, backlog: Int, maxRequests: Int, memoryLimitMB: Int,
                requestTimeoutSeconds: Double, slowRequestSeconds: Double) {
        self.name = name; self.listen = listen; self.workers = workers; self.backlog = backlog
        self.maxRequests = maxRequests; self.memoryLimitMB = memoryLimitMB
        self.requestTimeoutSeconds = requestTimeoutSeconds; self.slowRequestSeconds = slowRequestSeconds
    }
}

package struct ProcessManagerConfig: Sendable {
    package var pools: [PoolConfig]
    /// How long a graceful stop or reload waits for busy workers before killing them.
    package var stopTimeoutSeconds: Double = 20
    /// The crash-loop rule, PHP-FPM's `emergency_restart_threshold` / `emergency_restart_interval` with
    /// one difference: only abnormal exits of workers that were *not* busy with a request (crashing at
    /// start, or idle) count, since only those can mean a broken deployment; a worker that dies busy
    /// with a request is charged to that request (`CrashLedger`) instead. More such exits than
    /// `crashLimit` within `crashWindowSeconds` start a crash loop: the master logs `crash_loop`,
    /// /api/ready answers not ready, and the crashing pool's workers are started again after a delay
    /// that doubles with each further crash (1 s up to `crashBackoffMaxSeconds`). Where PHP-FPM
    /// restarts itself, the master never stops: the loop ends (`crash_loop_ended`) once the pool has
    /// all its workers up and none crashed without a request for `crashWindowSeconds`.
    package var crashLimit: Int = 10
    /// The window of `crashLimit`, and how long a backed-off pool must stay whole to leave the loop.
    package var crashWindowSeconds: Double = 60
    /// The longest delay before a crash-looping pool's next worker is started.
    package var crashBackoffMaxSeconds: Double = 60
    /// A file whose request crashed a worker is refused (422) for this long after its latest crash,
    /// or until the master restarts or reloads.
    package var poisonedFileSeconds: Double = 86_400
    /// A client (an account, else an address) is refused (429) once this many crashes are charged to
    /// it, each within `clientCrashWindowSeconds` of the one before, until that long after the latest.
    package var clientCrashLimit: Int = 3
    package var clientCrashWindowSeconds: Double = 600
    package var socketMode: Int = 0o660
    /// Group that owns unix sockets (nginx's), nil to keep ours.
    package var socketGroup: String?

    package init(pools: [PoolConfig]) { self.pools = pools }
}
