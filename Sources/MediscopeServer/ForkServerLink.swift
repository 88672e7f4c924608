import CServerSupport
import Foundation
import Glibc

/// The master's side of one fork server: its process, its socket, its state and the forks it was asked
/// for. The master alone writes the pool's fork-server fields of the scoreboard, for the current link.
final class ForkServerLink {
    let pool: Int
    private(set) var pid: pid_t = 0
    private(set) var socket: Int32 = -1
    private(set) var started = 0.0
    /// It said it has preloaded; only then does it fork.
    private(set) var ready = false
    /// Forks asked for and not yet answered: slot -> (generation, when asked).
    private(set) var pending: [Int: (generation: Int, asked: Double)] = [:]
    /// When a fork server that died may be started again.
    var startAfter = 0.0
    /// Deaths in a row before being ready; at `disableAfter` the pool's workers are forked by the
    /// master instead (and load what they need themselves).
    private(set) var deathsBeforeReady = 0
    static let disableAfter = 3
    /// A preload longer than this, or a fork asked for and unanswered this long by a ready fork server,
    /// means it hangs (a stuck mount, a stopped process): it is killed and started again.
    static let preloadTimeout = 180.0
    static let forkTimeout = 15.0
    var disabled: Bool { deathsBeforeReady >= Self.disableAfter }
    var running: Bool { pid > 0 }

    init(pool: Int) { self.pool = pool }

    /// Forks the fork server; false when the socket pair or the fork failed. `closeInChild` runs in the
    /// child first (it closes the sockets of the other links).
    func start(_ runtime: PoolRuntime, context: ServerContext, app: WorkerApplication, at now: Double,
               closeInChild: () -> Void) -> Bool {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &fds) == 0 else { return false }
        let child = fork()
        if child == 0 {
            closeInChild()
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
        ready = false
        return true
    }

    /// Closes the master's end in a child that must not hold it (any process the master forks).
    func closeInChild() {
        if socket >= 0 { close(socket) }
    }

    /// Asks for a worker in `slot`; false when the request could not be sent.
    func ask(slot: Int, generation: Int, at now: Double) -> Bool {
        guard running, ForkServer.Message(slot: Int32(slot), value: Int32(clamping: generation)).send(on: socket) else { return false }
        pending[slot] = (generation, now)
        return true
    }

    /// Forks asked for by generation `generation` and not answered yet.
    func pendingCount(generation: Int) -> Int { pending.values.filter { $0.generation == generation }.count }

    /// What arrived: the forked workers (slot, pid or -1, generation), and the preload's outcome when it
    /// said it is ready (milliseconds, whether complete).
    func takeMessages() -> (replies: [(slot: Int, pid: pid_t, generation: Int)], readied: (ms: Int, complete: Bool)?) {
        guard socket >= 0 else { return ([], nil) }
        var replies: [(Int, pid_t, Int)] = []
        var readied: (Int, Bool)?
        var closed = false
        while let message = ForkServer.Message.receive(on: socket, closed: &closed) {
            if message.slot == ForkServer.Message.ready {
                ready = true
                deathsBeforeReady = 0
                readied = (Int(abs(message.value)), message.value >= 0)
                continue
            }
            let slot = Int(message.slot)
            guard let asked = pending.removeValue(forKey: slot) else { continue }
            replies.append((slot, pid_t(message.value), asked.generation))
        }
        return (replies, readied)
    }

    /// Why it should be killed as hung at `now`, nil when it is not.
    func hung(at now: Double) -> String? {
        guard running else { return nil }
        if !ready { return now - started > Self.preloadTimeout ? "preload" : nil }
        let oldest = pending.values.map(\.asked).min() ?? now
        return now - oldest > Self.forkTimeout ? "fork" : nil
    }

    /// The fork server ended (`abnormal`: by a signal or a non-zero exit): forget it. Returns the slots
    /// of forks it will never answer.
    func ended(abnormal: Bool) -> [Int] {
        let unanswered = Array(pending.keys)
        pending = [:]
        if socket >= 0 { close(socket) }
        socket = -1
        pid = 0
        if abnormal && !ready { deathsBeforeReady += 1 }
        ready = false
        return unanswered
    }
}
