import Foundation

/// Runs `work`, which blocks (starting processes, waiting for them, synchronous HTTP), on a thread of its own
/// and returns what it returned.
///
/// Swift's cooperative pool has one thread per core and never adds one for a thread that blocks: on a
/// 2-core CI machine two suites starting their stacks in place held both threads, and every other test,
/// including ones racing a deadline, waited minutes for a turn.
package func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}
