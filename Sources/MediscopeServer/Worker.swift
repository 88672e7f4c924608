import CFastCGI
import CServerSupport
import Foundation
import Glibc

/// Handles requests inside one worker process. Made after fork, so it may load models, open databases
/// and start threads that the master never has.
package protocol RequestHandler: AnyObject {
    func handle(_ request: HTTPRequest) -> HTTPResponse
    /// Work the worker does when no request waits (e.g. analysing a received DICOM instance): one piece,
    /// returning true when it did one (the worker looks at its sockets, then asks again at once), false
    /// when there is none (the worker waits for a request, up to a second, then asks again). Requests
    /// come first: it is asked only when none is waiting, and one piece delays a request by at most
    /// its own length. `begin()` marks the worker busy once there is a piece to do, so the request time
    /// limit and the crash ledger hold for it as for a request.
    func idleWork(slot: Int, begin: () -> Void) -> Bool
}

extension RequestHandler {
    package func idleWork(slot: Int, begin: () -> Void) -> Bool { false }
}

/// What the application gives the process manager.
package protocol WorkerApplication: Sendable {
    /// Called once in each new worker process, after fork. `slot` is the worker's scoreboard slot.
    func makeHandler(pool: PoolRuntime, slot: Int, server: ServerContext) -> RequestHandler
    /// Bodies above this, for a request to `path`, are refused with 413 before they are read.
    func bodyLimitBytes(path: String) -> Int
    /// Called once in the fork server of a pool with `PoolConfig.preload`, before it forks any worker:
    /// what it loads is shared copy-on-write by every worker of the pool. It must leave no thread
    /// running (fork copies only the calling one). Returns false when something failed to load (the
    /// workers then load it themselves, and readiness says so). Nothing by default.
    func preload(pool: PoolRuntime, server: ServerContext) -> Bool
    /// Names of the background processes the master keeps alive beside the pools (none by default).
    var backgroundProcesses: [String] { get }
    /// Called once in each new background process, after fork; nil for a name the app does not know.
    func makeBackgroundWork(name: String, context: BackgroundContext) -> BackgroundWork?
}

extension WorkerApplication {
    package func preload(pool: PoolRuntime, server: ServerContext) -> Bool { true }
    package var backgroundProcesses: [String] { [] }
    package func makeBackgroundWork(name: String, context: BackgroundContext) -> BackgroundWork? { nil }
}

/// A pool as the running server knows it: its settings, index in the scoreboard and listening socket.
package struct PoolRuntime: Sendable {
    package let index: Int
    /// Replaced on reload, except `listen` and `backlog` (the socket stays bound).
    package internal(set) var config: PoolConfig
    package let listenFD: Int32
}

/// What a worker can see of the server it belongs to (for the status page and metrics).
package struct ServerContext: Sendable {
    package let pools: [PoolRuntime]
    package let scoreboard: Scoreboard
    /// Files and clients charged with worker crashes, and the master's crash-loop state.
    package let crashes: CrashLedger
    package let log: ServerLog
    package let masterPID: Int32

    /// Connections waiting in a pool's listen queue right now, and the queue's bound.
    package func listenQueue(_ pool: PoolRuntime) -> (queued: Int, backlog: Int)? {
        var queued: Int64 = 0, backlog: Int64 = 0
        guard ms_listen_queue(pool.listenFD, &queued, &backlog) == 0 else { return nil }
        return (Int(queued), Int(backlog))
    }
}

/// The accept loop of one worker process. Never returns.
struct WorkerProcess {
    let pool: PoolRuntime
    let slot: Int
    let context: ServerContext
    let app: WorkerApplication
    /// Forked by a fork server: serves only once the master has adopted it (see `awaitAdoption`).
    var adopted = false

