import CServerSupport
import Foundation

/// Which uploaded files and which clients were busy in a worker that died: a crash is charged to the
/// request that caused it, so one bad file stops one request, not the service.
///
/// A worker records in its scoreboard slot who its request is for (its address from the start; the
/// signed-in account once a route that decodes files says so) and which file it works on, before the
/// expensive part (`ServerContext.admitClient` / `admitContent`). When the worker dies abnormally while
/// busy (a signal, or killed by the request time limit) the master charges that file and that client
/// here; a request stopped by the time limit with no file to decode charges nobody (the store or a
/// remote service was slow, not the client). The routes that decode files ask first: a file that crashed a worker is refused (422)
/// without reaching a decoder, a client whose requests crashed workers `clientCrashLimit` times within
/// `clientCrashWindowSeconds` is refused for a while (429 with Retry-After).
///
/// Shared memory (`crashledger.c`), mapped by the master before the fork: fixed size (256 files, 256
/// clients; the least recently charged entry makes room), keys only: a prefix of the file's SHA-256 and
/// a hash of the account or address, never patient data. It lives as long as the master: a restart or
/// a reload (which may bring a fixed model or configuration) forgets it.
package final class CrashLedger: @unchecked Sendable {
    // Shared with forked children; only ever touched through the C functions.
    private let ledger: OpaquePointer

    /// Entries per table.
    package static let capacity = Int(MS_LEDGER_ENTRIES)

    /// Maps a fresh, empty ledger. Call it in the master, before the workers are forked.
    package init() throws {
        guard let ledger = ms_ledger_create() else { throw ServerError("cannot map the crash ledger: \(errnoText())") }
        self.ledger = ledger
    }

    deinit { ms_ledger_destroy(ledger) }

    /// The two tables: uploaded files by content, and clients.
    package enum Table: Int32, Sendable {
        case files = 0
        case clients = 1
        var c: Int32 { rawValue }
    }

    /// What ended a worker that died busy with a request.
    package enum Cause: Sendable, Equatable, CustomStringConvertible {
        /// Killed by a signal (SIGSEGV, SIGABRT, SIGKILL from the OOM killer...).
        case signal(Int32)
        /// Killed by the master for running past the pool's request time limit.
        case timeLimit
        /// Exited with a non-zero status.
        case exit(Int32)

        /// How the ledger stores it: a signal number (> 0), -1 for the time limit, -(256 + code) for an exit.
        var encoded: Int64 {
            switch self {
            case .signal(let s): Int64(s)
            case .timeLimit: -1
            case .exit(let code): -(256 + Int64(code))
            }
        }

        init(encoded: Int64) {
            switch encoded {
            case 1...: self = .signal(Int32(clamping: encoded))
            case -1: self = .timeLimit
            default: self = .exit(Int32(clamping: -encoded - 256))
            }
        }

        /// `signal`, `time_limit` or `exit`: the label of /api/metrics.
        package var kind: String {
            switch self {
            case .signal: "signal"
            case .timeLimit: "time_limit"
            case .exit: "exit"
            }
        }

        /// "SIGSEGV", "the request time limit", "exit status 3".
        package var description: String {
            switch self {
            case .signal(let s): ProcessManager.signalName(Int(s))
            case .timeLimit: "the request time limit"
            case .exit(let code): "exit status \(code)"
            }
        }
    }

    /// One key's record.
    package struct Entry: Sendable, Equatable {
        /// The content or client key.
        package var key: Int64
        /// Crashes charged to it (for a client: since `firstNs`, the start of its current run).
        package var crashes: Int
        /// When the first and the latest of them happened (CLOCK_MONOTONIC ns, `ms_now_ns`).
        package var firstNs: Int64
        package var lastNs: Int64
        /// Requests for the key are refused before this (0: not refused).
        package var refusedUntilNs: Int64
        /// What ended the latest one.
        package var cause: Cause

        /// Whether a request for the key is refused at `nowNs`.
        package func isRefused(at nowNs: Int64) -> Bool { refusedUntilNs > nowNs }
    }

    // MARK: - Reading (any process)

    /// The entry for `key` in `table`, or nil.
    package func entry(_ table: Table, key: Int64) -> Entry? {
        guard key != 0 else { return nil }
        var raw = ms_ledger_entry()
        guard ms_ledger_find(ledger, table.c, key, &raw) >= 0 else { return nil }
        return Self.entry(raw)
    }

    /// Every entry in use in `table`.
    package func entries(_ table: Table) -> [Entry] {
        (0..<Self.capacity).compactMap { i in
            var raw = ms_ledger_entry()
            guard ms_ledger_read(ledger, table.c, Int32(i), &raw) == 0, raw.key != 0 else { return nil }
            return Self.entry(raw)
        }
    }

    /// How many keys of `table` are refused at `nowNs`.
    package func refusedCount(_ table: Table, at nowNs: Int64 = ms_now_ns()) -> Int {
        entries(table).filter { $0.isRefused(at: nowNs) }.count
    }

    private static func entry(_ raw: ms_ledger_entry) -> Entry {
        Entry(key: raw.key, crashes: Int(raw.crashes), firstNs: raw.first_ns, lastNs: raw.last_ns,
              refusedUntilNs: raw.refused_until_ns, cause: Cause(encoded: raw.cause))
    }

    // MARK: - Charging (master only)

    /// How long charges count and refusals last.
    struct Rules: Sendable {
        /// A file is refused for this long after its latest crash.
        var fileSeconds: Double
        /// A client is refused once this many crashes are charged to it, each within `clientWindowSeconds`
        /// of the one before, until `clientWindowSeconds` after the latest.
        var clientLimit: Int
        var clientWindowSeconds: Double

        init(_ config: ProcessManagerConfig) {
            fileSeconds = config.poisonedFileSeconds
            clientLimit = config.clientCrashLimit
            clientWindowSeconds = config.clientCrashWindowSeconds
        }

        init(fileSeconds: Double, clientLimit: Int, clientWindowSeconds: Double) {
            self.fileSeconds = fileSeconds; self.clientLimit = clientLimit; self.clientWindowSeconds = clientWindowSeconds
        }

        /// `old` (nil when new or reused) with one more crash at `nowNs`.
        func charged(_ old: Entry?, table: Table, key: Int64, at nowNs: Int64, cause: Cause) -> Entry {
            switch table {
            case .files:
                return Entry(key: key, crashes: (old?.crashes ?? 0) + 1, firstNs: old?.firstNs ?? nowNs, lastNs: nowNs,
                             refusedUntilNs: nowNs + Self.ns(fileSeconds), cause: cause)
            case .clients:
                let window = Self.ns(clientWindowSeconds)
                // A run of crashes goes on while each comes within the window of the one before.
                let continues = old.map { nowNs - $0.lastNs <= window } ?? false
                let crashes = continues ? old!.crashes + 1 : 1
                return Entry(key: key, crashes: crashes, firstNs: continues ? old!.firstNs : nowNs, lastNs: nowNs,
                             refusedUntilNs: crashes >= max(clientLimit, 1) ? nowNs + window : 0, cause: cause)
            }
        }

        /// Whether `entry` still matters at `nowNs`: refused, or (a client) able to add to its run.
        func isLive(_ entry: Entry, table: Table, at nowNs: Int64) -> Bool {
            if entry.isRefused(at: nowNs) { return true }
            return table == .clients && nowNs - entry.lastNs <= Self.ns(clientWindowSeconds)
        }

        static func ns(_ seconds: Double) -> Int64 { Int64((max(0, seconds) * 1e9).rounded()) }
    }

    /// Charges one crash to `key` in `table` at `nowNs` and returns its entry. Room is made, if needed,
    /// from a free entry, else one that no longer matters, else the least recently charged one.
    @discardableResult
    func charge(_ table: Table, key: Int64, cause: Cause, rules: Rules, at nowNs: Int64 = ms_now_ns()) -> Entry? {
        guard key != 0 else { return nil }
        var raw = ms_ledger_entry()
        var index = ms_ledger_find(ledger, table.c, key, &raw)
        let old = index >= 0 ? Self.entry(raw) : nil
        if index < 0 {
            var oldest: (index: Int32, lastNs: Int64)?
            for i in 0..<Int32(Self.capacity) {
                guard ms_ledger_read(ledger, table.c, i, &raw) == 0 else { continue }
                if raw.key == 0 || !rules.isLive(Self.entry(raw), table: table, at: nowNs) { index = i; break }
                if oldest == nil || raw.last_ns < oldest!.lastNs { oldest = (i, raw.last_ns) }
            }
            if index < 0, let oldest { index = oldest.index }
        }
        guard index >= 0 else { return nil }
        let entry = rules.charged(old, table: table, key: key, at: nowNs, cause: cause)
        var write = ms_ledger_entry(key: entry.key, crashes: Int64(entry.crashes), first_ns: entry.firstNs, last_ns: entry.lastNs,
                                    refused_until_ns: entry.refusedUntilNs, cause: entry.cause.encoded)
        precondition(ms_ledger_write(ledger, table.c, index, &write) == 0, "crash ledger entry \(index) is out of range")
        return entry
    }

    /// Forgets every file and client (a reload: the deployment may have been fixed). Counters stay.
    func forgetAll() {
        var empty = ms_ledger_entry()
        for table in [Table.files, .clients] {
            for i in 0..<Int32(Self.capacity) { _ = ms_ledger_write(ledger, table.c, i, &empty) }
        }
    }

    // MARK: - Counters

    func load(_ counter: ms_ledger_counter) -> Int64 {
        var value: Int64 = 0
        precondition(ms_ledger_counter_load(ledger, Int32(counter.rawValue), &value) == 0, "crash ledger counter out of range")
        return value
    }

    func add(_ counter: ms_ledger_counter, _ delta: Int64) {
        precondition(ms_ledger_counter_add(ledger, Int32(counter.rawValue), delta) == 0, "crash ledger counter out of range")
    }

    func store(_ counter: ms_ledger_counter, _ value: Int64) {
        precondition(ms_ledger_counter_store(ledger, Int32(counter.rawValue), value) == 0, "crash ledger counter out of range")
    }

    /// The master's crash-loop state, as the status page, metrics and readiness read it.
    package struct CrashLoop: Codable, Sendable, Equatable {
        /// Whether the master is backing off workers that crash without a request now.
        package var active: Bool
        /// When the current crash loop began.
        package var since: Date?
        /// The longest delay before a worker is started again, now.
        package var respawnDelaySeconds: Double
        /// Crash loops since the master started.
        package var episodes: Int
    }

    /// The master's crash-loop state now.
    package var crashLoop: CrashLoop {
        let active = load(MS_LEDGER_CRASH_LOOP) != 0
        return CrashLoop(active: active,
                         since: active ? Date(timeIntervalSince1970: Double(load(MS_LEDGER_CRASH_LOOP_SINCE_UNIX))) : nil,
                         respawnDelaySeconds: active ? Double(load(MS_LEDGER_RESPAWN_DELAY_MS)) / 1000 : 0,
                         episodes: Int(load(MS_LEDGER_CRASH_LOOPS)))
    }

    /// Requests refused for a file that crashed a worker before (422).
    package var refusedFiles: Int { Int(load(MS_LEDGER_REFUSED_FILES)) }
    /// Requests refused for a client over its crash limit (429).
    package var refusedClients: Int { Int(load(MS_LEDGER_REFUSED_CLIENTS)) }

    // MARK: - Keys

    /// The content key of a file whose SHA-256 is `sha256Hex` (64 hex digits): its first 8 bytes.
    package static func contentKey(sha256Hex: String) -> Int64 {
        let key = Int64(bitPattern: UInt64(sha256Hex.prefix(16), radix: 16) ?? 0)
        return key == 0 ? 1 : key  // 0 means "none"
    }

    /// The client key of a signed-in account.
    package static func clientKey(user id: String) -> Int64 { fnv1a("user:" + id) }

    /// The client key of an address (requests before a user is known).
    package static func clientKey(address: String) -> Int64 { fnv1a("addr:" + address) }

    /// What logs and answers show of a key: its first 8 hex digits (for a file, those of its SHA-256).
    package static func prefix(_ key: Int64) -> String {
        let hex = String(UInt64(bitPattern: key), radix: 16)
        return String((String(repeating: "0", count: 16 - hex.count) + hex).prefix(8))
    }

    /// FNV-1a, 64 bits: a stable hash in every process (Swift's Hasher is seeded per process).
    static func fnv1a(_ text: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash == 0 ? 1 : Int64(bitPattern: hash)
    }
}

