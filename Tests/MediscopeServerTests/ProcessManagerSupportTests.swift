import CServerSupport
import Foundation
import Glibc
import Testing
@testable import MediscopeServer

/// The scoreboard, exit statuses and signal names of the process manager (CServerSupport + Scoreboard).
@Suite struct ScoreboardTests {
    @Test func aWorkersLifeShowsInTheSnapshot() throws {
        let board = try Scoreboard()
        let slot = try #require(board.claimSlot(pool: 1, generation: 3))
        #expect(board.state(slot) == MS_SLOT_STARTING)
        board.setPID(slot, 4242)
        board.setState(slot, MS_SLOT_IDLE)
        board.requestStarted(slot: slot, pool: 1, at: ms_now_ns())
        #expect(board.state(slot) == MS_SLOT_BUSY && board.busyCount(pool: 1) == 1 && board.busyCount(pool: 0) == 0)
        #expect(board.requestStartedNs(slot) != nil)
        board.requestFinished(slot: slot, rssKB: 2048)
        board.setLoadedModels(slot: slot, mask: 0b101)

        let snapshot = board.snapshot(pool: 1)
        #expect(snapshot.acceptedRequests == 1 && snapshot.maxActiveWorkers == 1 && snapshot.idleWorkers == 1)
        let worker = try #require(snapshot.workers.first)
        #expect(worker.pid == 4242 && worker.generation == 3 && worker.requests == 1 && worker.rssKB == 2048)
        #expect(worker.state == "idle" && worker.currentRequestMs == nil)
        #expect(board.loadedModels(pool: 1) == 0b101 && board.loadedModels(pool: 0) == 0)
        #expect(board.snapshot(pool: 0).workers.isEmpty)
    }

    @Test func slotsRunOutAndAreReused() throws {
        let board = try Scoreboard()
        let claimed = (0..<Scoreboard.slotCount).compactMap { _ in board.claimSlot(pool: 0, generation: 1) }
        #expect(claimed == Array(0..<Scoreboard.slotCount))
        #expect(board.claimSlot(pool: 0, generation: 1) == nil)
        board.setState(77, MS_SLOT_FREE)
        #expect(board.claimSlot(pool: 0, generation: 2) == 77)
    }

    @Test func everyIndexIsCheckedInC() throws {
        let board = try #require(ms_scoreboard_create(1_700_000_000))
        defer { ms_scoreboard_destroy(board) }
        #expect(ms_scoreboard_started_unix(board) == 1_700_000_000)
        var value: Int64 = 0
        for slot: Int32 in [-1, Int32(MS_MAX_SLOTS), .max] {
            errno = 0
            #expect(ms_slot_load(board, slot, MS_SLOT_PID, &value) == -1 && errno == EINVAL)
            #expect(ms_slot_store(board, slot, MS_SLOT_PID, 1) == -1)
            #expect(ms_slot_add(board, slot, MS_SLOT_REQUESTS, 1, nil) == -1)
        }
        #expect(ms_slot_load(board, 0, MS_SLOT_FIELD_COUNT, &value) == -1)
        for pool: Int32 in [-1, Int32(MS_MAX_POOLS)] {
            #expect(ms_pool_add(board, pool, MS_POOL_ACCEPTED, 1) == -1)
            #expect(ms_pool_raise(board, pool, MS_POOL_MAX_ACTIVE, 1) == -1)
            errno = 0
            #expect(ms_slot_claim(board, pool, 1, 0) == -1 && errno == EINVAL)
        }
        #expect(ms_pool_load(board, 0, MS_POOL_FIELD_COUNT, &value) == -1)
        #expect(ms_slot_load(nil, 0, MS_SLOT_PID, &value) == -1)
    }

