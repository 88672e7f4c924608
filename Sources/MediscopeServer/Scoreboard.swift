import CServerSupport
import Foundation

/// The shared-memory scoreboard: every worker updates its slot, the master and the status page read it.
///
/// Every field lives in C (`scoreboard.h`) as a lock-free atomic and is reached only through its
/// index-checked functions, so no access here can tear a value or leave the mapping. An index out of
/// range is a bug in this program and traps with the index named.
package final class Scoreboard: @unchecked Sendable {
    // Shared with forked children; only ever touched through the C functions.
    private let board: OpaquePointer

    /// Maps a fresh scoreboard: every slot free, every counter zero.
    package init() throws {
        guard let board = ms_scoreboard_create(Int64(Date().timeIntervalSince1970)) else {
            throw ServerError("cannot map the scoreboard: \(errnoText())")
        }
        self.board = board
    }

    deinit { ms_scoreboard_destroy(board) }

    /// How many workers the scoreboard can hold at once, over all pools.
    package static let slotCount = Int(MS_MAX_SLOTS)
    /// How many pools the scoreboard has counters for.
    package static let poolCount = Int(MS_MAX_POOLS)

    /// Seconds since the epoch when the scoreboard was mapped (the master's start).
    package var startedUnix: Int64 { ms_scoreboard_started_unix(board) }

    // MARK: - Fields

    func load(_ slot: Int, _ field: ms_slot_field) -> Int64 {
        var value: Int64 = 0
        check(ms_slot_load(board, Int32(clamping: slot), field, &value), "slot", slot)
        return value
    }

    func store(_ slot: Int, _ field: ms_slot_field, _ value: Int64) {
        check(ms_slot_store(board, Int32(clamping: slot), field, value), "slot", slot)
    }

    func add(_ slot: Int, _ field: ms_slot_field, _ delta: Int64) {
        check(ms_slot_add(board, Int32(clamping: slot), field, delta, nil), "slot", slot)
    }

    func load(pool: Int, _ field: ms_pool_field) -> Int64 {
        var value: Int64 = 0
        check(ms_pool_load(board, Int32(clamping: pool), field, &value), "pool", pool)
        return value
    }

    func add(pool: Int, _ field: ms_pool_field, _ delta: Int64) {
        check(ms_pool_add(board, Int32(clamping: pool), field, delta), "pool", pool)
    }

    func store(pool: Int, _ field: ms_pool_field, _ value: Int64) {
        check(ms_pool_store(board, Int32(clamping: pool), field, value), "pool", pool)
    }

    /// Raises a maximum counter (max active workers, longest listen queue) to `value` if it is larger.
    func raise(pool: Int, _ field: ms_pool_field, to value: Int64) {
        check(ms_pool_raise(board, Int32(clamping: pool), field, value), "pool", pool)
    }

    private func check(_ rc: Int32, _ what: StaticString, _ index: Int) {
        precondition(rc == 0, "scoreboard \(what) \(index) is out of range")
    }

    // MARK: - Slots

    /// Master only: a free slot for a new worker, or nil when all are taken.
    func claimSlot(pool: Int, generation: Int) -> Int? {
        let slot = ms_slot_claim(board, Int32(clamping: pool), Int32(clamping: generation), ms_now_ns())
        if slot < 0 {
            precondition(errno == ENOSPC, "scoreboard pool \(pool) is out of range")
            return nil
        }
        return Int(slot)
    }

    func setState(_ slot: Int, _ state: ms_slot_state) { store(slot, MS_SLOT_STATE, Int64(state.rawValue)) }
    func state(_ slot: Int) -> ms_slot_state { ms_slot_state(UInt32(truncatingIfNeeded: load(slot, MS_SLOT_STATE))) }

    /// The slots in use by `pool` (not free), with their states.
    private func slots(of pool: Int) -> [(slot: Int, state: ms_slot_state)] {
        (0..<Self.slotCount).compactMap { i in
            let st = state(i)
            return st != MS_SLOT_FREE && load(i, MS_SLOT_POOL) == Int64(pool) ? (i, st) : nil
        }
    }

    func busyCount(pool: Int) -> Int {
        slots(of: pool).filter { $0.state == MS_SLOT_BUSY }.count
    }

    // MARK: - A worker's own slot

    /// The worker in `slot` has started with process id `pid`.
    func setPID(_ slot: Int, _ pid: pid_t) { store(slot, MS_SLOT_PID, Int64(pid)) }

    /// The worker in `slot` took a request at `startedNs`: busy, counted as accepted, and the pool's
    /// busiest moment raised if this is it.
    func requestStarted(slot: Int, pool: Int, at startedNs: Int64) {
        store(slot, MS_SLOT_CLIENT_KEY, 0)
        store(slot, MS_SLOT_CONTENT_KEY, 0)
        store(slot, MS_SLOT_REQUEST_STARTED_NS, startedNs)
        setState(slot, MS_SLOT_BUSY)
        add(pool: pool, MS_POOL_ACCEPTED, 1)
        raise(pool: pool, MS_POOL_MAX_ACTIVE, to: Int64(busyCount(pool: pool)))
    }

    /// The worker in `slot` answered its request and is idle again with `rssKB` resident.
    /// A worker begins idle work (`RequestHandler.idleWork`): busy, timed like a request, not counted as one.
    func workStarted(slot: Int, at startedNs: Int64) {
        store(slot, MS_SLOT_CLIENT_KEY, 0)
        store(slot, MS_SLOT_CONTENT_KEY, 0)
        store(slot, MS_SLOT_REQUEST_STARTED_NS, startedNs)
        setState(slot, MS_SLOT_BUSY)
    }

    /// Its idle work is done: idle again.
    func workFinished(slot: Int, rssKB: Int) {
        store(slot, MS_SLOT_RSS_KB, Int64(rssKB))
        store(slot, MS_SLOT_REQUEST_STARTED_NS, 0)
        store(slot, MS_SLOT_CONTENT_KEY, 0)
        setState(slot, MS_SLOT_IDLE)
    }

    func requestFinished(slot: Int, rssKB: Int) {
        store(slot, MS_SLOT_RSS_KB, Int64(rssKB))
        add(slot, MS_SLOT_REQUESTS, 1)
        store(slot, MS_SLOT_REQUEST_STARTED_NS, 0)
        store(slot, MS_SLOT_CLIENT_KEY, 0)
        store(slot, MS_SLOT_CONTENT_KEY, 0)
        setState(slot, MS_SLOT_IDLE)
    }

    /// Who and what the request in `slot` is charged to if its worker dies (crashledger.h keys, 0: none).
    func requestSubject(_ slot: Int) -> (client: Int64, content: Int64) {
        (load(slot, MS_SLOT_CLIENT_KEY), load(slot, MS_SLOT_CONTENT_KEY))
    }

    /// When the request in `slot` began (CLOCK_MONOTONIC ns), or nil when the worker is idle.
    func requestStartedNs(_ slot: Int) -> Int64? {
        let started = load(slot, MS_SLOT_REQUEST_STARTED_NS)
        return started > 0 ? started : nil
    }

    /// Records which manifest models (bit i = model i) the worker in `slot` has loaded.
    package func setLoadedModels(slot: Int, mask: Int64) {
        store(slot, MS_SLOT_LOADED_MODELS, mask)
    }

    /// Models loaded by any live worker of `pool`.
    package func loadedModels(pool: Int) -> Int64 {
        slots(of: pool).filter { $0.state == MS_SLOT_IDLE || $0.state == MS_SLOT_BUSY }
            .reduce(0) { $0 | load($1.slot, MS_SLOT_LOADED_MODELS) }
    }

    // MARK: - Status

    /// A copy of one pool's numbers for the status page.
    package func snapshot(pool index: Int) -> PoolSnapshot {
        var idle = 0, active = 0, starting = 0
        var workers: [PoolSnapshot.Worker] = []
        let now = ms_now_ns()
        for (i, st) in slots(of: index) {
            switch st {
            case MS_SLOT_IDLE: idle += 1
            case MS_SLOT_BUSY: active += 1
            case MS_SLOT_STARTING: starting += 1
            default: break
            }
            let started = requestStartedNs(i)
            let file = started == nil ? 0 : load(i, MS_SLOT_CONTENT_KEY)
            workers.append(.init(
                pid: Int(load(i, MS_SLOT_PID)), state: Self.name(st), generation: Int(load(i, MS_SLOT_GENERATION)),
                requests: Int(load(i, MS_SLOT_REQUESTS)), rssKB: Int(load(i, MS_SLOT_RSS_KB)),
                currentRequestMs: started.map { Double(now - $0) / 1e6 },
                currentFile: file == 0 ? nil : CrashLedger.prefix(file),
                uptimeSeconds: Double(now - load(i, MS_SLOT_STARTED_NS)) / 1e9))
        }
        func counter(_ field: ms_pool_field) -> Int { Int(load(pool: index, field)) }
        return PoolSnapshot(
            acceptedRequests: counter(MS_POOL_ACCEPTED), activeWorkers: active, idleWorkers: idle,
            startingWorkers: starting, maxActiveWorkers: counter(MS_POOL_MAX_ACTIVE),
            slowRequests: counter(MS_POOL_SLOW_REQUESTS), killedRequests: counter(MS_POOL_KILLED_REQUESTS),
            restarts: counter(MS_POOL_RESTARTS), maxListenQueue: counter(MS_POOL_MAX_LISTEN_QUEUE),
            crashes: .init(
                duringRequest: ["signal": counter(MS_POOL_CRASHES_REQUEST_SIGNAL), "time_limit": counter(MS_POOL_CRASHES_REQUEST_TIME_LIMIT),
                                "exit": counter(MS_POOL_CRASHES_REQUEST_EXIT)],
                withoutRequest: ["signal": counter(MS_POOL_CRASHES_IDLE_SIGNAL), "exit": counter(MS_POOL_CRASHES_IDLE_EXIT)]),
            workers: workers.sorted { $0.pid < $1.pid },
            forkServer: counter(MS_POOL_FORK_SERVER_STARTS) == 0 ? nil : .init(
                pid: counter(MS_POOL_FORK_SERVER_PID),
                state: Self.name(ms_fork_server_state(UInt32(truncatingIfNeeded: counter(MS_POOL_FORK_SERVER_STATE)))),
                preloadMs: counter(MS_POOL_FORK_SERVER_PRELOAD_MS), preloadFailed: counter(MS_POOL_FORK_SERVER_PRELOAD_FAILED) != 0,
                starts: counter(MS_POOL_FORK_SERVER_STARTS)))
    }

    static func name(_ state: ms_fork_server_state) -> String {
        switch state {
        case MS_FORK_SERVER_PRELOADING: "preloading"
        case MS_FORK_SERVER_READY: "ready"
        case MS_FORK_SERVER_DISABLED: "disabled"
        default: "down"
        }
    }

    static func name(_ state: ms_slot_state) -> String {
        switch state {
        case MS_SLOT_STARTING: "starting"
        case MS_SLOT_IDLE: "idle"
        case MS_SLOT_BUSY: "busy"
        case MS_SLOT_EXITING: "exiting"
        default: "free"
        }
    }
}

