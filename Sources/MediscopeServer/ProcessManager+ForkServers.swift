import CServerSupport
import Foundation
import Glibc

/// The master's side of fork servers (ForkServer.swift): started with the pools, asked for workers,
/// replaced at a reload, restarted after a crash or when hung, given up on (the master forks the pool's
/// workers itself) when one keeps dying before it is ready.
extension ProcessManager {
    /// Every fork server process alive, current or retired.
    var forkServerPIDs: [pid_t] {
        forkServers.values.filter(\.running).map(\.pid) + Array(retiredForkServers.keys)
    }

    func startForkServers() {
        for pool in pools where pool.config.preload {
            let link = forkServers[pool.index] ?? ForkServerLink(pool: pool.index)
            forkServers[pool.index] = link
            startForkServer(pool, link)
        }
    }

    private func startForkServer(_ pool: PoolRuntime, _ link: ForkServerLink) {
        guard link.start(pool, context: context, app: app, at: now(), closeInChild: closeForkServerSockets) else {
            log.error("fork_failed", ["process": .token(.init("fork-server")), "pool": .token(.init(pool.config.name))])
            link.startAfter = now() + 1
            return
        }
        scoreboard.add(pool: pool.index, MS_POOL_FORK_SERVER_STARTS, 1)
        publish(link, preloadMs: 0, preloadFailed: false)
        log.info("fork_server_started", ["pool": .token(.init(pool.config.name)), "fork_server_pid": .int(Int(link.pid))])
    }

    /// In a child just forked: the master's ends of the fork servers' sockets are not its to hold (an io
    /// worker could otherwise ask for forks, and a fork server would never see its master's end close).
    func closeForkServerSockets() {
        for link in Array(forkServers.values) + Array(retiredForkServers.values) { link.closeInChild() }
    }

    /// The scoreboard's view of `pool`'s current fork server (the master is its only writer).
    private func publish(_ link: ForkServerLink, preloadMs: Int? = nil, preloadFailed: Bool? = nil) {
        guard forkServers[link.pool] === link else { return }
        let state = link.disabled ? MS_FORK_SERVER_DISABLED : !link.running ? MS_FORK_SERVER_DOWN
            : link.ready ? MS_FORK_SERVER_READY : MS_FORK_SERVER_PRELOADING
        scoreboard.store(pool: link.pool, MS_POOL_FORK_SERVER_PID, Int64(link.pid))
        scoreboard.store(pool: link.pool, MS_POOL_FORK_SERVER_STATE, Int64(state.rawValue))
        if let preloadMs { scoreboard.store(pool: link.pool, MS_POOL_FORK_SERVER_PRELOAD_MS, Int64(preloadMs)) }
        if let preloadFailed { scoreboard.store(pool: link.pool, MS_POOL_FORK_SERVER_PRELOAD_FAILED, preloadFailed ? 1 : 0) }
    }

    /// Asks `pool`'s fork server for one worker. While none runs (it died and waits out its back-off),
    /// nothing is asked: `respawnMissing` asks again once one does.
    func askFork(_ pool: PoolRuntime, _ link: ForkServerLink) {
        guard link.running else { return }
        guard let slot = scoreboard.claimSlot(pool: pool.index, generation: generation) else {
            log.error("no_free_slot", ["pool": .token(.init(pool.config.name))])
            return
        }
        if !link.ask(slot: slot, generation: generation, at: now()) {
            scoreboard.setState(slot, MS_SLOT_FREE)
            log.error("fork_request_failed", ["pool": .token(.init(pool.config.name))])
        }
    }

