import CServerSupport
import Foundation
import Glibc
import Testing
@testable import MediscopeServer

/// The process manager's shared-memory scoreboard (CServerSupport + Scoreboard): slots, pools and snapshots.
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
