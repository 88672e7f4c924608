import CServerSupport
import Foundation
import Glibc

/// The master's side of fork servers (ForkServer.swift): started with the pools, asked for workers,
/// replaced at a reload, restarted after a crash, given up on (the master forks the pool's workers
/// itself) when one keeps dying at start.
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
        guard link.start(pool, context: context, app: app, at: now()) else {
            log.error("fork_failed", ["process": .token(.init("fork-server")), "pool": .token(.init(pool.config.name))])
            link.startAfter = now() + 1
            return
        }
        log.info("fork_server_started", ["pool": .token(.init(pool.config.name)), "fork_server_pid": .int(Int(link.pid))])
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

    /// Takes the fork servers' replies: each forked worker becomes a child of this master (its pid in
    /// its slot is what lets it start serving); a failed fork frees its slot.
    func adoptForkedWorkers() {
        for link in Array(forkServers.values) + Array(retiredForkServers.values) {
            for reply in link.takeReplies() {
                guard reply.pid > 0 else {
                    scoreboard.setState(reply.slot, MS_SLOT_FREE)
                    log.error("fork_failed", ["pool": .token(.init(pools[link.pool].config.name))])
                    continue
                }
                scoreboard.setPID(reply.slot, reply.pid)
                children[reply.pid] = Child(pool: link.pool, slot: reply.slot, generation: reply.generation, started: reply.asked)
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
        for slot in link.ended(abnormal: abnormal, at: now(), scoreboard: scoreboard) { scoreboard.setState(slot, MS_SLOT_FREE) }
        guard !stopping, forkServers[link.pool] === link else { return true }
        let name = LogField.token(.init(pools[link.pool].config.name))
        if abnormal {
            let delay = min(0.1 * Double(1 << min(link.quickDeaths, 6)), 5)
            link.startAfter = now() + delay
            log.warning("fork_server_died", ["pool": name, "signal_name": .token(.init(Self.signalName(ended.signaled != 0 ? Int(ended.signal) : 0))),
                                             "exit_code": .int(ended.exited != 0 ? Int(ended.code) : 0), "respawn_delay_s": .double(delay)])
        }
        if link.disabled {
            // Its preload crashes the process: the master forks the workers, which load on first use.
            log.error("fork_server_disabled", ["pool": name, "crashes": .int(link.quickDeaths)])
        }
        return true
    }

    /// Starts the fork servers that ended, once their back-off is over.
    func respawnMissingForkServers() {
        for (index, link) in forkServers where !link.running && !link.disabled && now() >= link.startAfter {
            startForkServer(pools[index], link)
        }
    }

    /// At a reload: each fork server is told to finish, and a new one preloads from today's files.
    func replaceForkServers() {
        for (index, link) in forkServers {
            if link.running {
                kill(link.pid, SIGQUIT)
                retiredForkServers[link.pid] = link
            }
            let fresh = ForkServerLink(pool: index)
            forkServers[index] = fresh
            startForkServer(pools[index], fresh)
        }
    }
}
