import Foundation

/// Polls `condition` until it holds or `timeout` seconds have passed; returns whether it held.
/// A deadline, not a count of polls: on a loaded machine each poll (a status read through nginx) is
/// slower, and a counted loop would then give up sooner in real time, just when things are slow.
func eventually(timeout: Double = 30, every interval: Duration = .milliseconds(20),
                _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if try await condition() { return true }
        if Date() >= deadline { return false }
        try? await Task.sleep(for: interval)
    }
}
