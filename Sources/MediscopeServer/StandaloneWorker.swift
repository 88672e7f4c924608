import Foundation

/// A worker's place without the process manager: the scoreboard and crash ledger mapped in the calling
/// process (the same shared structures a forked worker writes), one pool per name with no listening
/// socket, and a claimed scoreboard slot. Request handlers built on it run in-process: tests of an
/// application's rules send requests straight to its router, with no fork, socket or nginx.
package struct StandaloneWorker: Sendable {
    package let server: ServerContext
    package let pool: PoolRuntime
    package let slot: Int

    /// A server with `poolNames` (the worker sits in the first), logging to `log`.
    package init(poolNames: [String] = ["inference", "io"], log: ServerLog = ServerLog(path: nil)) throws {
        precondition(!poolNames.isEmpty, "a worker needs a pool")
        let scoreboard = try Scoreboard()
        let pools = poolNames.enumerated().map { index, name in
            PoolRuntime(index: index, config: PoolConfig(name: name, listen: .tcp(host: "127.0.0.1", port: 0), workers: 1, backlog: 1,
                                                         maxRequests: 0, memoryLimitMB: 0, requestTimeoutSeconds: 0,
                                                         slowRequestSeconds: 0),
                        listenFD: -1)
        }
        guard let slot = scoreboard.claimSlot(pool: 0, generation: 0) else { throw ServerError("no free scoreboard slot") }
        server = ServerContext(pools: pools, scoreboard: scoreboard, crashes: try CrashLedger(), log: log, masterPID: getpid())
        pool = pools[0]
        self.slot = slot
    }
}