/// One pool's numbers as the status page and metrics show them.
package struct PoolSnapshot: Codable, Sendable {
    /// One live worker of the pool.
    package struct Worker: Codable, Sendable {
        /// The worker's process id (0 until it has started).
        package var pid: Int
        /// starting, idle, busy or exiting.
        package var state: String
        /// Which configuration it runs (reloads start a new generation).
        package var generation: Int
        /// Requests it has served.
        package var requests: Int
        /// Resident memory after its last request.
        package var rssKB: Int
        /// How long its current request has run; nil when idle.
        package var currentRequestMs: Double?
        /// The file its current request decodes: the first 8 hex digits of its SHA-256 (what a crash
        /// would be charged to); nil when it decodes none (yet).
        package var currentFile: String?
        /// Since it was forked.
        package var uptimeSeconds: Double
    }
    /// Requests accepted since the pool started.
    package var acceptedRequests: Int
    /// Workers handling a request now.
    package var activeWorkers: Int
    /// Workers waiting for a request now.
    package var idleWorkers: Int
    /// Workers forked but not yet accepting.
    package var startingWorkers: Int
    /// Most workers busy at once.
    package var maxActiveWorkers: Int
    /// Requests slower than the pool's slow-request threshold.
    package var slowRequests: Int
    /// Requests over the time limit (their worker was killed).
    package var killedRequests: Int
    /// Workers respawned after an exit.
    package var restarts: Int
    /// Longest listen queue seen.
    package var maxListenQueue: Int
    /// Abnormal worker exits, by cause (`signal`, `time_limit`, `exit`).
    package struct Crashes: Codable, Sendable {
        /// Busy with a request: charged to that request's file and client.
        package var duringRequest: [String: Int]
        /// At start or idle: what the crash-loop rule counts.
        package var withoutRequest: [String: Int]
    }
    /// Abnormal worker exits since the pool started.
    package var crashes: Crashes
    /// The live workers, by pid.
    package var workers: [Worker]
    /// The process a preloading pool's workers are forked from (`PoolConfig.preload`).
    package struct ForkServer: Codable, Sendable {
        /// Its process id; 0 while none runs (between a crash and its restart).
        package var pid: Int
        /// `preloading`, `ready` (it forks workers), `down` (it died and waits out its back-off) or
        /// `disabled` (it kept dying before it was ready: the master forks the workers itself).
        package var state: String
        /// How long its preload took, in milliseconds (0 until it is ready).
        package var preloadMs: Int
        /// Whether something failed to preload (a model file missing or corrupt: see the log's
        /// `preload_failed`); the workers then try again on first use and answer its error.
        package var preloadFailed: Bool
        /// How many times it was started (reloads and restarts after a crash add one each).
        package var starts: Int
    }
    /// The pool's fork server; nil for a pool whose workers the master forks itself.
    package var forkServer: ForkServer?
}
