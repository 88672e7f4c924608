import Foundation
import Testing
@testable import MediscopeServer

/// Binding refuses a configuration with more pools or workers than the scoreboard has room for.
@Suite struct ProcessManagerBindTests {
    private struct NoApp: WorkerApplication {
        func makeHandler(pool: PoolRuntime, slot: Int, server: ServerContext) -> RequestHandler { fatalError("not started") }
        func bodyLimitBytes(path: String) -> Int { 0 }
    }

    private func pool(_ i: Int, workers: Int) -> PoolConfig {
        PoolConfig(name: "p\(i)", listen: .tcp(host: "127.0.0.1", port: 1), workers: workers, backlog: 1, maxRequests: 0,
                   memoryLimitMB: 0, requestTimeoutSeconds: 0, slowRequestSeconds: 0)
    }

    @Test func poolsAndWorkersMustFitTheScoreboard() throws {
        let tooManyPools = ProcessManagerConfig(pools: (0...Scoreboard.poolCount).map { pool($0, workers: 1) })
        let manager = try ProcessManager(config: tooManyPools, app: NoApp(), log: ServerLog(path: nil))
        #expect { try manager.bind() } throws: { "\($0)".contains("5 pools are configured; the scoreboard has room for 4") }
        let tooManyWorkers = ProcessManagerConfig(pools: [pool(0, workers: 100), pool(1, workers: 29)])
        let crowded = try ProcessManager(config: tooManyWorkers, app: NoApp(), log: ServerLog(path: nil))
        #expect { try crowded.bind() } throws: { "\($0)".contains("129 workers are configured; the scoreboard has room for 128") }
    }
}
