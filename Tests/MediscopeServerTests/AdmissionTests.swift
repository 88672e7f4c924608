import CServerSupport
import Foundation
import Glibc
import Testing
@testable import MediscopeServer

/// What a worker checks before decoding: its slot records the file and the client, and the ledger refuses.
@Suite struct AdmissionTests {
    let context: ServerContext
    let slot: Int

    init() throws {
        let board = try Scoreboard()
        context = ServerContext(pools: [], scoreboard: board, crashes: try CrashLedger(), log: ServerLog(path: nil), masterPID: getpid())
        slot = try #require(board.claimSlot(pool: 0, generation: 1))
        board.requestStarted(slot: slot, pool: 0, at: ms_now_ns())
    }

    @Test func aCleanRequestIsAdmittedAndRecordedForCharging() throws {
        try context.admitClient(slot: slot, client: 11, alsoChecked: [12])
        try context.admitContent(slot: slot, content: 21)
        #expect(context.scoreboard.requestSubject(slot) == (11, 21))
        #expect(context.scoreboard.snapshot(pool: 0).workers.first?.currentFile == CrashLedger.prefix(21), "the status page shows it")
        context.scoreboard.requestFinished(slot: slot, rssKB: 0)
        #expect(context.scoreboard.requestSubject(slot) == (0, 0), "an idle worker is charged to nobody")
    }

    @Test func aFileThatCrashedAWorkerIsRefusedWith422() throws {
        let rules = CrashLedger.Rules(fileSeconds: 60, clientLimit: 3, clientWindowSeconds: 600)
        let key = CrashLedger.contentKey(sha256Hex: "deadbeef" + String(repeating: "0", count: 56))
        context.crashes.charge(.files, key: key, cause: .signal(SIGSEGV), rules: rules)
        let problem = try #require(throws: Problem.self) { try context.admitContent(slot: slot, content: key) }
        #expect(problem.status == 422 && problem.retryAfter == nil)
        #expect(problem.detail.hasPrefix("this file stopped the analysis before and is refused:"))
        #expect(problem.detail.contains("SIGSEGV") && problem.detail.contains("deadbeef"))
        #expect(context.crashes.refusedFiles == 1 && context.crashes.refusedClients == 0)
        try context.admitContent(slot: slot, content: key + 1)
    }

    @Test func aClientOverItsLimitIsRefusedWith429AndRetryAfter() throws {
        let rules = CrashLedger.Rules(fileSeconds: 60, clientLimit: 2, clientWindowSeconds: 600)
        for _ in 0..<2 { context.crashes.charge(.clients, key: 12, cause: .timeLimit, rules: rules) }
        try context.admitClient(slot: slot, client: 11)
        let problem = try #require(throws: Problem.self) { try context.admitClient(slot: slot, client: 11, alsoChecked: [12]) }
        #expect(problem.status == 429 && (590...600).contains(problem.retryAfter ?? 0))
        #expect(problem.detail.contains("2 times") && problem.detail.contains("the request time limit"))
        #expect(context.crashes.refusedClients == 1)
    }
}