    @Test func raiseKeepsTheMaximum() throws {
        let board = try #require(ms_scoreboard_create(0))
        defer { ms_scoreboard_destroy(board) }
        var value: Int64 = 0
        for v: Int64 in [5, 3, 9, 9, -1] { #expect(ms_pool_raise(board, 2, MS_POOL_MAX_LISTEN_QUEUE, v) == 0) }
        #expect(ms_pool_load(board, 2, MS_POOL_MAX_LISTEN_QUEUE, &value) == 0 && value == 9)
    }

    /// Forked processes add to the same counters at once; no increment is lost.
    @Test func countersAreSharedAndAtomicAcrossProcesses() throws {
        let board = try #require(ms_scoreboard_create(0))
        defer { ms_scoreboard_destroy(board) }
        let children = 4, increments = 20_000
        var pids: [pid_t] = []
        for _ in 0..<children {
            let pid = fork()
            if pid == 0 {
                // Only async-signal-safe work in the child of a threaded test process.
                for _ in 0..<increments {
                    ms_pool_add(board, 0, MS_POOL_ACCEPTED, 1)
                    ms_slot_add(board, 5, MS_SLOT_REQUESTS, 1, nil)
                }
                _exit(0)
            }
            try #require(pid > 0)
            pids.append(pid)
        }
        for pid in pids {
            var status: Int32 = 0
            #expect(waitpid(pid, &status, 0) == pid)
            #expect(ms_exit_status_decode(status).exited == 1)
        }
        var accepted: Int64 = 0, requests: Int64 = 0
        ms_pool_load(board, 0, MS_POOL_ACCEPTED, &accepted)
        ms_slot_load(board, 5, MS_SLOT_REQUESTS, &requests)
        #expect(accepted == Int64(children * increments) && requests == Int64(children * increments))
    }
}

@Suite struct ExitStatusTests {
    private func status(ofChild body: () -> Never) throws -> Int32 {
        let pid = fork()
        if pid == 0 { body() }
        try #require(pid > 0)
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        return status
    }

    @Test func exitCodesAndSignalsAreDecodedWithThePOSIXMacros() throws {
        let clean = ms_exit_status_decode(try status { _exit(0) })
        #expect(clean.exited == 1 && clean.code == 0 && clean.signaled == 0)
        let failed = ms_exit_status_decode(try status { _exit(3) })
        #expect(failed.exited == 1 && failed.code == 3 && failed.signaled == 0)
        let killed = ms_exit_status_decode(try status { kill(getpid(), SIGKILL); _exit(1) })
        #expect(killed.signaled == 1 && killed.signal == SIGKILL && killed.exited == 0)
        // Stopped statuses are neither (waitpid only reports them with WUNTRACED).
        let stopped = ms_exit_status_decode(0x137f)
        #expect(stopped.exited == 0 && stopped.signaled == 0)
    }

    /// The Swift runtime's crash handler (inherited across fork) would survive a SEGV sent with kill().
    @Test func aWorkersFatalSignalsTakeTheirDefaultAction() throws {
        for sig in [SIGSEGV, SIGBUS, SIGABRT, SIGILL] {
            let ended = ms_exit_status_decode(try status { ms_signals_default_fatal(); kill(getpid(), sig); _exit(1) })
            #expect(ended.signaled == 1 && ended.signal == sig, "signal \(sig)")
        }
    }

    @Test func signalsHaveTheirConstantNames() {
        #expect(ms_signal_name(SIGSEGV).map { String(cString: $0) } == "SIGSEGV")
        #expect(ms_signal_name(SIGKILL).map { String(cString: $0) } == "SIGKILL")
        #expect(ms_signal_name(0) == nil)
        #expect(ProcessManager.signalName(Int(SIGABRT)) == "SIGABRT")
        #expect(ProcessManager.signalName(0) == "none")
        #expect(ProcessManager.signalName(999) == "SIG999")
    }
}

@Suite struct ProcessManagerBindTests {
    private struct NoApp: WorkerApplication {
        func makeHandler(pool: PoolRuntime, slot: Int, server: ServerContext) -> RequestHandler { fatalError("not started") }
        var bodyLimitBytes: Int { 0 }
    }

    private func pool(_ i: Int, workers: Int) -> PoolConfig {
        PoolConfig(name: "p\(i)", listen: .tcp(host: "127.0.0.1", port: 1), workers: workers, backlog: 1, maxRequests: 0,
                   memoryLimitMB: 0, requestTimeoutSeconds: 0, slowRequestSeconds: 0)
    }

    @Test func poolsAndWorkersMustFitTheScoreboard() throws {
        let tooManyPools = ProcessManagerConfig(pools: (0...Scoreboard.poolCount).map { pool($0, workers: 1) })
        let manager = try ProcessManager(config: tooManyPools, app: NoApp(), log: ServerLog(path: nil))
        #expect { try manager.bind() } throws: { "\($0)".contains("5 pools are configured; the scoreboard has room for 4") }
        let tooManyWorkers = ProcessManagerConfig(pools: [pool(0, workers: 100), pool(1, workers: 29)])
        let crowded = try ProcessManager(config: tooManyWorkers, app: NoApp(), log: ServerLog(path: nil))
        #expect { try crowded.bind() } throws: { "\($0)".contains("129 workers are configured; the scoreboard has room for 128") }
    }
}

/// The crash-loop rule: only crashes without a request count, and a loop backs off instead of stopping.
@Suite struct CrashLoopRuleTests {
    @Test func crashesUpToTheLimitOnlyGetTheQuickBackOff() {
        var rule = CrashLoopRule(limit: 3, window: 60, maxDelay: 30)
        for (i, expected) in [0.1, 0.2, 0.4].enumerated() {
            let outcome = rule.crashed(pool: 0, at: Double(i), lived: 0.5)
            #expect(outcome.delay == expected && !outcome.began)
        }
        #expect(!rule.isLooping)
        #expect(rule.crashed(pool: 1, at: 3, lived: 30).delay == 1, "the fourth in the window starts a loop")
        #expect(rule.isLooping && rule.longestDelay == 1)
    }

