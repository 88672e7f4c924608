import Foundation
import Testing

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

    /// Found by review: a second run on the same state folder took over the first one's sockets.
    /// Runs deploy/run-local.sh as `make run` does, with no standard input, for at most `timeout`
    /// seconds (then its process group is killed). Returns exit status, standard output and error.
    static func runLocal(varDir: String, port: Int, timeout: Double = 60) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [Stack.root.appendingPathComponent("deploy/run-local.sh").path]
        var env = ProcessInfo.processInfo.environment
        env["VAR"] = varDir
        env["PORT"] = String(port)
        env["BIN"] = Stack.executable.path
        env["MEDISCOPE_MANIFEST"] = Stack.root.appendingPathComponent("models/manifest.json").path
        p.environment = env
        let stdout = Pipe(), stderr = Pipe()
        p.standardOutput = stdout
        p.standardError = stderr
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning, Date() < deadline { usleep(50_000) }
        if p.isRunning { kill(-p.processIdentifier, SIGKILL); p.terminate() }
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
                String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }

    @Test func aStateFolderInUseByALiveMasterIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mediscope-run-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = dir.appendingPathComponent("var/run")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        try Data("\(getpid())\n".utf8).write(to: run.appendingPathComponent("mediscope.pid"))  // a live process
        let (status, _, err) = try Self.runLocal(varDir: dir.appendingPathComponent("var").path, port: try Stack.freePort())
        #expect(status == 1 && err.contains("already running with the state folder"), "\(err)")
        #expect(Self.processes(using: dir.appendingPathComponent("var").path).isEmpty)
    }

    /// The master itself refuses to start beside a live master on the same state folder, and the first
    /// one keeps serving.
    @Test func aSecondMasterOnTheSameStateFolderIsRefused() async throws {
        let stack = try Stack()
        defer { stack.stop() }
        let p = Process()
        p.executableURL = Stack.executable
        p.arguments = ["serve"]
        p.environment = stack.environment
        let stderr = Pipe()
        p.standardError = stderr
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        let err = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(p.terminationStatus == 1 && err.contains("another mediscope serve"), "\(err)")
        #expect(try await stack.request("GET", "/api/health").status == 200, "the first master still serves")
        #expect(try await stack.upload(image: try Scans.jpeg).status == 201)
    }

    @Test func aTakenPortFailsNamingThePortAndStopsWhatItStarted() throws {
        let other = try Listener()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mediscope-run-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: dir) }
        let varDir = dir.appendingPathComponent("var").path

        let (status, out, err) = try Self.runLocal(varDir: varDir, port: other.port)
        #expect(status != 0, "stdout: \(out)")
        #expect(err.contains("port \(other.port) is already in use"), "stderr: \(err)")
        #expect(!out.contains("Mediscope is running"))
        // The pool it started is gone: nothing is left holding its state folder.
        var left = Self.processes(using: varDir)
        let deadline = Date().addingTimeInterval(30)
        while !left.isEmpty, Date() < deadline {
            usleep(100_000)
            left = Self.processes(using: varDir)
        }
        #expect(left.isEmpty, "left running: \(left)")
        for pid in left { kill(pid, SIGKILL) }
    }
}
