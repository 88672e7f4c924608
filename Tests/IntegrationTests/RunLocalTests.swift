import Foundation
import Testing
import TestSupport

/// `make run`'s script (deploy/run-local.sh) as a second user meets it: its port already taken.
@Suite struct RunLocalTests {
    /// A listening TCP socket on 127.0.0.1, standing for "another server".
    final class Listener {
        let fd: Int32
        let port: Int
        init() throws {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let ok = withUnsafeMutablePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                    bind(fd, p, len) == 0 && listen(fd, 8) == 0 && getsockname(fd, p, &len) == 0
                }
            }
            guard ok else { close(fd); throw StackError("cannot listen") }
            self.fd = fd
            port = Int(UInt16(bigEndian: addr.sin_port))
        }
        deinit { close(fd) }
    }

    /// Processes whose environment names `varDir` as MEDISCOPE_VAR: what the script started and left.
    static func processes(using varDir: String) -> [Int32] {
        let needle = Array("MEDISCOPE_VAR=\(varDir)\0".utf8)
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap(Int32.init) ?? []
        return pids.filter { pid in
            guard pid != getpid(), let env = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            return [UInt8](env).firstRange(of: needle) != nil
        }
    }

    /// What still holds `varDir` once 30 s passed or nothing does (a stopped stack's processes exit).
    static func processesLeft(using varDir: String) -> [Int32] {
        var left = processes(using: varDir)
        let deadline = Date().addingTimeInterval(30)
        while !left.isEmpty, Date() < deadline {
            usleep(100_000)
            left = processes(using: varDir)
        }
        return left
    }

    /// Found by review: a second run on the same state folder took over the first one's sockets.
    /// Runs deploy/run-local.sh as `make run` does, with no standard input, for at most `timeout`
    /// seconds (then its process group is killed).
    static func runLocal(varDir: String, port: Int, timeout: Double = 60, extra: [String: String] = [:]) throws -> ProcessResult {
        var env = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        env["VAR"] = varDir
        env["PORT"] = String(port)
        env["BIN"] = Repository.executable.path
        env["MEDISCOPE_MANIFEST"] = Repository.root.appendingPathComponent("models/manifest.json").path
        return try runProcess(URL(fileURLWithPath: "/bin/bash"), [Repository.root.appendingPathComponent("deploy/run-local.sh").path],
                              environment: env, timeout: timeout)
    }

    @Test func aStateFolderInUseByALiveMasterIsRefused() throws {
        let dir = TemporaryFolder("mediscope-run")
        let run = dir.appending("var/run")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        try Data("\(getpid())\n".utf8).write(to: run.appendingPathComponent("mediscope.pid"))  // a live process
        let result = try Self.runLocal(varDir: dir.appending("var").path, port: try Stack.freePort())
        #expect(result.status == 1 && result.stderr.contains("already running with the state folder"), "\(result.stderr)")
        #expect(Self.processes(using: dir.appending("var").path).isEmpty)
    }

    /// A master with its own state folder but the sockets of a running one (a hand-run `mediscope serve`
    /// with the package's paths; systemd's socket units hold them the same way) is refused, and the
    /// running one keeps its socket files and serves on.
    @Test func aSecondMasterCannotTakeTheSocketsARunningOneListensOn() async throws {
        let stack = try await Stack.start()
        defer { stack.stop() }
        let other = TemporaryFolder("mediscope-run")
        var environment = stack.environment
        environment["MEDISCOPE_VAR"] = other.appending("var").path
        environment["MEDISCOPE_LOG_FILE"] = other.appending("mediscope.log").path
        environment["MEDISCOPE_STOP_TIMEOUT_SECONDS"] = "1"   // how long it waits for the listener to go, plus 5 s
        func inode(_ path: String) -> UInt64? {
            var st = stat()
            return lstat(path, &st) == 0 ? UInt64(st.st_ino) : nil
        }
        var inodes: [String: UInt64] = [:]
        for pool in ["inference", "io"] {
            let path = stack.varDir.appendingPathComponent("run/\(pool).sock").path
            environment["MEDISCOPE_POOLS_\(pool.uppercased())_LISTEN"] = "unix:" + path
            inodes[path] = try #require(inode(path))
        }
        let second = try await runProcess(Repository.executable, ["serve"], environment: environment, timeout: 120)
        #expect(second.status != 0 && second.stderr.contains("waiting up to 6 s")
                && second.stderr.contains("cannot listen on unix:"), "\(second.stderr)")
        for (path, kept) in inodes {
            #expect(inode(path) == kept, "\(path) kept")
        }
        #expect(try await stack.request("GET", "/api/health").status == 200, "the io pool still serves")
        #expect(try await stack.upload(image: try Scans.jpeg).status == 201, "the inference pool still serves")
    }

    /// The master itself refuses to start beside a live master on the same state folder, and the first
    /// one keeps serving.
    @Test func aSecondMasterOnTheSameStateFolderIsRefused() async throws {
        let stack = try await Stack.start()
        defer { stack.stop() }
        let second = try await runProcess(Repository.executable, ["serve"], environment: stack.environment)
        #expect(second.status == 1 && second.stderr.contains("another mediscope serve"), "\(second.stderr)")
        #expect(try await stack.request("GET", "/api/health").status == 200, "the first master still serves")
        #expect(try await stack.upload(image: try Scans.jpeg).status == 201)
    }

    /// `make run` reads the file MEDISCOPE_CONFIG names (here one with a value out of range: the stack
    /// refuses it naming the key, so the file was read) and leaves nothing running.
    @Test func theConfigurationFileComesFromMEDISCOPE_CONFIG() throws {
        let dir = TemporaryFolder("mediscope-run")
        let file = dir.file("second.json", Array(#"{"pools": {"inference": {"workers": 0}}}"#.utf8)).path
        let varDir = dir.appending("var").path
        let result = try Self.runLocal(varDir: varDir, port: try Stack.freePort(), extra: ["MEDISCOPE_CONFIG": file])
        #expect(result.status != 0 && result.stderr.contains("pools.inference.workers must be 1...32"), "\(result.stderr)")
        let left = Self.processesLeft(using: varDir)
        #expect(left.isEmpty, "left running: \(left)")
    }

    @Test func aTakenPortFailsNamingThePortAndStopsWhatItStarted() throws {
        let other = try Listener()
        let dir = TemporaryFolder("mediscope-run")
        let varDir = dir.appending("var").path

        let result = try Self.runLocal(varDir: varDir, port: other.port)
        #expect(result.status != 0, "stdout: \(result.stdout)")
        #expect(result.stderr.contains("port \(other.port) is already in use"), "stderr: \(result.stderr)")
        #expect(!result.stdout.contains("Mediscope is running"))
        // The pool it started is gone: nothing is left holding its state folder.
        let left = Self.processesLeft(using: varDir)
        #expect(left.isEmpty, "left running: \(left)")
        for pid in left { kill(pid, SIGKILL) }
    }
}
