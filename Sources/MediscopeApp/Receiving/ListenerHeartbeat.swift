import Foundation
import MediscopeIdempotency

/// What the DICOM listener says of itself (`var/run/dicom-listener.json`), for `/api/ready` and the
/// status page: listening (and which process), or why it is not. Written atomically (a new file renamed).
struct ListenerHeartbeat: Codable, Equatable {
    /// `listening` or `failed`.
    var state: String
    var pid: Int32
    var startTicks: Int64
    /// When it last said so (Unix seconds).
    var at: Double
    /// Why it is not listening, for IT (no patient data).
    var error: String?

    static func path(_ config: AppConfig) -> String { config.varDirectory + "/run/dicom-listener.json" }

    /// Records this process's state.
    static func write(_ config: AppConfig, state: String, error: String? = nil) {
        let me = ProcessIdentity.current
        let beat = ListenerHeartbeat(state: state, pid: me.pid, startTicks: me.startTicks, at: Date().timeIntervalSince1970, error: error)
        guard let data = try? JSONEncoder().encode(beat) else { return }
        let path = path(config)
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// The listener's state as readiness reports it: nil when it listens, else why not.
    static func problem(_ config: AppConfig) -> String? {
        guard let data = FileManager.default.contents(atPath: path(config)),
              let beat = try? JSONDecoder().decode(ListenerHeartbeat.self, from: data) else {
            return "down: not started yet"
        }
        guard ProcessIdentity(pid: beat.pid, startTicks: beat.startTicks).isRunning else { return "down: the listener process is gone" }
        guard beat.state == "listening" else { return "down: " + (beat.error ?? beat.state) }
        return nil
    }
}
