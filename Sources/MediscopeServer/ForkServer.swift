import CServerSupport
import Foundation
import Glibc

/// The process a preloading pool's workers are forked from (`PoolConfig.preload`).
///
/// The master forks it like a background process; it runs `WorkerApplication.preload` once (the
/// models), then forks a worker for each request the master sends over a socket pair. Each worker is
/// forked through a short-lived intermediate child that exits at once, so the worker is adopted by the
/// master (a child subreaper): the master reaps, times and kills it like any worker it forked itself,
/// while the preloaded memory stays shared copy-on-write between the fork server and every worker.
/// Python's multiprocessing calls this a fork server; the master stays free of what it preloads.
struct ForkServer {
    let pool: PoolRuntime
    let context: ServerContext
    let app: WorkerApplication
    /// This end of the socket pair; the master holds the other.
    let socket: Int32

    /// One request or reply on the socket pair: a datagram of two 32-bit integers.
    struct Message {
        /// The scoreboard slot the master claimed for the worker; or `Message.ready` (the fork server's
        /// own news: preloaded).
        var slot: Int32
        /// In a request, the worker's generation; in a reply, the worker's pid (-1: fork failed); in
        /// `ready`, the preload's milliseconds, negative when something failed to preload.
        var value: Int32
        static let ready: Int32 = -1

        func send(on socket: Int32) -> Bool {
            var words = [slot, value]
            return Glibc.send(socket, &words, 8, Int32(MSG_NOSIGNAL)) == 8
        }

        /// The next message, nil when none waits (or the peer is gone: `closed` says which).
        static func receive(on socket: Int32, closed: inout Bool) -> Message? {
            var words: [Int32] = [0, 0]
            let got = recv(socket, &words, 8, Int32(MSG_DONTWAIT))
            if got == 0 { closed = true }
            return got == 8 ? Message(slot: words[0], value: words[1]) : nil
        }
    }

    func run() -> Never {
        ms_signals_install()
        ms_signals_default_fatal()
        ms_set_parent_death_signal(SIGTERM)
        if getppid() != context.masterPID { exit(0) }
        let name = LogField.token(.init(pool.config.name))
        let started = ms_now_ns()
        let complete = app.preload(pool: pool, server: context)
        // What loading freed (the model file's buffers, the first run's activations) goes back to the
        // system rather than into every worker's copy-on-write image.
        _ = ms_malloc_trim()
        let preloadMs = Int32(clamping: (ms_now_ns() - started) / 1_000_000)
        // fork() copies only the calling thread: one left running by the preload would be missing, with
        // whatever it held, in every worker.
        let threads = Self.threadCount()
        context.log.info("fork_server_ready", ["pool": name, "preload_ms": .int(Int(preloadMs)), "threads": .int(threads),
                                               "preload_complete": .bool(complete)])
        if threads > 1 { context.log.warning("fork_server_threads", ["pool": name, "threads": .int(threads)]) }
        _ = Message(slot: Message.ready, value: complete ? max(preloadMs, 0) : -max(preloadMs, 1)).send(on: socket)

        while !stopAsked() {
            if getppid() != context.masterPID { break }
            guard ms_wait(socket, 1000) == 1 else { continue }
            // A stop that came while a request waited is served first: no worker is forked after it.
            if stopAsked() { break }
            var closed = false
            guard let request = Message.receive(on: socket, closed: &closed) else {
                if closed { break }
                continue
            }
            forkWorker(slot: Int(request.slot))
        }
        exit(0)
    }

    /// Whether a stop was asked for (SIGTERM, SIGQUIT, SIGINT); reopens the log on SIGUSR1 on the way.
    private func stopAsked() -> Bool {
        if ms_signal_take(SIGUSR1) != 0 { context.log.reopen() }
        return ms_signal_take(SIGTERM) != 0 || ms_signal_take(SIGQUIT) != 0 || ms_signal_take(SIGINT) != 0
    }

    /// Forks the worker for `slot` through an intermediate child, which replies with its pid and exits
    /// so the worker is reparented to the master.
    private func forkWorker(slot: Int) {
        let intermediate = fork()
        if intermediate == 0 {
            let worker = fork()
            if worker == 0 {
                close(socket)
                WorkerProcess(pool: pool, slot: slot, context: context, app: app, adopted: true).run()
            }
            _ = Message(slot: Int32(slot), value: worker > 0 ? Int32(worker) : -1).send(on: socket)
            _exit(0)  // no exit handlers: they belong to the fork server
        }
        guard intermediate > 0 else {
            _ = Message(slot: Int32(slot), value: -1).send(on: socket)
            return
        }
        var status: Int32 = 0
        while waitpid(intermediate, &status, 0) < 0 && errno == EINTR {}
    }

    /// Threads of this process now (from /proc/self/task).
    static func threadCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? 1
    }
}
