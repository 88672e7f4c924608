import CServerSupport
import Foundation
import Glibc

/// The master's side of one pool's fork server: its process, its socket and the forks it was asked for.
final class ForkServerLink {
    let pool: Int
    private(set) var pid: pid_t = 0
    private(set) var socket: Int32 = -1
    private(set) var started = 0.0
    /// Forks asked for and not yet answered: slot -> (generation, when asked).
    private(set) var pending: [Int: (generation: Int, asked: Double)] = [:]
    /// When a fork server that died may be started again.
    var startAfter = 0.0
    /// Deaths in a row within seconds of starting; at `disableAfter` the pool's workers are forked by
    /// the master instead (and load what they need themselves).
    var quickDeaths = 0
    static let disableAfter = 3
    var disabled: Bool { quickDeaths >= Self.disableAfter }
    var running: Bool { pid > 0 }

    init(pool: Int) { self.pool = pool }

    /// Forks the fork server; false when the socket pair or the fork failed.
    func start(_ runtime: PoolRuntime, context: ServerContext, app: WorkerApplication, at now: Double) -> Bool {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &fds) == 0 else { return false }
        let child = fork()
        if child == 0 {
            close(fds[0])
            ForkServer(pool: runtime, context: context, app: app, socket: fds[1]).run()
        }
        close(fds[1])
        guard child > 0 else {
            close(fds[0])
            return false
        }
        pid = child
        socket = fds[0]
        started = now
        context.scoreboard.add(pool: pool, MS_POOL_FORK_SERVER_STARTS, 1)
        context.scoreboard.store(pool: pool, MS_POOL_FORK_SERVER_PID, Int64(child))
        context.scoreboard.store(pool: pool, MS_POOL_FORK_SERVER_READY, 0)
        return true
    }

    /// Asks for a worker in `slot`; false when the request could not be sent.
    func ask(slot: Int, generation: Int, at now: Double) -> Bool {
        guard running, ForkServer.Message(slot: Int32(slot), value: Int32(clamping: generation)).send(on: socket) else { return false }
        pending[slot] = (generation, now)
        return true
    }

    /// Forks asked for by generation `generation` and not answered yet.
    func pendingCount(generation: Int) -> Int { pending.values.filter { $0.generation == generation }.count }

    /// The answers that arrived: (slot, pid or -1, generation, when asked).
    func takeReplies() -> [(slot: Int, pid: pid_t, generation: Int, asked: Double)] {
        guard socket >= 0 else { return [] }
        var replies: [(Int, pid_t, Int, Double)] = []
        var closed = false
        while let reply = ForkServer.Message.receive(on: socket, closed: &closed) {
            let slot = Int(reply.slot)
            guard let asked = pending.removeValue(forKey: slot) else { continue }
            replies.append((slot, pid_t(reply.value), asked.generation, asked.asked))
        }
        return replies
    }

    /// The fork server ended (`abnormal`: by a signal or a non-zero exit): forget it. Returns the slots
    /// of forks it will never answer.
    func ended(abnormal: Bool, at now: Double, scoreboard: Scoreboard) -> [Int] {
        let unanswered = Array(pending.keys)
        pending = [:]
        if socket >= 0 { close(socket) }
        socket = -1
        if scoreboard.load(pool: pool, MS_POOL_FORK_SERVER_PID) == Int64(pid) {
            scoreboard.store(pool: pool, MS_POOL_FORK_SERVER_PID, 0)
            scoreboard.store(pool: pool, MS_POOL_FORK_SERVER_READY, 0)
        }
        pid = 0
        quickDeaths = abnormal && now - started < 5 ? quickDeaths + 1 : 0
        return unanswered
    }
}
