import CServerSupport
import Foundation
import Glibc

/// Work a background process does, handed to it after fork: it loops until `shouldStop` says so.
///
/// A background process is a child the master keeps alive beside the pools, with no socket and no
/// requests (the outbox's delivery loop, report jobs): a slow or hung remote service holds it, never a
/// worker. Signals stay blocked outside `pause`, so a stop is never lost and never interrupts a call
/// half way; the master kills the process only after `ProcessManagerConfig.stopTimeoutSeconds`.
package protocol BackgroundWork: AnyObject {
    /// Runs one round of work (e.g. deliver what is due) and returns how long to pause before the next
    /// round, in seconds. Called again and again until a stop is asked for.
    func runOnce(_ context: BackgroundContext) -> Double
    /// Called once when the process leaves (stop, reload, the master gone), after its last round.
    func stopped(_ context: BackgroundContext)
}

extension BackgroundWork {
    package func stopped(_ context: BackgroundContext) {}
}

/// What a background process sees of the server.
package struct BackgroundContext: Sendable {
    /// The process's name in the configuration and the logs (e.g. "outbox").
    package let name: String
    /// The bound pools, the scoreboard, the log and the master's pid.
    package let server: ServerContext
}

/// The loop of one background process. Never returns.
struct BackgroundProcess {
    let name: String
    let context: ServerContext
    let app: WorkerApplication

    func run() -> Never {
        ms_signals_install()
        ms_signals_default_fatal()  // a crash ends the process at once, with no dump of its memory
        ms_set_parent_death_signal(SIGTERM)
        if getppid() != context.masterPID { exit(0) }
        let background = BackgroundContext(name: name, server: context)
        guard let work = app.makeBackgroundWork(name: name, context: background) else {
            context.log.error("background_unknown", ["process": .token(.init(name))])
            exit(1)
        }
        context.log.info("background_ready", ["process": .token(.init(name))])
        while true {
            if ms_signal_take(SIGTERM) != 0 || ms_signal_take(SIGQUIT) != 0 || ms_signal_take(SIGINT) != 0 { break }
            if ms_signal_take(SIGUSR1) != 0 { context.log.reopen() }
            if getppid() != context.masterPID { break }
            let pause = work.runOnce(background)
            // Signals are delivered only inside this wait: a stop ends the pause at once.
            _ = ms_wait(-1, Int32(max(0, min(pause, 60)) * 1000))
        }
        work.stopped(background)
        exit(0)
    }
}
