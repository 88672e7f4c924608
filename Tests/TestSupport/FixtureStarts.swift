import Foundation

/// Starts of heavy fixtures (a stack, a cluster of hosts, the Firestore emulator), at most as many at once
/// as the machine has cores, each on a thread of its own (see `onOwnThread`).
///
/// Suites start their fixtures together when the run begins. Started in place, the cooperative pool's
/// width limited them as a side effect, and starved every other test; started on their own threads without
/// a limit, thirty model preloads would share two cores and each start would take minutes.
package actor FixtureStarts {
    /// The one gate all test targets in this process share.
    package static let shared = FixtureStarts(limit: max(2, ProcessInfo.processInfo.activeProcessorCount))

    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { free = limit }

    /// Runs `start` once a place is free, on a thread of its own, and returns what it made.
    package func run<T: Sendable>(_ start: @escaping @Sendable () throws -> T) async throws -> T {
        if free > 0 {
            free -= 1
        } else {
            await withCheckedContinuation { waiting.append($0) }
        }
        defer { release() }
        return try await onOwnThread(start)
    }

    private func release() {
        if waiting.isEmpty { free += 1 } else { waiting.removeFirst().resume() }
    }
}