extension ServerContext {
    /// Before a request's expensive part: charges it to `client` (a signed-in account) if its worker
    /// dies from here on, and refuses it (429 with Retry-After) when `client` or one of `alsoChecked`
    /// (the address, charged for crashes before a user was known) is over its crash limit.
    package func admitClient(slot: Int, client: Int64, alsoChecked: [Int64] = []) throws(Problem) {
        scoreboard.store(slot, MS_SLOT_CLIENT_KEY, client)
        let now = ms_now_ns()
        guard let refused = ([client] + alsoChecked).compactMap({ crashes.entry(.clients, key: $0) })
            .filter({ $0.isRefused(at: now) }).max(by: { $0.refusedUntilNs < $1.refusedUntilNs }) else { return }
        crashes.add(MS_LEDGER_REFUSED_CLIENTS, 1)
        let seconds = max(1, Int((Double(refused.refusedUntilNs - now) / 1e9).rounded(.up)))
        log.warning("poisoned_request_refused", ["reason": .word("client"), "client": .token(.init(CrashLedger.prefix(refused.key))),
                                                 "crashes": .int(refused.crashes), "retry_after_s": .int(seconds)])
        throw Problem(status: 429, detail: "requests from this client stopped the analysis \(refused.crashes) times in a short while "
                      + "(the latest by \(refused.cause)); this server takes none of its files for \(seconds) s",
                      retryAfter: seconds)
    }

    /// Before a file is decoded: charges the request to `content` (its content key) if its worker dies
    /// from here on, and refuses it (422) when that file crashed a worker before, without decoding it.
    package func admitContent(slot: Int, content: Int64) throws(Problem) {
        scoreboard.store(slot, MS_SLOT_CONTENT_KEY, content)
        guard let refused = crashes.entry(.files, key: content), refused.isRefused(at: ms_now_ns()) else { return }
        crashes.add(MS_LEDGER_REFUSED_FILES, 1)
        let prefix = CrashLedger.prefix(content)
        log.warning("poisoned_request_refused", ["reason": .word("file"), "file": .token(.init(prefix)),
                                                 "crashes": .int(refused.crashes)])
        throw Problem(status: 422, detail: "this file stopped the analysis before and is refused: a worker handling it ended "
                      + "abnormally (\(refused.cause)), so this server does not decode it again. Nothing was stored; "
                      + "if the file should be readable, give it to your administrator (SHA-256 \(prefix)…)")
    }
}
