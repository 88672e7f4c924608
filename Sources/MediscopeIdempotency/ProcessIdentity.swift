import Foundation

/// A process on this host, told apart from a later one that got its pid: the pid and the start time
/// `/proc/<pid>/stat` gives it (clock ticks after boot, field 22).
package struct ProcessIdentity: Sendable, Equatable {
    /// The pid.
    package let pid: Int32
    /// Its start time in clock ticks after boot; 0 when /proc could not tell.
    package let startTicks: Int64

    package init(pid: Int32, startTicks: Int64) { self.pid = pid; self.startTicks = startTicks }

    /// This process (read once per call: cheap, and a fork gets its own).
    package static var current: ProcessIdentity {
        let pid = getpid()
        return ProcessIdentity(pid: pid, startTicks: startTicks(of: pid) ?? 0)
    }

    /// Process `pid` as it runs now; nil when there is none.
    package static func of(_ pid: Int32) -> ProcessIdentity? {
        startTicks(of: pid).map { ProcessIdentity(pid: pid, startTicks: $0) }
    }

    /// Whether this process still runs: its pid exists and started when this one did.
    package var isRunning: Bool {
        guard pid > 0, let ticks = Self.startTicks(of: pid) else { return false }
        return ticks == startTicks
    }

    /// Field 22 of /proc/<pid>/stat, read after the command name's closing parenthesis (a name may hold
    /// spaces and parentheses); nil when the process is gone.
    static func startTicks(of pid: Int32) -> Int64? {
        guard let handle = FileHandle(forReadingAtPath: "/proc/\(pid)/stat") else { return nil }
        defer { try? handle.close() }
        guard let data = try? handle.readToEnd() else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return nil }
        // After ")": field 3 (state) is the first; field 22 is the 20th.
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? Int64(fields[19]) : nil
    }
}