    /// Takes the fork servers' news: one that has preloaded is published as ready; each forked worker
    /// becomes a child of this master (its pid in its slot is what lets it start serving), and is told
    /// to stop at once when the master is stopping; a failed fork frees its slot.
    func adoptForkedWorkers() {
        for link in Array(forkServers.values) + Array(retiredForkServers.values) {
            let news = link.takeMessages()
            if let readied = news.readied { publish(link, preloadMs: readied.ms, preloadFailed: !readied.complete) }
            for reply in news.replies {
                guard reply.pid > 0 else {
                    scoreboard.setState(reply.slot, MS_SLOT_FREE)
                    log.error("fork_failed", ["pool": .token(.init(pools[link.pool].config.name))])
                    continue
                }
                scoreboard.store(reply.slot, MS_SLOT_STARTED_NS, ms_now_ns())
                scoreboard.setPID(reply.slot, reply.pid)
                children[reply.pid] = Child(pool: link.pool, slot: reply.slot, generation: reply.generation, started: now())
                if stopping {
                    kill(reply.pid, SIGTERM)
                    children[reply.pid]?.stopDeadline = now() + config.stopTimeoutSeconds
                }
            }
        }
    }

    /// Handles the end of `pid` when it was a fork server; false when it was not one.
    func forkServerEnded(_ pid: pid_t, status: Int32) -> Bool {
        let link: ForkServerLink
        if let retired = retiredForkServers.removeValue(forKey: pid) {
            link = retired
        } else if let current = forkServers.values.first(where: { $0.pid == pid }) {
            link = current
        } else {
            return false
        }
        adoptForkedWorkers()
        let ended = ms_exit_status_decode(status)
        let abnormal = ended.signaled != 0 || (ended.exited != 0 && ended.code != 0)
        for slot in link.ended(abnormal: abnormal) { scoreboard.setState(slot, MS_SLOT_FREE) }
        guard forkServers[link.pool] === link else { return true }
        publish(link, preloadMs: 0)
        guard !stopping else { return true }
        let name = LogField.token(.init(pools[link.pool].config.name))
        if abnormal {
            let delay = link.disabled ? 0 : min(0.1 * Double(1 << min(link.deathsBeforeReady, 6)), 5)
            link.startAfter = now() + delay
            log.warning("fork_server_died", ["pool": name, "signal_name": .token(.init(Self.signalName(ended.signaled != 0 ? Int(ended.signal) : 0))),
                                             "exit_code": .int(ended.exited != 0 ? Int(ended.code) : 0), "respawn_delay_s": .double(delay)])
        }
        if link.disabled {
            // Its preload kills the process: the master forks the workers, which load on first use.
            log.error("fork_server_disabled", ["pool": name, "deaths_before_ready": .int(link.deathsBeforeReady)])
        }
        return true
    }

    /// Kills the fork servers that hang, and starts the ones that ended once their back-off is over.
    func superviseForkServers() {
        for link in Array(forkServers.values) + Array(retiredForkServers.values) {
            guard let phase = link.hung(at: now()) else { continue }
            kill(link.pid, SIGKILL)
            log.error("fork_server_hung", ["pool": .token(.init(pools[link.pool].config.name)), "phase": .token(.init(phase)),
                                           "fork_server_pid": .int(Int(link.pid))])
        }
        for (index, link) in forkServers where !link.running && !link.disabled && now() >= link.startAfter {
            startForkServer(pools[index], link)
        }
    }

    /// At a reload: each fork server is told to finish (killed if still preloading: it has forked
    /// nothing yet, and a burst of reloads must not pile up preloads), and a new one preloads from
    /// today's files.
    func replaceForkServers() {
        for (index, link) in forkServers {
            if link.running {
                kill(link.pid, link.ready ? SIGQUIT : SIGKILL)
                retiredForkServers[link.pid] = link
            }
            let fresh = ForkServerLink(pool: index)
            forkServers[index] = fresh
            startForkServer(pools[index], fresh)
        }
    }

    /// At a stop: a ready fork server is told to finish; one still preloading is killed (a preload does
    /// not see signals, and has nothing to finish).
    func stopForkServers() {
        for link in Array(forkServers.values) + Array(retiredForkServers.values) where link.running {
            kill(link.pid, link.ready ? SIGTERM : SIGKILL)
        }
    }
}
