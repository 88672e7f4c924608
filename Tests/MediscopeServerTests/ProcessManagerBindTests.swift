import CServerSupport
import Foundation
import Glibc
import Testing
import TestSupport
@testable import MediscopeServer

/// An application no test starts: binding never runs a worker.
private struct NoApp: WorkerApplication {
    func makeHandler(pool: PoolRuntime, slot: Int, server: ServerContext) -> RequestHandler { fatalError("not started") }
    func bodyLimitBytes(path: String) -> Int { 0 }
}

/// Binding refuses a configuration with more pools or workers than the scoreboard has room for.
@Suite struct ProcessManagerBindTests {
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

/// A unix socket file is replaced only when nothing listens on it: a second server (a hand-run `mediscope
/// serve`, another state folder with the same paths) must not take the path from a running one, or from
/// systemd's socket unit, which would then listen on nothing nginx can reach.
@Suite struct UnixSocketPathTests {
    private static func inode(_ path: String) -> UInt64? {
        var st = stat()
        return lstat(path, &st) == 0 ? UInt64(st.st_ino) : nil
    }

    @Test func aSocketSomeoneListensOnIsRefusedAndKept() throws {
        let folder = TemporaryFolder("mediscope-socket-path")
        let path = folder.appending("io.sock").path
        let running = ms_listen_unix(path, 4, 0o600)
        try #require(running >= 0)
        defer { close(running) }
        let before = Self.inode(path)
        #expect(ms_unix_path_listened_on(path) == 1)

        #expect(ms_listen_unix(path, 4, 0o600) == -1 && errno == EADDRINUSE)
        let config = ProcessManagerConfig(pools: [PoolConfig(name: "io", listen: .unix(path: path), workers: 1, backlog: 1, maxRequests: 0,
                                                             memoryLimitMB: 0, requestTimeoutSeconds: 0, slowRequestSeconds: 0)])
        let second = try ProcessManager(config: config, app: NoApp(), log: ServerLog(path: nil))
        #expect { try second.bind() } throws: { "\($0)".contains("another process listens on \(path)") }
        #expect(Self.inode(path) == before, "the running server keeps its socket file")
        #expect(ms_unix_path_listened_on(path) == 1)
    }

    @Test func aStaleSocketIsReplacedAndOtherFilesAreNoListener() throws {
        let folder = TemporaryFolder("mediscope-socket-path")
        let path = folder.appending("inference.sock").path
        #expect(ms_unix_path_listened_on(path) == 0, "no file")
        let crashed = ms_listen_unix(path, 4, 0o600)
        try #require(crashed >= 0)
        close(crashed)   // what a crashed run leaves: the file, no listener
        #expect(Self.inode(path) != nil && ms_unix_path_listened_on(path) == 0)
        let next = ms_listen_unix(path, 4, 0o600)
        try #require(next >= 0, "the stale file is replaced")
        defer { close(next) }
        #expect(ms_unix_path_listened_on(path) == 1)
        #expect(ms_unix_path_listened_on(folder.file("plain", "not a socket").path) == 0)
    }
}
