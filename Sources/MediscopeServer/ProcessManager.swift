import CServerSupport
import Foundation
import Glibc

/// The master process: owns the listening sockets, forks and supervises the workers (PHP-FPM style).
/// Single-threaded and free of libtorch, so fork() is safe; everything heavy happens in the workers.
package final class ProcessManager {
    let config: ProcessManagerConfig
    let app: WorkerApplication
    let log: ServerLog
    let scoreboard: Scoreboard
    /// Files and clients charged with worker crashes; the crash-loop state for readiness and status.
    let crashes: CrashLedger
    private(set) var pools: [PoolRuntime] = []
    /// Pools whose socket a service manager passed (socket activation): never unlinked at stop.
    private var inheritedPools: Set<Int> = []
    /// Called on SIGHUP/SIGUSR2 to re-read the configuration. A throw keeps the current one (logged as
    /// `reload_config_error`, the reason on standard error); the new pool settings apply to the new
    /// workers, except a pool's listen address and backlog (a restart binds those).
    package var reloadConfig: (() throws -> ProcessManagerConfig)?

    struct Child {
        let pool: Int
        let slot: Int
        let generation: Int
        let started: Double
        /// Set once the worker was told to finish; past it, the worker is killed.
        var stopDeadline: Double?
        var stopping: Bool { stopDeadline != nil }
        /// Killed by the master: its request ran past the time limit, or it outlived its stop deadline.
        var killed: Kill?
    }
    enum Kill { case timeLimit, stopDeadline }
    var children: [pid_t: Child] = [:]
    /// Per preloading pool, its fork server (ProcessManager+ForkServers.swift); and those told to
    /// finish at a reload, by pid, until they are reaped.
    var forkServers: [Int: ForkServerLink] = [:]
    var retiredForkServers: [pid_t: ForkServerLink] = [:]
    /// Background processes (no pool, no slot): pid -> name, and when each name may start again.
    var background: [pid_t: (name: String, started: Double)] = [:]
    var backgroundRespawnAfter: [String: Double] = [:]
    var backgroundBackoff: [String: Double] = [:]
    private(set) var generation = 1
    private var desiredWorkers: [Int] = []
    private var crashLoop: CrashLoopRule
    private var respawnAfter: [Int: Double] = [:]     // pool -> monotonic time
    private(set) var stopping = false
    private var stopDeadline = 0.0

    /// A master for `config`'s pools; maps the scoreboard (throws when it cannot) but binds nothing yet.
    package init(config: ProcessManagerConfig, app: WorkerApplication, log: ServerLog) throws {
        self.config = config
        self.app = app
        self.log = log
        self.scoreboard = try Scoreboard()
        self.crashes = try CrashLedger()
        crashLoop = CrashLoopRule(config)
    }

    /// Binds every pool's socket. Separate from run() so callers can report bind errors before forking.
    /// Throws when the pools or their workers do not fit the scoreboard, or a socket cannot be bound.
    package func bind() throws {
        guard config.pools.count <= Scoreboard.poolCount else {
            throw ServerError("\(config.pools.count) pools are configured; the scoreboard has room for \(Scoreboard.poolCount)")
        }
        let workers = config.pools.reduce(0) { $0 + max($1.workers, 0) }
        guard workers <= Scoreboard.slotCount else {
            throw ServerError("\(workers) workers are configured; the scoreboard has room for \(Scoreboard.slotCount)")
        }
        // Sockets a service manager holds open for us (systemd's socket activation): across a restart,
        // connections wait in their queues instead of being refused, so an upgrade fails no request.
        var inherited = try Self.inheritedSockets()
        let listened = Set(config.pools.map { Self.inheritanceKey($0.listen) })
        // A socket no pool listens on (pools moved to TCP, or other paths): the pools bind their own, as
        // without systemd, and the operator is told; refusing to start would take the service down.
        for (key, fd) in inherited where !listened.contains(key) {
            log.warning("socket_unused", ["listen": .token(.init(key.hasPrefix("tcp:") ? "tcp" : "unix"))])
            FileHandle.standardError.write(Data(("mediscope serve: the service manager passed a socket listening on \(key) that no pool "
                                                 + "listens on; it is left unused (mask its socket unit, or give a pool that listen address)\n").utf8))
            close(fd)
            inherited[key] = nil
        }
        for (i, pool) in config.pools.enumerated() {
            let fd: Int32
            if let taken = inherited.removeValue(forKey: Self.inheritanceKey(pool.listen)) {
                pools.append(PoolRuntime(index: i, config: pool, listenFD: taken))
                inheritedPools.insert(i)
                log.info("socket_inherited", ["pool": .token(.init(pool.name))])
                continue
            }
            switch pool.listen {
            case .unix(let path):
                try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                         withIntermediateDirectories: true)
                fd = listenUnix(path, backlog: pool.backlog)
                if fd >= 0, let group = config.socketGroup {
                    guard let entry = getgrnam(group) else { throw ServerError("socket.group \(group) does not exist") }
                    guard chown(path, uid_t.max, entry.pointee.gr_gid) == 0 else {
                        throw ServerError("cannot give \(path) to group \(group): \(errnoText())")
                    }
                }
            case .tcp(let host, let port):
                fd = ms_listen_tcp(host, Int32(port), Int32(pool.backlog))
            }
            guard fd >= 0 else {
                if case .unix(let path) = pool.listen, errno == EADDRINUSE {
                    // Taking the path would leave that process, or systemd's socket unit, listening on nothing.
                    throw ServerError("cannot listen on \(pool.listen): another process listens on \(path): a running server, or "
                                      + "systemd's socket units (systemctl stop mediscope.service mediscope-inference.socket mediscope-io.socket)")
                }
                throw ServerError("cannot listen on \(pool.listen): \(errnoText())")
            }
            pools.append(PoolRuntime(index: i, config: pool, listenFD: fd))
        }
        desiredWorkers = config.pools.map(\.workers)
    }

    /// `ms_listen_unix`, waiting while another process listens on the file: the workers of a master that
    /// just died (a crash, a kill) finish their requests before they exit, within `stopTimeoutSeconds`.
    /// A listener still there after that (another server, systemd's socket unit) keeps its file: -1 with
    /// errno EADDRINUSE.
    private func listenUnix(_ path: String, backlog: Int) -> Int32 {
        var fd = ms_listen_unix(path, Int32(backlog), Int32(config.socketMode))
        guard fd < 0, errno == EADDRINUSE else { return fd }
        let seconds = config.stopTimeoutSeconds + 5
        log.warning("socket_in_use", ["listen": .token(.init("unix")), "wait_seconds": .double(seconds)])
        FileHandle.standardError.write(Data(("mediscope serve: another process listens on \(path); waiting up to \(Int(seconds)) s "
                                             + "for it to exit\n").utf8))
        let deadline = ms_now_ns() + Int64(seconds * 1e9)
        var error = EADDRINUSE
        while error == EADDRINUSE, ms_now_ns() < deadline {
            usleep(100_000)
            fd = ms_listen_unix(path, Int32(backlog), Int32(config.socketMode))
            error = fd < 0 ? errno : 0
        }
        errno = error
        return fd
    }

    /// The listening sockets passed by a service manager, by `inheritanceKey` of their address. Two
    /// with one key (one port on two addresses) cannot both serve a pool: an error.
    static func inheritedSockets() throws -> [String: Int32] {
        let count = ms_inherited_listen_fds()
        var sockets: [String: Int32] = [:]
        for fd in Int32(3)..<Int32(3 + count) {
            var text = [CChar](repeating: 0, count: 256)
            guard ms_inherited_listen_fd_describe(fd, &text, text.count) == 0 else {
                throw ServerError("descriptor \(fd) from the service manager is not a listening unix or TCP stream socket: \(errnoText())")
            }
            var key = String(cString: text)
            if key.hasPrefix("unix:") { key = inheritanceKey(.unix(path: String(key.dropFirst(5)))) }
            guard sockets[key] == nil else {
                throw ServerError("the service manager passed two sockets listening on \(key); a pool takes one")
            }
            sockets[key] = fd
        }
        return sockets
    }

    /// How an inherited socket is matched to a pool: a unix socket by its path (its folder resolved), TCP by its port.
    static func inheritanceKey(_ listen: ListenAddress) -> String {
        switch listen {
        case .unix(let path):
            // Through the folder's real path: a pool at /var/run/mediscope/io.sock takes the socket systemd
            // bound at /run/mediscope/io.sock (one file), instead of leaving it unused and finding it in use.
            guard let folder = realpath((path as NSString).deletingLastPathComponent, nil) else { return "unix:\(path)" }
            defer { free(folder) }
            return "unix:" + (String(cString: folder) as NSString).appendingPathComponent((path as NSString).lastPathComponent)
        case .tcp(_, let port):
            return "tcp:\(port)"
        }
    }

    /// What workers see of this server: the bound pools, the scoreboard, the log and the master's pid.
    package var context: ServerContext {
        ServerContext(pools: pools, scoreboard: scoreboard, crashes: crashes, log: log, masterPID: getpid())
    }

    /// Runs until a stop signal; returns the exit status.
    package func run() -> Int32 {
        guard ms_signals_install() == 0 else {
            log.error("signals_failed")
            return 1
        }
        // Workers forked by a fork server become the master's children when their intermediate exits.
        if pools.contains(where: { $0.config.preload }) && ms_set_child_subreaper() != 0 {
            log.error("subreaper_failed")
            return 1
        }
        startForkServers()
        for pool in pools {
            for _ in 0..<desiredWorkers[pool.index] { spawn(pool) }
        }
        for name in app.backgroundProcesses { spawnBackground(name) }
        log.info("master_ready", ["pools": .int(pools.count), "workers": .int(children.count),
                                  "background": .int(background.count)])

        while true {
            _ = ms_wait(-1, 100)
            _ = ms_signal_take(SIGCHLD)
            reap()
            if ms_signal_take(SIGTERM) != 0 || ms_signal_take(SIGINT) != 0 || ms_signal_take(SIGQUIT) != 0 {
                beginStop()
            }
            if ms_signal_take(SIGHUP) != 0 || ms_signal_take(SIGUSR2) != 0 { reload() }
            if ms_signal_take(SIGUSR1) != 0 {
                log.reopen()
                for pid in Array(children.keys) + Array(background.keys) + forkServerPIDs { kill(pid, SIGUSR1) }
                log.info("logs_reopened")
            }
            if stopping {
                if children.isEmpty && background.isEmpty && forkServerPIDs.isEmpty { break }
                if now() > stopDeadline {
                    for pid in Array(children.keys) + Array(background.keys) + forkServerPIDs { kill(pid, SIGKILL) }
                }
                continue
            }
            killOverdueRequests()
            retireOldGeneration()
            for (pid, child) in children where (child.stopDeadline ?? .infinity) < now() && child.killed == nil {
                kill(pid, SIGKILL)
                children[pid]?.killed = .stopDeadline
            }
            superviseForkServers()
            respawnMissing()
            respawnMissingBackground()
            sampleListenQueues()
            settleCrashLoop()
        }
        for pool in pools {
            close(pool.listenFD)
            // An inherited socket's file is the service manager's, which keeps it for the next start.
            if case .unix(let path) = pool.config.listen, !inheritedPools.contains(pool.index) { unlink(path) }
        }
        log.info("master_stopped")
        return 0
    }

    // MARK: - workers

    private func spawn(_ pool: PoolRuntime) {
        if let link = forkServers[pool.index], !link.disabled {
            askFork(pool, link)
            return
        }
        guard let slot = scoreboard.claimSlot(pool: pool.index, generation: generation) else {
            log.error("no_free_slot", ["pool": .token(.init(pool.config.name))])
            return
        }
        let context = self.context
        let pid = fork()
        if pid == 0 {
            closeForkServerSockets()
            WorkerProcess(pool: pool, slot: slot, context: context, app: app).run()
        }
        guard pid > 0 else {
            scoreboard.setState(slot, MS_SLOT_FREE)
            log.error("fork_failed", ["pool": .token(.init(pool.config.name))])
            return
        }
        scoreboard.setPID(slot, pid)
        children[pid] = Child(pool: pool.index, slot: slot, generation: generation, started: now())
    }

    private func reap() {
        adoptForkedWorkers()
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            guard pid > 0 else { return }
            if let ended = background.removeValue(forKey: pid) {
                backgroundEnded(ended.name, started: ended.started, status: status)
                continue
            }
            if forkServerEnded(pid, status: status) { continue }
            // A fork server's reply is sent before its worker can be reaped here: read it, then look again.
            if children[pid] == nil { adoptForkedWorkers() }
            // Otherwise an intermediate child of a fork server that died, or a worker never adopted.
            guard let child = children.removeValue(forKey: pid) else { continue }
            // Read before the slot is freed: was it busy, and with what.
            let busy = scoreboard.requestStartedNs(child.slot) != nil || child.killed == .timeLimit
            let subject = scoreboard.requestSubject(child.slot)
            scoreboard.setState(child.slot, MS_SLOT_FREE)
            let ended = ms_exit_status_decode(status)
            let abnormal = ended.signaled != 0 || (ended.exited != 0 && ended.code != 0)
            if stopping || child.killed == .stopDeadline { continue }
            let cause: CrashLedger.Cause = child.killed == .timeLimit ? .timeLimit
                : ended.signaled != 0 ? .signal(ended.signal) : .exit(ended.code)
            // A request that crashed its worker is charged, also in a generation being retired.
            if abnormal && busy { chargeCrash(child, pid: pid, cause: cause, client: subject.client, content: subject.content) }
            if child.stopping || child.generation != generation { continue }
            scoreboard.add(pool: child.pool, MS_POOL_RESTARTS, 1)
            guard abnormal else {
                crashLoop.endedNormally(pool: child.pool)
                continue
            }
            var delay = 0.0
            if !busy {
                // Without a request: only these can mean a broken deployment.
                scoreboard.add(pool: child.pool, ended.signaled != 0 ? MS_POOL_CRASHES_IDLE_SIGNAL : MS_POOL_CRASHES_IDLE_EXIT, 1)
                let outcome = crashLoop.crashed(pool: child.pool, at: now(), lived: now() - child.started)
                delay = outcome.delay
                if delay > 0 { respawnAfter[child.pool] = max(respawnAfter[child.pool] ?? 0, now() + delay) }
                if outcome.began {
                    crashes.add(MS_LEDGER_CRASH_LOOPS, 1)
                    crashes.store(MS_LEDGER_CRASH_LOOP_SINCE_UNIX, Int64(Date().timeIntervalSince1970))
                    log.error("crash_loop", ["pool": .token(.init(pools[child.pool].config.name)),
                                             "crashes": .int(crashLoop.recent.count), "limit": .int(config.crashLimit),
                                             "window_s": .double(config.crashWindowSeconds)])
                }
                publishCrashLoop()
            }
            log.warning("worker_died", ["pool": .token(.init(pools[child.pool].config.name)), "worker_pid": .int(Int(pid)),
                                        "during": .word(busy ? "request" : "idle"), "cause": .token(.init(cause.kind)),
                                        "signal_name": .token(.init(Self.signalName(ended.signaled != 0 ? Int(ended.signal) : 0))),
                                        "core_dumped": .bool(ended.core_dumped != 0),
                                        "exit_code": .int(ended.exited != 0 ? Int(ended.code) : 0),
                                        "respawn_delay_s": .double(delay)])
        }
    }

    /// Charges the crash of a worker busy with a request to that request's file and client.
    private func chargeCrash(_ child: Child, pid: pid_t, cause: CrashLedger.Cause, client: Int64, content: Int64) {
        let field: ms_pool_field = switch cause {
        case .signal: MS_POOL_CRASHES_REQUEST_SIGNAL
        case .timeLimit: MS_POOL_CRASHES_REQUEST_TIME_LIMIT
        case .exit: MS_POOL_CRASHES_REQUEST_EXIT
        }
        scoreboard.add(pool: child.pool, field, 1)
        let rules = CrashLedger.Rules(config)
        let file = crashes.charge(.files, key: content, cause: cause, rules: rules)
        // Past the time limit without a file to decode, a request was slow for other reasons (the store,
        // a remote service under load): its client is not to blame.
        let charged = cause == .timeLimit && content == 0 ? nil : crashes.charge(.clients, key: client, cause: cause, rules: rules)
        var fields: [String: LogField] = ["pool": .token(.init(pools[child.pool].config.name)), "worker_pid": .int(Int(pid)),
                                          "cause": .token(.init(cause.description))]
        if let file { fields["file"] = .token(.init(CrashLedger.prefix(file.key))); fields["file_crashes"] = .int(file.crashes) }
        if let charged {
            fields["client"] = .token(.init(CrashLedger.prefix(charged.key)))
            fields["client_crashes"] = .int(charged.crashes)
            fields["client_refused"] = .bool(charged.refusedUntilNs > 0)
        }
        log.warning("request_crashed", fields)
    }

    private func respawnMissing() {
        for pool in pools {
            if let t = respawnAfter[pool.index], now() < t { continue }
            respawnAfter[pool.index] = nil
            let live = children.values.filter { $0.pool == pool.index && !$0.stopping && $0.generation == generation }.count
                + (forkServers[pool.index]?.pendingCount(generation: generation) ?? 0)
            for _ in live..<max(live, desiredWorkers[pool.index]) { spawn(pool) }
        }
    }

    private func killOverdueRequests() {
        let nowNs = ms_now_ns()
        for (pid, child) in children {
            let limit = pools[child.pool].config.requestTimeoutSeconds
            guard limit > 0 else { continue }
            guard child.killed == nil else { continue }
            if let started = scoreboard.requestStartedNs(child.slot), Double(nowNs - started) / 1e9 > limit {
                kill(pid, SIGKILL)
                children[pid]?.killed = .timeLimit
                scoreboard.add(pool: child.pool, MS_POOL_KILLED_REQUESTS, 1)
                log.warning("request_timeout", ["pool": .token(.init(pools[child.pool].config.name)), "worker_pid": .int(Int(pid)),
                                                "limit_s": .double(limit)])
            }
        }
    }

    private func sampleListenQueues() {
        let context = self.context
        for pool in pools {
            if let q = context.listenQueue(pool) {
                scoreboard.raise(pool: pool.index, MS_POOL_MAX_LISTEN_QUEUE, to: Int64(q.queued))
            }
        }
    }

    /// Pools whole and quiet again leave the crash loop; readiness follows.
    private func settleCrashLoop() {
        guard crashLoop.isLooping else { return }
        let ended = crashLoop.settle(at: now()) { pool in
            let ready = children.values.filter {
                $0.pool == pool && $0.generation == generation && !$0.stopping
                    && [MS_SLOT_IDLE, MS_SLOT_BUSY].contains(scoreboard.state($0.slot))
            }
            return ready.count >= desiredWorkers[pool]
        }
        publishCrashLoop()
        if ended { log.info("crash_loop_ended", ["window_s": .double(config.crashWindowSeconds)]) }
    }

    /// What the status page, metrics and /api/ready show of the crash loop.
    private func publishCrashLoop() {
        crashes.store(MS_LEDGER_CRASH_LOOP, crashLoop.isLooping ? 1 : 0)
        crashes.store(MS_LEDGER_RESPAWN_DELAY_MS, Int64(crashLoop.longestDelay * 1000))
    }

    // MARK: - reload and stop

    /// New workers start accepting first; old ones are told to finish only once the new ones are ready.
    private func reload() {
        if let reloadConfig {
            do {
                let fresh = try reloadConfig()
                for (i, pool) in fresh.pools.enumerated() where i < pools.count && pool.name == pools[i].config.name {
                    var config = pool
                    if config.listen != pools[i].config.listen || config.backlog != pools[i].config.backlog {
                        log.warning("reload_keeps_listen", ["pool": .token(.init(pool.name))])
                        config.listen = pools[i].config.listen
                        config.backlog = pools[i].config.backlog
                    }
                    pools[i].config = config
                    desiredWorkers[i] = config.workers
                }
            } catch {
                log.error("reload_config_error")
                FileHandle.standardError.write(Data("mediscope: reload: \(error); the running configuration stays\n".utf8))
                return
            }
        }
        generation += 1
        // The reload may bring a fixed model or configuration: every file and client gets a new chance.
        crashes.forgetAll()
        log.info("reload", ["generation": .int(generation)])
        // Background processes finish their round and are started again with the new code; fork servers
        // are replaced now, so the new workers are forked from what is on disk today.
        for pid in background.keys { kill(pid, SIGQUIT) }
        replaceForkServers()
        for pool in pools {
            for _ in 0..<desiredWorkers[pool.index] { spawn(pool) }
        }
    }

    private func retireOldGeneration() {
        let old = children.filter { $0.value.generation != generation && !$0.value.stopping }
        guard !old.isEmpty else { return }
        for pool in pools {
            let fresh = children.values.filter { $0.pool == pool.index && $0.generation == generation }
            let ready = fresh.filter { scoreboard.state($0.slot) == MS_SLOT_IDLE || scoreboard.state($0.slot) == MS_SLOT_BUSY }
            guard ready.count >= min(desiredWorkers[pool.index], fresh.count), !fresh.isEmpty else { continue }
            for (pid, child) in old where child.pool == pool.index {
                kill(pid, SIGQUIT)
                children[pid]?.stopDeadline = now() + config.stopTimeoutSeconds
            }
        }
    }

    private func beginStop() {
        guard !stopping else { return }
        stopping = true
        stopDeadline = now() + config.stopTimeoutSeconds
        log.info("stopping", ["workers": .int(children.count), "background": .int(background.count)])
        for pid in Array(children.keys) + Array(background.keys) { kill(pid, SIGTERM) }
        stopForkServers()
    }

    func now() -> Double { Double(ms_now_ns()) / 1e9 }

    /// "SIGSEGV" for 11; "none" for 0; "SIG<n>" for a number without a name.
    static func signalName(_ signal: Int) -> String {
        guard signal > 0 else { return "none" }
        return ms_signal_name(Int32(signal)).map { String(cString: $0) } ?? "SIG\(signal)"
    }
}
