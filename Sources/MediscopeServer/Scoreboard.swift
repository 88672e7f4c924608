import CServerSupport
import Foundation

/// The shared-memory scoreboard: every worker updates its slot, the master and the status page read it.
public final class Scoreboard: @unchecked Sendable {
    // Shared with forked children; every access goes through the C atomics.
    let board: UnsafeMutablePointer<ms_scoreboard>

    public init() throws {
        guard let board = ms_scoreboard_create() else { throw ServerError("cannot map the scoreboard: \(errnoText())") }
        self.board = board
        board.pointee.started_unix = Int64(Date().timeIntervalSince1970)
    }

    deinit { ms_scoreboard_destroy(board) }

    static let slotCount = Int(MS_MAX_SLOTS)

    func slot(_ i: Int) -> UnsafeMutablePointer<ms_slot> {
        withUnsafeMutablePointer(to: &board.pointee.slots) {
            UnsafeMutableRawPointer($0).assumingMemoryBound(to: ms_slot.self) + i
        }
    }

    func pool(_ i: Int) -> UnsafeMutablePointer<ms_pool_stats> {
        withUnsafeMutablePointer(to: &board.pointee.pools) {
            UnsafeMutableRawPointer($0).assumingMemoryBound(to: ms_pool_stats.self) + i
        }
    }

    /// A free slot for a new worker, or nil when all are taken.
    func claimSlot(pool: Int, generation: Int) -> Int? {
        for i in 0..<Self.slotCount where ms_load32(&slot(i).pointee.state) == Int32(MS_SLOT_FREE.rawValue) {
            let s = slot(i)
            ms_store32(&s.pointee.pid, 0)
            s.pointee.pool = Int32(pool)
            s.pointee.generation = Int32(generation)
            ms_store64(&s.pointee.requests, 0)
            ms_store64(&s.pointee.request_started_ns, 0)
            ms_store64(&s.pointee.rss_kb, 0)
            ms_store64(&s.pointee.loaded_models, 0)
            ms_store64(&s.pointee.started_ns, ms_now_ns())
            ms_store32(&s.pointee.state, Int32(MS_SLOT_STARTING.rawValue))
            return i
        }
        return nil
    }

    func setState(_ i: Int, _ state: ms_slot_state) { ms_store32(&slot(i).pointee.state, Int32(state.rawValue)) }
    func state(_ i: Int) -> ms_slot_state { ms_slot_state(UInt32(ms_load32(&slot(i).pointee.state))) }

    func busyCount(pool: Int) -> Int {
        (0..<Self.slotCount).filter {
            slot($0).pointee.pool == Int32(pool) && state($0) == MS_SLOT_BUSY
        }.count
    }

    /// A copy of one pool's numbers for the status page.
    public func snapshot(pool index: Int) -> PoolSnapshot {
        let p = pool(index)
        var idle = 0, active = 0, starting = 0
        var workers: [PoolSnapshot.Worker] = []
        let now = ms_now_ns()
        for i in 0..<Self.slotCount where slot(i).pointee.pool == Int32(index) {
            let s = slot(i), st = state(i)
            guard st != MS_SLOT_FREE else { continue }
            switch st {
            case MS_SLOT_IDLE: idle += 1
            case MS_SLOT_BUSY: active += 1
            case MS_SLOT_STARTING: starting += 1
            default: break
            }
            let started = ms_load64(&s.pointee.request_started_ns)
            workers.append(.init(
                pid: Int(ms_load32(&s.pointee.pid)), state: Self.name(st), generation: Int(s.pointee.generation),
                requests: Int(ms_load64(&s.pointee.requests)), rssKB: Int(ms_load64(&s.pointee.rss_kb)),
                currentRequestMs: started > 0 ? Double(now - started) / 1e6 : nil,
                uptimeSeconds: Double(now - ms_load64(&s.pointee.started_ns)) / 1e9))
        }
        return PoolSnapshot(
            acceptedRequests: Int(ms_load64(&p.pointee.accepted)), activeWorkers: active, idleWorkers: idle,
            startingWorkers: starting, maxActiveWorkers: Int(ms_load64(&p.pointee.max_active)),
            slowRequests: Int(ms_load64(&p.pointee.slow_requests)), killedRequests: Int(ms_load64(&p.pointee.killed_requests)),
            restarts: Int(ms_load64(&p.pointee.restarts)), maxListenQueue: Int(ms_load64(&p.pointee.max_listen_queue)),
            workers: workers.sorted { $0.pid < $1.pid })
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

public struct PoolSnapshot: Codable, Sendable {
    public struct Worker: Codable, Sendable {
        public var pid: Int
        public var state: String
        public var generation: Int
        public var requests: Int
        public var rssKB: Int
        public var currentRequestMs: Double?
        public var uptimeSeconds: Double
    }
    public var acceptedRequests: Int
    public var activeWorkers: Int
    public var idleWorkers: Int
    public var startingWorkers: Int
    public var maxActiveWorkers: Int
    public var slowRequests: Int
    public var killedRequests: Int
    public var restarts: Int
    public var maxListenQueue: Int
    public var workers: [Worker]
}

public struct ServerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

func errnoText() -> String { String(cString: strerror(errno)) }

extension Scoreboard {
    /// Records which manifest models (bit i = model i) the worker in `slot` has loaded.
    public func setLoadedModels(slot: Int, mask: Int64) {
        ms_store64(&self.slot(slot).pointee.loaded_models, mask)
    }

    /// Models loaded by any live worker of `pool`.
    public func loadedModels(pool: Int) -> Int64 {
        var mask: Int64 = 0
        for i in 0..<Self.slotCount where self.slot(i).pointee.pool == Int32(pool) {
            let st = state(i)
            if st == MS_SLOT_IDLE || st == MS_SLOT_BUSY { mask |= ms_load64(&self.slot(i).pointee.loaded_models) }
        }
        return mask
    }
}

extension Scoreboard {
    public var startedUnix: Int64 { board.pointee.started_unix }
}
