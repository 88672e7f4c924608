import CServerSupport
import Foundation
import Glibc
import Testing
@testable import MediscopeServer

/// How a worker ended, decoded from its wait status, and the names of the signals that end workers.
@Suite struct ExitStatusTests {
    private func status(ofChild body: () -> Never) throws -> Int32 {
        let pid = fork()
        if pid == 0 { body() }
        try #require(pid > 0)
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        return status
    }

    @Test func exitCodesAndSignalsAreDecodedWithThePOSIXMacros() throws {
        let clean = ms_exit_status_decode(try status { _exit(0) })
        #expect(clean.exited == 1 && clean.code == 0 && clean.signaled == 0)
        let failed = ms_exit_status_decode(try status { _exit(3) })
        #expect(failed.exited == 1 && failed.code == 3 && failed.signaled == 0)
        let killed = ms_exit_status_decode(try status { kill(getpid(), SIGKILL); _exit(1) })
        #expect(killed.signaled == 1 && killed.signal == SIGKILL && killed.exited == 0)
        // Stopped statuses are neither (waitpid only reports them with WUNTRACED).
        let stopped = ms_exit_status_decode(0x137f)
        #expect(stopped.exited == 0 && stopped.signaled == 0)
    }

    /// The Swift runtime's crash handler (inherited across fork) would survive a SEGV sent with kill().
    @Test func aWorkersFatalSignalsTakeTheirDefaultAction() throws {
        for sig in [SIGSEGV, SIGBUS, SIGABRT, SIGILL] {
            let ended = ms_exit_status_decode(try status { ms_signals_default_fatal(); kill(getpid(), sig); _exit(1) })
            #expect(ended.signaled == 1 && ended.signal == sig, "signal \(sig)")
        }
    }

    @Test func signalsHaveTheirConstantNames() {
        #expect(ms_signal_name(SIGSEGV).map { String(cString: $0) } == "SIGSEGV")
        #expect(ms_signal_name(SIGKILL).map { String(cString: $0) } == "SIGKILL")
        #expect(ms_signal_name(0) == nil)
        #expect(ProcessManager.signalName(Int(SIGABRT)) == "SIGABRT")
        #expect(ProcessManager.signalName(0) == "none")
        #expect(ProcessManager.signalName(999) == "SIG999")
    }
}
