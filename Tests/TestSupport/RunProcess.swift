import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How a program run by `runProcess` ended and what it wrote.
package struct ProcessResult: Sendable {
    /// Its exit status (when it was killed, the status Foundation reports for the signal).
    package let status: Int32
    /// All it wrote to standard output.
    package let stdout: String
    /// All it wrote to standard error.
    package let stderr: String
    /// True when it was still running at the deadline and was killed.
    package let timedOut: Bool
}

/// Runs `executable` with `arguments` to its end and returns how it ended and what it wrote.
///
/// - `environment`: the whole environment (nil: this process's); `directory`: its working folder
///   (nil: this process's); `input`: its standard input (nil: none, so nothing waits for a terminal).
/// - `timeout`: seconds to wait before killing it (and its process group: Foundation makes the child a
///   group leader, so what a script started goes too) and reporting `timedOut`; nil waits for ever.
///
/// Output goes to files, not pipes: a program that writes a lot to standard error cannot block on a
/// full pipe while the test reads standard output, and a background child that keeps the descriptors
/// open cannot hold the test after the program itself exited.
package func runProcess(_ executable: URL, _ arguments: [String] = [], environment: [String: String]? = nil,
                        directory: URL? = nil, input: String? = nil, timeout: Double? = nil) throws -> ProcessResult {
    let folder = TemporaryFolder("mediscope-process")
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let environment { process.environment = environment }
    if let directory { process.currentDirectoryURL = directory }
    if let input {
        process.standardInput = try FileHandle(forReadingFrom: folder.file("stdin", input))
    } else {
        process.standardInput = FileHandle.nullDevice
    }
    let stdout = folder.file("stdout", ""), stderr = folder.file("stderr", "")
    let out = try FileHandle(forWritingTo: stdout), err = try FileHandle(forWritingTo: stderr)
    defer { try? out.close(); try? err.close() }
    process.standardOutput = out
    process.standardError = err
    try process.run()
    var timedOut = false
    if let timeout {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if process.isRunning {
            timedOut = true
            kill(-process.processIdentifier, SIGKILL)
            kill(process.processIdentifier, SIGKILL)
        }
    }
    process.waitUntilExit()
    func text(_ file: URL) -> String { String(decoding: (try? Data(contentsOf: file)) ?? Data(), as: UTF8.self) }
    return ProcessResult(status: process.terminationStatus, stdout: text(stdout), stderr: text(stderr), timedOut: timedOut)
}

/// `runProcess` for async code (what the compiler picks there): the program is waited for on a thread of
/// its own (see `onOwnThread`), so a long run (a validator, a fuzzer, a restore) holds no thread of the
/// cooperative pool that other tests need.
package func runProcess(_ executable: URL, _ arguments: [String] = [], environment: [String: String]? = nil,
                        directory: URL? = nil, input: String? = nil, timeout: Double? = nil) async throws -> ProcessResult {
    try await onOwnThread {
        try runProcess(executable, arguments, environment: environment, directory: directory, input: input, timeout: timeout)
    }
}
