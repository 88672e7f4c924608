import CServerSupport
import Foundation
import Glibc

/// Background processes (no pool, no slot: the outbox's delivery loop, report jobs): started with the
/// pools, started again after a back-off when they crash right away, told to finish at a reload.
extension ProcessManager {
    func spawnBackground(_ name: String) {
        let context = self.context
        let pid = fork()
        if pid == 0 {
            closeForkServerSockets()
            BackgroundProcess(name: name, context: context, app: app).run()
        }
        guard pid > 0 else {
            log.error("fork_failed", ["process": .token(.init(name))])
            backgroundRespawnAfter[name] = now() + 1
            return
        }
        background[pid] = (name, now())
    }

    /// A background process that ended is started again, after a back-off when it crashed right away.
    func backgroundEnded(_ name: String, started: Double, status: Int32) {
        guard !stopping else { return }
        let ended = ms_exit_status_decode(status)
        guard ended.signaled != 0 || (ended.exited != 0 && ended.code != 0) else {
            backgroundBackoff[name] = 0
            return
        }
        let delay = now() - started < 1 ? min(max((backgroundBackoff[name] ?? 0.05) * 2, 0.1), 5) : 0
        backgroundBackoff[name] = delay
        backgroundRespawnAfter[name] = now() + delay
        let signal = ended.signaled != 0 ? Int(ended.signal) : 0
        log.warning("background_died", ["process": .token(.init(name)), "signal_name": .token(.init(Self.signalName(signal))),
                                        "exit_code": .int(ended.exited != 0 ? Int(ended.code) : 0),
                                        "respawn_delay_s": .double(delay)])
    }

    func respawnMissingBackground() {
        let running = Set(background.values.map(\.name))
        for name in app.backgroundProcesses where !running.contains(name) {
            if let t = backgroundRespawnAfter[name], now() < t { continue }
            spawnBackground(name)
        }
    }
}
