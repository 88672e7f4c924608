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
        // The second server waits stop.timeout.seconds + 5 s for the listener to go (children of a master that
        // just died finish their requests first), then gives up.
        let second = try ProcessManager(config: Self.config(path), app: NoApp(), log: ServerLog(path: nil))
        #expect { try second.bind() } throws: { "\($0)".contains("another process listens on \(path)") }
        #expect(Self.inode(path) == before, "the running server keeps its socket file")
        #expect(ms_unix_path_listened_on(path) == 1)
    }

    /// A listener that goes while the next server waits (the last worker of a killed master finishing its
    /// request): the next server then takes the path.
    @Test func aListenerThatExitsWhileTheNextServerWaitsLeavesItThePath() throws {
        let folder = TemporaryFolder("mediscope-socket-path")
        let path = folder.appending("inference.sock").path
        let dying = ms_listen_unix(path, 4, 0o600)
        try #require(dying >= 0)
        let log = folder.appending("mediscope.log").path
        let next = try ProcessManager(config: Self.config(path), app: NoApp(), log: ServerLog(path: log))
        // The listener goes once the next server says it waits for it (a deadline, should it never say so).
        let closer = Thread {
            let deadline = Date().addingTimeInterval(30)
            while !((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("socket_in_use"), Date() < deadline {
                usleep(10_000)
            }
            close(dying)
        }
        closer.start()
        try next.bind()
        defer { next.pools.forEach { close($0.listenFD) } }
        #expect(((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("\"socket_in_use\""), "it waited")
        #expect(next.pools.count == 1 && ms_unix_path_listened_on(path) == 1)
    }

    /// Matched through the folder's real path: a pool configured under a symbolic link (/var/run -> /run)
    /// takes the socket systemd bound under the link's target.
    @Test func inheritedUnixSocketsMatchThroughTheRealFolder() throws {
        let folder = TemporaryFolder("mediscope-socket-path")
        try FileManager.default.createDirectory(at: folder.appending("run"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: folder.appending("var-run"), withDestinationURL: folder.appending("run"))
        let linked = ProcessManager.inheritanceKey(.unix(path: folder.appending("var-run/io.sock").path))
        #expect(linked == ProcessManager.inheritanceKey(.unix(path: folder.appending("run/io.sock").path)))
        #expect(linked.hasSuffix("/run/io.sock"))
        #expect(ProcessManager.inheritanceKey(.unix(path: "/nonexistent/folder/io.sock")) == "unix:/nonexistent/folder/io.sock")
    }

    /// One unix pool at `path`, with a short stop timeout (how long a next server waits for a listener).
    private static func config(_ path: String) -> ProcessManagerConfig {
        var config = ProcessManagerConfig(pools: [PoolConfig(name: "io", listen: .unix(path: path), workers: 1, backlog: 1, maxRequests: 0,
                                                             memoryLimitMB: 0, requestTimeoutSeconds: 0, slowRequestSeconds: 0)])
        config.stopTimeoutSeconds = 0
        return config
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