    @Test func aLoopDoublesTheCrashingPoolsDelayUpToTheMaximum() {
        var rule = CrashLoopRule(limit: 1, window: 60, maxDelay: 5)
        #expect(rule.crashed(pool: 0, at: 0, lived: 10) == (0, false))
        let first = rule.crashed(pool: 0, at: 1, lived: 10)
        #expect(first.delay == 1 && first.began)
        let delays = (2..<7).map { rule.crashed(pool: 0, at: Double($0), lived: 10).delay }
        #expect(delays == [2, 4, 5, 5, 5])
        let other = rule.crashed(pool: 1, at: 7, lived: 10)
        #expect(other.delay == 1 && !other.began, "another pool crashing in the same window backs off from 1 s")
    }

    @Test func crashesOutsideTheWindowDoNotAddUp() {
        var rule = CrashLoopRule(limit: 3, window: 10, maxDelay: 60)
        for t in stride(from: 0.0, to: 100, by: 4) { _ = rule.crashed(pool: 0, at: t, lived: 5) }
        #expect(!rule.isLooping, "one crash every 4 s is never more than 3 within 10 s")
        _ = rule.crashed(pool: 0, at: 97, lived: 5)
        #expect(rule.isLooping, "a fourth within 10 s is")
    }

    @Test func theLoopEndsOnceEveryPoolIsWholeAndQuietForTheWindow() {
        var rule = CrashLoopRule(limit: 0, window: 10, maxDelay: 60)
        _ = rule.crashed(pool: 0, at: 0, lived: 5)
        _ = rule.crashed(pool: 1, at: 4, lived: 5)
        #expect(!rule.settle(at: 9) { _ in true }, "pool 0 crashed 9 s ago")
        #expect(!rule.settle(at: 12) { _ in true }, "pool 1 is still within its window")
        #expect(!rule.settle(at: 20) { $0 != 1 }, "pool 1 is not whole")
        #expect(rule.isLooping && rule.longestDelay == 1)
        #expect(rule.settle(at: 20) { _ in true })
        #expect(!rule.isLooping && rule.longestDelay == 0)
        #expect(!rule.settle(at: 21) { _ in true }, "ended once")
    }

    @Test func aNormalExitEndsTheQuickBackOff() {
        var rule = CrashLoopRule(limit: 100, window: 60, maxDelay: 60)
        #expect(rule.crashed(pool: 0, at: 0, lived: 0.1).delay == 0.1)
        #expect(rule.crashed(pool: 0, at: 1, lived: 0.1).delay == 0.2)
        rule.endedNormally(pool: 0)
        #expect(rule.crashed(pool: 0, at: 2, lived: 0.1).delay == 0.1)
    }
}

/// The crash ledger: files and clients charged with crashes, in shared memory.
@Suite struct CrashLedgerTests {
    let rules = CrashLedger.Rules(fileSeconds: 100, clientLimit: 3, clientWindowSeconds: 10)
    static let s: Int64 = 1_000_000_000

    @Test func aChargedFileIsRefusedForItsTimeWithItsCause() throws {
        let ledger = try CrashLedger()
        let key = CrashLedger.contentKey(sha256Hex: "3fa2c1d0" + String(repeating: "e", count: 56))
        #expect(ledger.entry(.files, key: key) == nil)
        ledger.charge(.files, key: key, cause: .signal(SIGSEGV), rules: rules, at: 5 * Self.s)
        let entry = try #require(ledger.entry(.files, key: key))
        #expect(entry.crashes == 1 && entry.cause == .signal(SIGSEGV) && "\(entry.cause)" == "SIGSEGV")
        #expect(entry.isRefused(at: 104 * Self.s) && !entry.isRefused(at: 105 * Self.s))
        ledger.charge(.files, key: key, cause: .timeLimit, rules: rules, at: 50 * Self.s)
        let again = try #require(ledger.entry(.files, key: key))
        #expect(again.crashes == 2 && again.firstNs == 5 * Self.s && again.cause == .timeLimit)
        #expect(again.isRefused(at: 149 * Self.s), "refused for its time after the latest crash")
        #expect(CrashLedger.prefix(key) == "3fa2c1d0", "logs show the first 8 hex digits of the SHA-256")
        #expect(ledger.entries(.clients).isEmpty)
    }

