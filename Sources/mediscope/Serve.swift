import ArgumentParser
import Foundation
import MediscopeApp
import MediscopeServer

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the pre-forked FastCGI pools (behind nginx).",
        discussion: """
            Settings come from --config (JSON) and MEDISCOPE_* environment variables, e.g.
            MEDISCOPE_POOLS_INFERENCE_WORKERS=2. Signals: TERM/INT/QUIT stop gracefully, HUP/USR2 reload
            without dropping requests, USR1 reopens the log file.
            """)

    @Option(help: "JSON configuration file.")
    var config: String?

    func run() throws {
        let settings = try AppConfig.load(file: config)
        let log = ServerLog(path: settings.logFile)
        try FileManager.default.createDirectory(atPath: settings.varDirectory + "/run", withIntermediateDirectories: true)
        // A second master on the same sockets would take them over and leave the first one serving nothing.
        if let running = Self.liveMaster(pidFile: settings.pidFile) {
            FileHandle.standardError.write(Data(("mediscope: another mediscope serve (pid \(running)) is running with the pid file "
                + "\(settings.pidFile); stop it first, or give this one its own state folder (MEDISCOPE_VAR)\n").utf8))
            throw ExitCode(1)
        }
        let manager = try ProcessManager(config: settings.processManager, app: MediscopeApplication(config: settings), log: log)
        try manager.bind()
        let configPath = config
        manager.reloadConfig = { try AppConfig.load(file: configPath).processManager }
        for pool in settings.processManager.pools {
            log.info("pool_listening", ["pool": .token(.init(pool.name)), "listen": .token(.init(pool.listen.description)),
                                        "workers": .int(pool.workers)])
        }
        try "\(getpid())\n".write(toFile: settings.pidFile, atomically: true, encoding: .utf8)
        let status = manager.run()
        try? FileManager.default.removeItem(atPath: settings.pidFile)
        if status != 0 { throw ExitCode(status) }
    }

    /// The pid in `pidFile` when that process is alive and is a mediscope (not a reused pid); nil otherwise.
    static func liveMaster(pidFile: String) -> Int32? {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
              let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0, pid != getpid(), kill(pid, 0) == 0,
              let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
        return String(decoding: cmdline, as: UTF8.self).lowercased().contains("mediscope") ? pid : nil
    }
}
