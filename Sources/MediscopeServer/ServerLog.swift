import Foundation
import Glibc
import Logging

/// JSON-lines log shared by the master and its workers (O_APPEND keeps lines whole), written through
/// swift-log. Redacted by construction: the only way in is `log(_:_:_:)`, whose event is a StaticString
/// and whose fields are `LogField`s (numbers, identifiers we minted, fixed words). Anything else that
/// reaches the handler (a message or metadata from some other swift-log user) is written as "[redacted]".
package final class ServerLog: @unchecked Sendable {
    package enum Level: String, Sendable { case debug, info, warning, error }

    private let sink: LogSink
    private var logger: Logger

    /// nil path: standard error.
    package init(path: String?) {
        let sink = LogSink(path: path)
        self.sink = sink
        logger = Logger(label: "mediscope") { _ in JSONLinesLogHandler(sink: sink) }
        logger.logLevel = .info
    }

    /// SIGUSR1: logrotate moved the file away; start a new one.
    package func reopen() { sink.reopen() }

    package func log(_ level: Level, _ event: StaticString, _ fields: [String: LogField] = [:]) {
        var metadata = fields.mapValues { Logger.MetadataValue.stringConvertible(LogField.Rendered(json: $0.json)) }
        metadata[JSONLinesLogHandler.eventKey] = .stringConvertible(LogField.Rendered(json: "\"\(event)\""))
        logger.log(level: level.swiftLog, "\(event)", metadata: metadata)
    }

    package func info(_ event: StaticString, _ fields: [String: LogField] = [:]) { log(.info, event, fields) }
    package func warning(_ event: StaticString, _ fields: [String: LogField] = [:]) { log(.warning, event, fields) }
    package func error(_ event: StaticString, _ fields: [String: LogField] = [:]) { log(.error, event, fields) }

    // MARK: - The route of the request in progress (for the slow-request log)

    private let routeLock = NSLock()
    private var route: String?

    /// Notes the route the request in progress matched, as "METHOD pattern" (`GET /api/analyses/{id}`):
    /// the slow-request log names it, never the path, which holds record ids. A worker serves one request
    /// at a time, so one note per process is enough.
    package func noteRoute(method: String, pattern: String) {
        routeLock.withLock { route = method + " " + pattern }
    }

    /// The route noted since the last call, and forgets it; nil when none was (no route matched).
    package func takeRoute() -> String? {
        routeLock.withLock {
            defer { route = nil }
            return route
        }
    }
}

extension ServerLog.Level {
    var swiftLog: Logger.Level {
        switch self {
        case .debug: .debug
        case .info: .info
        case .warning: .warning
        case .error: .error
        }
    }
}

/// The log file descriptor, reopened on SIGUSR1.
final class LogSink: @unchecked Sendable {
    private let path: String?
    private var fd: Int32
    private let lock = NSLock()

    init(path: String?) {
        self.path = path
        fd = path.map { Self.open($0) } ?? 2
    }

    private static func open(_ path: String) -> Int32 {
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        return fd >= 0 ? fd : 2
    }

    func reopen() {
        guard let path else { return }
        lock.withLock {
            let new = Self.open(path)
            if fd != 2 { close(fd) }
            fd = new
        }
    }

    func write(_ line: String) {
        lock.withLock { _ = line.withCString { Glibc.write(fd, $0, strlen($0)) } }
    }
}

/// swift-log handler writing one JSON object per line; passes through only values rendered by `LogField`.
struct JSONLinesLogHandler: LogHandler {
    static let eventKey = "_event"
    let sink: LogSink
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
             file: String, function: String, line: UInt) {
        let all = metadata.merging(explicit ?? [:]) { $1 }
        let event = Self.rendered(all[Self.eventKey]) ?? "\"[redacted]\""
        var text = "{\"ts\":\"\(Self.timestamp())\",\"level\":\"\(level.rawValue)\",\"event\":\(event),\"pid\":\(getpid())"
        for key in all.keys.sorted() where key != Self.eventKey {
            let safeKey = String(key.filter { $0.isLetter || $0.isNumber || $0 == "_" }.prefix(40))
            text += ",\"\(safeKey)\":\(Self.rendered(all[key]) ?? "\"[redacted]\"")"
        }
        sink.write(text + "}\n")
    }

    private static func rendered(_ value: Logger.Metadata.Value?) -> String? {
        if case .stringConvertible(let v)? = value, let r = v as? LogField.Rendered { return r.json }
        return nil
    }

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
package enum LogField: Sendable {
    case int(Int)
    case double(Double)
    case bool(Bool)
    /// A word from our own code: a pool name, a route pattern, a signal name, an error kind.
    case word(StaticString)
    /// An identifier the server generated (analysis id, request id) or a status text it built.
    case token(Token)

    package struct Token: Sendable {
        let value: String
        /// Only characters of identifiers and our own messages; anything else is replaced.
        package init(_ value: String) {
            let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:{} ")
            self.value = String(value.prefix(200).map { allowed.contains($0) ? $0 : "?" })
        }
    }

    /// A value already rendered as JSON by `LogField`; the handler only writes values of this type.
    struct Rendered: CustomStringConvertible, Sendable {
        let json: String
        var description: String { json }
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