    @Test func causesSurviveTheirEncoding() {
        for cause: CrashLedger.Cause in [.signal(SIGSEGV), .signal(SIGKILL), .timeLimit, .exit(0), .exit(3), .exit(255)] {
            #expect(CrashLedger.Cause(encoded: cause.encoded) == cause)
        }
        #expect(CrashLedger.Cause.exit(3).kind == "exit" && CrashLedger.Cause.timeLimit.kind == "time_limit")
    }

    @Test func aClientIsRefusedAtItsLimitOfCrashesInARun() throws {
        let ledger = try CrashLedger()
        let client = CrashLedger.clientKey(user: "01USER")
        ledger.charge(.clients, key: client, cause: .signal(SIGSEGV), rules: rules, at: 0)
        ledger.charge(.clients, key: client, cause: .signal(SIGSEGV), rules: rules, at: 20 * Self.s)
        #expect(ledger.entry(.clients, key: client)?.crashes == 1, "more than the window apart: a new run")
        ledger.charge(.clients, key: client, cause: .signal(SIGSEGV), rules: rules, at: 25 * Self.s)
        #expect(ledger.entry(.clients, key: client)?.isRefused(at: 25 * Self.s) == false, "two crashes: still served")
        ledger.charge(.clients, key: client, cause: .signal(SIGBUS), rules: rules, at: 30 * Self.s)
        let entry = try #require(ledger.entry(.clients, key: client))
        #expect(entry.crashes == 3 && entry.firstNs == 20 * Self.s && entry.refusedUntilNs == 40 * Self.s)
        #expect(ledger.refusedCount(.clients, at: 39 * Self.s) == 1 && ledger.refusedCount(.clients, at: 40 * Self.s) == 0)
    }

    @Test func aFullTableReusesWhatNoLongerMattersThenTheLeastRecentlyCharged() throws {
        let ledger = try CrashLedger()
        let ms = Self.s / 1000
        for i in 1...CrashLedger.capacity {
            ledger.charge(.files, key: Int64(i), cause: .signal(SIGSEGV), rules: rules, at: Int64(i) * ms)
        }
        #expect(ledger.entries(.files).count == CrashLedger.capacity)
        ledger.charge(.files, key: 9999, cause: .signal(SIGSEGV), rules: rules, at: 50 * Self.s)
        #expect(ledger.entry(.files, key: 1) == nil && ledger.entry(.files, key: 2) != nil, "all refused: the oldest made room")
        // At 120 s the first files' refusals are over (9999's is not): one of them is reused.
        ledger.charge(.files, key: 7777, cause: .signal(SIGSEGV), rules: rules, at: 120 * Self.s)
        #expect(ledger.entry(.files, key: 9999) != nil && ledger.entry(.files, key: 7777) != nil && ledger.entry(.files, key: 2) == nil)
        #expect(ledger.entries(.files).count == CrashLedger.capacity)
        ledger.forgetAll()
        #expect(ledger.entries(.files).isEmpty && ledger.entry(.files, key: 9999) == nil)
    }

    @Test func keysAreStableAndApart() {
        #expect(CrashLedger.clientKey(user: "01A") == CrashLedger.clientKey(user: "01A"))
        #expect(CrashLedger.clientKey(user: "127.0.0.1") != CrashLedger.clientKey(address: "127.0.0.1"))
        #expect(CrashLedger.clientKey(address: "::1") != 0 && CrashLedger.contentKey(sha256Hex: String(repeating: "0", count: 64)) != 0)
        #expect(CrashLedger.prefix(0x0000_00ab_0000_0000) == "000000ab")
    }