    func run() -> Never {
        // libfcgi installs its own SIGTERM/SIGUSR1/SIGPIPE handlers in FCGX_Init; ours go on top.
        FCGX_Init()
        ms_signals_install()
        ms_signals_default_fatal()  // a crash ends the worker at once, with no dump of its memory
        let board = context.scoreboard
        if adopted { awaitAdoption() } else { board.setPID(slot, getpid()) }
        ms_set_parent_death_signal(SIGTERM)
        if getppid() != context.masterPID { exit(0) }

        let handler = app.makeHandler(pool: pool, slot: slot, server: context)
        var served = 0
        // Connections the web server asked to keep open (FCGI_KEEP_CONN), waiting for their next request.
        var kept: [FastCGIConnection] = []
        board.setState(slot, MS_SLOT_IDLE)
        // Whether the last idle work found something, or a request was just served: then the next wait only
        // looks, and more follows.
        var working = false

        while true {
            if ms_signal_take(SIGTERM) != 0 || ms_signal_take(SIGQUIT) != 0 || ms_signal_take(SIGINT) != 0 { break }
            if ms_signal_take(SIGUSR1) != 0 { context.log.reopen() }
            // Signals are blocked except inside this wait, so a stop can never be missed.
            let fds = [pool.listenFD] + kept.map(\.descriptor)
            let ready = fds.withUnsafeBufferPointer { ms_wait_any($0.baseAddress, Int32($0.count), working ? 0 : 1000) }
            if ready < 0 {
                if getppid() != context.masterPID { break }
                // Woken by a stop (the wait returns -1 for a signal too): stop, start no work.
                if ms_signal_take(SIGTERM) != 0 || ms_signal_take(SIGQUIT) != 0 || ms_signal_take(SIGINT) != 0 { break }
                // No request waits: one piece of idle work, if there is one.
                var begun = false
                working = handler.idleWork(slot: slot) {
                    board.workStarted(slot: slot, at: ms_now_ns())
                    begun = true
                }
                if begun {
                    let rss = residentKB()
                    board.workFinished(slot: slot, rssKB: rss)
                    // Idle work ages a worker as a request does: a worker that only analyses a long series
                    // is recycled by the same limits.
                    served += 1
                    if recycle(served: served, rss: rss) { break }
                }
                continue
            }
            // After a request the next wait only looks too: idle work waiting behind it (a received series)
            // goes on at once instead of a second later; a wait finds no work before the full second.
            working = true
            let connection: FastCGIConnection
            if ready == 0 {
                guard let accepted = acceptAllowed() else { continue }  // another worker took it, or refused
                connection = accepted
            } else {
                connection = kept.remove(at: Int(ready) - 1)
            }
            guard connection.accept() else { continue }  // closed by the web server, or not FastCGI

            let started = ms_now_ns()
            board.requestStarted(slot: slot, pool: pool.index, at: started)

            let route = serve(connection, handler)
            connection.finish()
            if connection.descriptor >= 0 {
                if kept.count < pool.config.maxKeptConnections { kept.append(connection) } else { connection.close() }
            }

            served += 1
            let seconds = Double(ms_now_ns() - started) / 1e9
            if pool.config.slowRequestSeconds > 0, seconds >= pool.config.slowRequestSeconds {
                board.add(pool: pool.index, MS_POOL_SLOW_REQUESTS, 1)
                context.log.warning("slow_request", ["pool": .token(.init(pool.config.name)), "route": .token(.init(route)),
                                                     "seconds": .double(seconds)])
            }
            let rss = residentKB()
            board.requestFinished(slot: slot, rssKB: rss)

            if recycle(served: served, rss: rss) { break }
        }
        for connection in kept { connection.close() }
        board.setState(slot, MS_SLOT_EXITING)
        exit(0)
    }

    /// Whether the worker should end after `served` requests and pieces of idle work at `rss` KiB
    /// (pm.max_requests and the memory limit), logged when so.
    private func recycle(served: Int, rss: Int) -> Bool {
        if pool.config.maxRequests > 0, served >= pool.config.maxRequests {
            context.log.info("worker_recycle", ["reason": .word("max_requests"), "requests": .int(served)])
            return true
        }
        if pool.config.memoryLimitMB > 0, rss > pool.config.memoryLimitMB * 1024 {
            context.log.info("worker_recycle", ["reason": .word("memory_limit"), "rss_kb": .int(rss)])
            return true
        }
        return false
    }

    /// A worker from a fork server waits until it is the master's child (its intermediate parent has
    /// exited) and the master has written its pid into its slot: only then does the master know it, so
    /// a worker the master never learnt of (its fork server died before the reply) exits unseen.
    private func awaitAdoption() {
        let deadline = ms_now_ns() + 10_000_000_000
        while getppid() != context.masterPID || context.scoreboard.load(slot, MS_SLOT_PID) != Int64(getpid()) {
            if ms_now_ns() > deadline { exit(0) }
            usleep(1000)
        }
    }

    /// The next waiting connection if its peer may connect; a refused peer is logged (its address only)
    /// and closed. nil when none waits (another worker took it) or it was refused.
    private func acceptAllowed() -> FastCGIConnection? {
        var peer = [CChar](repeating: 0, count: 64)
        let fd = ms_accept(pool.listenFD, &peer, peer.count)
        guard fd >= 0 else { return nil }
        let address = String(cString: peer)
        let allowed = pool.config.allowedClients
        if !allowed.isEmpty, address != "unix", !allowed.contains(address) {
            Glibc.close(fd)
            context.log.warning("connection_refused", ["pool": .token(.init(pool.config.name)), "peer": .token(.init(address))])
            return nil
        }
        return FastCGIConnection(connectionFD: fd)
    }

    /// Reads one request, answers it, and returns the route for the slow log: the pattern it matched
    /// (`ServerLog.noteRoute`), never its path (no query, no record ids).
    private func serve(_ connection: FastCGIConnection, _ handler: RequestHandler) -> String {
        let params = connection.parameters()
        let length = Int(params["CONTENT_LENGTH"] ?? "") ?? 0
        let method = params["REQUEST_METHOD"] ?? "GET"
        let limit = app.bodyLimitBytes(path: params["DOCUMENT_URI"] ?? "")
        if length > limit {
            connection.write(Problem(status: 413, detail: "the request body is \(length) bytes; the limit is \(limit)").response)
            return "\(method) (too large)"
        }
        if length < 0 {
            connection.write(Problem.badRequest("invalid Content-Length").response)
            return "\(method) (bad length)"
        }
        let body = connection.readBody(count: length)
        guard body.count == length else { return "\(method) (client went away)" }
        // Until the app knows the user, a crash from here on is charged to the address.
        context.scoreboard.store(slot, MS_SLOT_CLIENT_KEY, CrashLedger.clientKey(address: params["REMOTE_ADDR"] ?? ""))
        let request = makeRequest(params: params, body: body)
        _ = context.log.takeRoute()   // nothing left over from a request that matched no route
        let response = handler.handle(request)
        connection.write(response)
        return context.log.takeRoute() ?? "\(method) (no route)"
    }
}

/// Resident set size of this process in KiB, from /proc/self/statm.
func residentKB(pid: Int32? = nil) -> Int {
    let path = pid.map { "/proc/\($0)/statm" } ?? "/proc/self/statm"
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE))) / 1024
}
