import Foundation
import Glibc

/// JSON-lines log shared by the master and its workers (O_APPEND keeps lines whole).
/// Fields are `LogField`s: numbers, identifiers we generate and fixed words; there is no way to
/// pass free text from a request, so patient details cannot reach the log by accident.
public final class ServerLog: @unchecked Sendable {
    public enum Level: String, Sendable { case debug, info, warning, error }

    private let path: String?
    private var fd: Int32
    private let lock = NSLock()
    public var minimum: Level = .info

    /// nil path: standard error.
    public init(path: String?) {
        self.path = path
        fd = path.map { Self.open($0) } ?? 2
    }

    private static func open(_ path: String) -> Int32 {
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        return fd >= 0 ? fd : 2
    }

    /// SIGUSR1: logrotate moved the file away; start a new one.
    public func reopen() {
        guard let path else { return }
        lock.withLock {
            let new = Self.open(path)
            if fd != 2 { close(fd) }
            fd = new
        }
    }

    public func log(_ level: Level, _ event: StaticString, _ fields: [String: LogField] = [:]) {
        guard Self.rank(level) >= Self.rank(minimum) else { return }
        var line = "{\"ts\":\"\(Self.timestamp())\",\"level\":\"\(level.rawValue)\",\"event\":\"\(event)\",\"pid\":\(getpid())"
        for key in fields.keys.sorted() { line += ",\"\(key)\":\(fields[key]!.json)" }
        line += "}\n"
        lock.withLock {
            _ = line.withCString { Glibc.write(fd, $0, strlen($0)) }
        }
    }

    public func info(_ event: StaticString, _ fields: [String: LogField] = [:]) { log(.info, event, fields) }
    public func warning(_ event: StaticString, _ fields: [String: LogField] = [:]) { log(.warning, event, fields) }
    public func error(_ event: StaticString, _ fields: [String: LogField] = [:]) { log(.error, event, fields) }

    private static func rank(_ l: Level) -> Int { [.debug: 0, .info: 1, .warning: 2, .error: 3][l]! }

    private static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var tm = tm()
        var t = ts.tv_sec
        gmtime_r(&t, &tm)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                      tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1_000_000)
    }
}

/// A value that may go into the log. Strings only from fixed words or identifiers we minted.
public enum LogField: Sendable {
    case int(Int)
    case double(Double)
    case bool(Bool)
    /// A word from our own code: a pool name, a route pattern, a signal name, an error kind.
    case word(StaticString)
    /// An identifier the server generated (analysis id, request id) or a status text it built.
    case token(Token)

    public struct Token: Sendable {
        let value: String
        /// Only characters of identifiers and our own messages; anything else is replaced.
        public init(_ value: String) {
            let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:{} ")
            self.value = String(value.prefix(200).map { allowed.contains($0) ? $0 : "?" })
        }
    }

    var json: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v): return v.isFinite ? String(format: "%.3f", v) : "null"
        case .bool(let v): return v ? "true" : "false"
        case .word(let s): return "\"\(s)\""
        case .token(let t): return "\"\(t.value)\""
        }
    }
}