    @Test func everyArgumentIsCheckedInC() throws {
        let ledger = try #require(ms_ledger_create())
        defer { ms_ledger_destroy(ledger) }
        var entry = ms_ledger_entry()
        for (table, index): (Int32, Int32) in [(-1, 0), (2, 0), (0, -1), (1, Int32(MS_LEDGER_ENTRIES))] {
            errno = 0
            #expect(ms_ledger_read(ledger, table, index, &entry) == -1 && errno == EINVAL)
            #expect(ms_ledger_write(ledger, table, index, &entry) == -1)
        }
        errno = 0
        #expect(ms_ledger_find(ledger, 0, 0, &entry) == -1 && errno == EINVAL)
        #expect(ms_ledger_find(ledger, 0, 42, &entry) == -1 && errno == ENOENT)
        var value: Int64 = 0
        #expect(ms_ledger_counter_load(ledger, Int32(MS_LEDGER_COUNTER_COUNT.rawValue), &value) == -1)
        #expect(ms_ledger_counter_add(ledger, -1, 1) == -1)
    }

    /// What the master writes after the fork, a worker sees whole.
    @Test func workersSeeWhatTheMasterChargesAfterTheFork() throws {
        let ledger = try #require(ms_ledger_create())
        defer { ms_ledger_destroy(ledger) }
        let pid = fork()
        if pid == 0 {
            // Only async-signal-safe work in the child: poll the shared entry until a deadline.
            var seen = ms_ledger_entry()
            let deadline = ms_now_ns() + 20 * Self.s
            while ms_now_ns() < deadline {
                if ms_ledger_find(ledger, 1, 77, &seen) >= 0 { _exit(seen.crashes == 3 && seen.cause == 11 ? 0 : 2) }
            }
            _exit(1)
        }
        try #require(pid > 0)
        var entry = ms_ledger_entry(key: 77, crashes: 3, first_ns: 1, last_ns: 2, refused_until_ns: 3, cause: 11)
        #expect(ms_ledger_write(ledger, 1, 200, &entry) == 0)
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        let ended = ms_exit_status_decode(status)
        #expect(ended.exited == 1 && ended.code == 0)
    }
}

/// What a worker checks before decoding: its slot records the file and the client, and the ledger refuses.
@Suite struct AdmissionTests {
    let context: ServerContext
    let slot: Int

    init() throws {
        let board = try Scoreboard()
        context = ServerContext(pools: [], scoreboard: board, crashes: try CrashLedger(), log: ServerLog(path: nil), masterPID: getpid())
        slot = try #require(board.claimSlot(pool: 0, generation: 1))
        board.requestStarted(slot: slot, pool: 0, at: ms_now_ns())
    }

    @Test func aCleanRequestIsAdmittedAndRecordedForCharging() throws {
        try context.admitClient(slot: slot, client: 11, alsoChecked: [12])
        try context.admitContent(slot: slot, content: 21)
        #expect(context.scoreboard.requestSubject(slot) == (11, 21))
        #expect(context.scoreboard.snapshot(pool: 0).workers.first?.currentFile == CrashLedger.prefix(21), "the status page shows it")
        context.scoreboard.requestFinished(slot: slot, rssKB: 0)
        #expect(context.scoreboard.requestSubject(slot) == (0, 0), "an idle worker is charged to nobody")
    }

    @Test func aFileThatCrashedAWorkerIsRefusedWith422() throws {
        let rules = CrashLedger.Rules(fileSeconds: 60, clientLimit: 3, clientWindowSeconds: 600)
        let key = CrashLedger.contentKey(sha256Hex: "deadbeef" + String(repeating: "0", count: 56))
        context.crashes.charge(.files, key: key, cause: .signal(SIGSEGV), rules: rules)
        let problem = try #require(throws: Problem.self) { try context.admitContent(slot: slot, content: key) }
        #expect(problem.status == 422 && problem.retryAfter == nil)
        #expect(problem.detail.hasPrefix("this file stopped the analysis before and is refused:"))
        #expect(problem.detail.contains("SIGSEGV") && problem.detail.contains("deadbeef"))
        #expect(context.crashes.refusedFiles == 1 && context.crashes.refusedClients == 0)
        try context.admitContent(slot: slot, content: key + 1)
    }

    @Test func aClientOverItsLimitIsRefusedWith429AndRetryAfter() throws {
        let rules = CrashLedger.Rules(fileSeconds: 60, clientLimit: 2, clientWindowSeconds: 600)
        for _ in 0..<2 { context.crashes.charge(.clients, key: 12, cause: .timeLimit, rules: rules) }
        try context.admitClient(slot: slot, client: 11)
        let problem = try #require(throws: Problem.self) { try context.admitClient(slot: slot, client: 11, alsoChecked: [12]) }
        #expect(problem.status == 429 && (590...600).contains(problem.retryAfter ?? 0))
        #expect(problem.detail.contains("2 times") && problem.detail.contains("the request time limit"))
        #expect(context.crashes.refusedClients == 1)
    }
}
