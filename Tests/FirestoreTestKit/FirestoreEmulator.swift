import Foundation
import MediscopeFirestore
import MediscopeNet
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The real Google Cloud Firestore emulator on a free loopback port, in its own process group, stopped
/// (group and all) by `stop()`. deploy/install-deps.sh installs it; a missing emulator fails the tests.
package final class FirestoreEmulator: @unchecked Sendable {
    package static let launcher = "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator"
    package let port: Int
    let process: Process

    package let address: String
    package var host: String { "\(address):\(port)" }

    /// On a free loopback port.
    package convenience init() throws {
        try self.init(address: "127.0.0.1", port: try Self.freePort())
    }

    /// On `address:port`; `launchPrefix` runs the launcher through another program, e.g.
    /// `["/usr/sbin/ip", "netns", "exec", "msl42-fs"]` (which execs it: the group stays the launcher's).
    package init(address: String, port: Int, launchPrefix: [String] = []) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.launcher) else {
            throw EmulatorError("\(Self.launcher) is missing: run deploy/install-deps.sh (google-cloud-cli-firestore-emulator)")
        }
        self.address = address
        self.port = port
        process = Process()
        // Foundation starts the child as the leader of a new process group: the launcher script and its
        // java child share it, so one kill(-pid) stops both.
        let command = launchPrefix + [Self.launcher, "start", "--host=\(address)", "--port=\(port)"]
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("firestore-emulator-\(address)-\(port).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date().addingTimeInterval(90)
        while Date() < deadline {
            if let r = try? CurlHTTP.get(URL(string: "http://\(host)/")!, timeout: 1), r.status == 200 { return }
            guard process.isRunning else { break }
            usleep(200_000)
        }
        stop()
        throw EmulatorError("the Firestore emulator did not start on \(host); see \(log.path)")
    }

    deinit { stop() }

    package func stop() {
        guard process.processIdentifier > 0, getpgid(process.processIdentifier) == process.processIdentifier else { return }
        let group = process.processIdentifier
        kill(-group, SIGTERM)
        for _ in 0..<50 where process.isRunning { usleep(100_000) }
        kill(-group, SIGKILL)
        process.waitUntilExit()
    }

    /// A client for `projectId` on this emulator (each test takes a project of its own).
    package func client(projectId: String = "p-\(UUID().uuidString.prefix(8).lowercased())",
                sleep: @escaping @Sendable (Double) -> Void = { _ in }) -> FirestoreClient {
        let (config, emulator) = FirestoreConfiguration.fromEnvironment(projectId: projectId, environment: ["FIRESTORE_EMULATOR_HOST": host])
        precondition(emulator)
        return FirestoreClient(configuration: config, credentials: EmulatorCredentials(), sleep: sleep)
    }

    /// A TCP port free on 127.0.0.1 now (the kernel's pick).
    package static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw EmulatorError("no free port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

package struct EmulatorError: Error, CustomStringConvertible {
    package let description: String
    init(_ d: String) { description = d }
}

/// The emulator a suite shares: started before its first test, stopped (process group and all) after
/// its last, even when a test fails.
package enum SharedEmulator {
    @TaskLocal package static var current: FirestoreEmulator?
    package static func get() throws -> FirestoreEmulator {
        guard let current else { throw EmulatorError("the suite has no .firestoreEmulator trait") }
        return current
    }
}

package struct FirestoreEmulatorTrait: SuiteTrait, TestScoping {
    package var isRecursive: Bool { false }
    package func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        // Off the cooperative pool: the emulator's JVM may take a minute to answer on a loaded machine.
        let emulator = try await FixtureStarts.shared.run { try FirestoreEmulator() }
        defer { emulator.stop() }
        try await SharedEmulator.$current.withValue(emulator) { try await function() }
    }
}

extension Trait where Self == FirestoreEmulatorTrait {
    /// Runs the suite against one real Firestore emulator (see `SharedEmulator.current`).
    package static var firestoreEmulator: Self { Self() }
}
