import CServerSupport
import Foundation
import Glibc
import Testing
@testable import MediscopeServer

/// The crash ledger: files and clients charged with crashes, in shared memory.
@Suite struct CrashLedgerTests {
    let rules = CrashLedger.Rules(fileSeconds: 100, clientLimit: 3, clientWindowSeconds: 10)
    static let s: Int64 = 1_000_000_000

    @Test func aChargedFileIsRefusedForItsTimeWithItsCause() throws {
        let ledger = try CrashLedger()
        let key = CrashLedger.contentKey(sha256Hex: "3fa2c1d0" + String(repeating: "e", count: 56))
        #expect(ledger.entry(.files, key: key) == nil)
        ledger.charge(.files, key: key, cause: .signal(SIGSEGV), rules: rules, at: 5 * Self.s)
        let entry = try #require(ledger.entry(.files, key: key))
        #expect(entry.crashes == 1 && entry.cause == .signal(SIGSEGV) && "\(entry.cause)" == "SIGSEGV")
        #expect(entry.isRefused(at: 104 * Self.s) && !entry.isRefused(at: 105 * Self.s))
        ledger.charge(.files, key: key, cause: .timeLimit, rules: rules, at: 50 * Self.s)
        let again = try #require(ledger.entry(.files, key: key))
        #expect(again.crashes == 2 && again.firstNs == 5 * Self.s && again.cause == .timeLimit)
        #expect(again.isRefused(at: 149 * Self.s), "refused for its time after the latest crash")
        #expect(CrashLedger.prefix(key) == "3fa2c1d0", "logs show the first 8 hex digits of the SHA-256")
        #expect(ledger.entries(.clients).isEmpty)
    }

    @Test func causesSurviveTheirEncoding() {
        for cause: CrashLedger.Cause in [.signal(SIGSEGV), .signal(SIGKILL), .timeLimit, .exit(0), .exit(3), .exit(255)] {
            #expect(CrashLedger.Cause(encoded: cause.encoded) == cause)
        }
        #expect(CrashLedger.Cause.exit(3).kind == "exit" && CrashLedger.Cause.timeLimit.kind == "time_limit")
    }

    @Test func aClientIsRefusedAtItsLimitOfCrashesInARun() throws {
        let ledger = try CrashLedger()
        let client = CrashLedger.clientKey(user: "01USER")
        ledger.charge(.clients, key: client, cause: .signal(SIGSEGV), rules: rules, at: 0)
        ledger.charge(.clients, key: client, cause: .signal(SIGSEGV), rules: rules, at: 20 * Self.s)
        #expect(ledger.entry(.clients, key: client)?.crashes == 1, "more than the window apart: a new run")
        ledger.charge(.clients, key: client, cause: .signal(SIGSEGV), rules: rules, at: 25 * Self.s)
        #expect(ledger.entry(.clients, key: client)?.isRefused(at: 25 * Self.s) == false, "two crashes: still served")
        ledger.charge(.clients, key: client, cause: .signal(SIGBUS), rules: rules, at: 30 * Self.s)
        let entry = try #require(ledger.entry(.clients, key: client))
        #expect(entry.crashes == 3 && entry.firstNs == 20 * Self.s && entry.refusedUntilNs == 40 * Self.s)
        #expect(ledger.refusedCount(.clients, at: 39 * Self.s) == 1 && ledger.refusedCount(.clients, at: 40 * Self.s) == 0)
    }

    @Test func aFullTableReusesWhatNoLongerMattersThenTheLeastRecentlyCharged() throws {
        let ledger = try CrashLedger()
        let ms = Self.s / 1000
        for i in 1...CrashLedger.capacity {
            ledger.charge(.files, key: Int64(i), cause: .signal(SIGSEGV), rules: rules, at: Int64(i) * ms)
        }
        #expect(ledger.entries(.files).count == CrashLedger.capacity)
        ledger.charge(.files, key: 9999, cause: .signal(SIGSEGV), rules: rules, at: 50 * Self.s)
        #expect(ledger.entry(.files, key: 1) == nil && ledger.entry(.files, key: 2) != nil, "all refused: the oldest made room")
        // At 120 s the first files' refusals are over (9999's is not): one of them is reused.
        ledger.charge(.files, key: 7777, cause: .signal(SIGSEGV), rules: rules, at: 120 * Self.s)
        #expect(ledger.entry(.files, key: 9999) != nil && ledger.entry(.files, key: 7777) != nil && ledger.entry(.files, key: 2) == nil)
        #expect(ledger.entries(.files).count == CrashLedger.capacity)
        ledger.forgetAll()
        #expect(ledger.entries(.files).isEmpty && ledger.entry(.files, key: 9999) == nil)
    }

    @Test func keysAreStableAndApart() {
        #expect(CrashLedger.clientKey(user: "01A") == CrashLedger.clientKey(user: "01A"))
        #expect(CrashLedger.clientKey(user: "127.0.0.1") != CrashLedger.clientKey(address: "127.0.0.1"))
        #expect(CrashLedger.clientKey(address: "::1") != 0 && CrashLedger.contentKey(sha256Hex: String(repeating: "0", count: 64)) != 0)
        #expect(CrashLedger.prefix(0x0000_00ab_0000_0000) == "000000ab")
    }

    @Test func everyArgumentIsCheckedInC() throws {
        let ledger = try #require(ms_ledger_create())
        defer { ms_ledger_destroy(ledger) }
        var entry = ms_ledger_entry()
        for (table, index): (Int32, Int32) in [(-1, 0), (2, 0), (0, -1), (1, Int32(MS_LEDGER_ENTRIES))] {
            errno = 0
            #expect(ms_ledger_read(ledger, table, index, &entry) == -1 && errno == EINVAL)
            #expect(ms_ledger_write(ledger, table, index, &entry) == -1)
        }
        errno = 0
        #expect(ms_ledger_find(ledger, 0, 0, &entry) == -1 && errno == EINVAL)
        #expect(ms_ledger_find(ledger, 0, 42, &entry) == -1 && errno == ENOENT)
        var value: Int64 = 0
        #expect(ms_ledger_counter_load(ledger, Int32(MS_LEDGER_COUNTER_COUNT.rawValue), &value) == -1)
        #expect(ms_ledger_counter_add(ledger, -1, 1) == -1)
    }

    /// What the master writes after the fork, a worker sees whole.
    @Test func workersSeeWhatTheMasterChargesAfterTheFork() throws {
        let ledger = try #require(ms_ledger_create())
        defer { ms_ledger_destroy(ledger) }
        let pid = fork()
        if pid == 0 {
            // Only async-signal-safe work in the child: poll the shared entry until a deadline.
            var seen = ms_ledger_entry()
            let deadline = ms_now_ns() + 20 * Self.s
            while ms_now_ns() < deadline {
                if ms_ledger_find(ledger, 1, 77, &seen) >= 0 { _exit(seen.crashes == 3 && seen.cause == 11 ? 0 : 2) }
            }
            _exit(1)
        }
        try #require(pid > 0)
        var entry = ms_ledger_entry(key: 77, crashes: 3, first_ns: 1, last_ns: 2, refused_until_ns: 3, cause: 11)
        #expect(ms_ledger_write(ledger, 1, 200, &entry) == 0)
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        let ended = ms_exit_status_decode(status)
        #expect(ended.exited == 1 && ended.code == 0)
    }
}
