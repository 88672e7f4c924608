import MediscopeServer

/// What the API's handlers use of the process they run in: the server's shared state (scoreboard, crash
/// ledger, log), their pool and their scoreboard slot. A forked worker of the process manager has one
/// (`PooledWorker`); `StandaloneWorker` maps the same shared structures in the calling process, so the
/// router and its handlers run without the process manager, sockets or nginx (the router-level tests).
protocol WorkerRuntime: Sendable {
    var server: ServerContext { get }
    var pool: PoolRuntime { get }
    var slot: Int { get }
}

/// A worker the process manager forked, in its pool and scoreboard slot.
struct PooledWorker: WorkerRuntime {
    let server: ServerContext
    let pool: PoolRuntime
    let slot: Int
}

extension StandaloneWorker: WorkerRuntime {}
