import Configuration
import Foundation
import Glibc
import MediscopeAuth
import MediscopeServer

/// Everything `mediscope serve` can be told, from a JSON file overridden by MEDISCOPE_* environment
/// variables (e.g. `pools.inference.workers` <- MEDISCOPE_POOLS_INFERENCE_WORKERS).
package struct AppConfig: Sendable {
    package var varDirectory: String
    package var manifestPath: String
    package var logFile: String?
    /// The master's pid, for logrotate and service managers.
    package var pidFile: String
    package var bodyLimitBytes: Int
    package var maxImagePixels: Int
    package var torchThreads: Int
    package var processManager: ProcessManagerConfig
    /// Firebase sign-in is on when a project id is configured.
    package var firebaseProjectId: String?
    package var firebaseCertificatesURL: String
    package var accountPolicy: AccountPolicy
    /// The printable report's Mustache templates (relative paths are relative to the working directory).
    package var templatesDirectory: String
    /// Header of the printable report; nil: the organisation's name.
    package var reportInstitution: String?
    /// Where records and accounts live (`store`, MEDISCOPE_STORE): sqlite (default) or firestore.
    package var store: StoreBackend
    /// Set when `store` is firestore.
    package var firestore: FirestoreSettings?
    /// Report drafts: the LLM (if any) and the job processes.
    package var reports: ReportSettings
    /// The DICOM listener; nil when `dicom.listen` is unset.
    package var dicom: DicomSettings?
    /// Where results are sent back to (`dicom.destinations`, `dicom.send_results`).
    package var dicomSending: DicomSendingSettings
    /// How received instances are taken in (series cap, STOW-RS body limit), listener or not.
    package var receiving: ReceivingSettings
    /// This host's name in /api/status and on every metric (`host.name`, MEDISCOPE_HOST_NAME; default the
    /// system's host name), so an operator of several hosts sees which one served what.
    package var hostName: String
    /// The address users reach the service at (`public.url`, MEDISCOPE_PUBLIC_URL), e.g.
    /// `https://mediscope.example.org`; nil when not configured. When it is https, cookies are Secure and
    /// `__Host-` prefixed even if nginx does not say the request came over TLS (TLS ended at a load
    /// balancer in front of it).
    package var publicURL: URL?
    /// True when `publicURL` is https.
    package var publicURLIsHTTPS: Bool { publicURL?.scheme?.lowercased() == "https" }

    package var storeDirectory: String { varDirectory + "/store" }
    /// nginx serves stored images from here through X-Accel-Redirect (see nginx/).
    package static let internalBlobPrefix = "/internal/blobs/"

    /// The settings of `file` (JSON), or of the file `MEDISCOPE_CONFIG` names when `file` is nil (so a
    /// second stack runs with its own file, and every command finds the same one), overridden by the
    /// MEDISCOPE_* variables of `environment`; defaults for the rest.
    package static func load(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> AppConfig {
        let file = file ?? environment[configVariable].flatMap { $0.isEmpty ? nil : $0 }
        let (reader, values) = try reader(file: file, environment: environment)
        return try AppConfig(reader: reader, fileValues: values, environment: environment)
    }

    /// The variable naming the configuration file when no `--config` is given.
    package static let configVariable = "MEDISCOPE_CONFIG"

    /// The settings of `file` (JSON) overridden by MEDISCOPE_* variables of `environment`, read through the
    /// "mediscope" scope, and the file's values.
    static func reader(file: String?, environment: [String: String]) throws -> (ConfigReader, [AbsoluteConfigKey: ConfigValue]) {
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        if let file {
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: file)) } catch {
                throw ServerError("cannot read the configuration file \(file): \(error.localizedDescription)")
            }
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ServerError("configuration file \(file) must hold a JSON object")
            }
            // Both providers are read through the "mediscope" scope (MEDISCOPE_* in the environment).
            flatten(object, prefix: ["mediscope"], into: &values)
        }
        let reader = ConfigReader(providers: [
            EnvironmentVariablesProvider(environmentVariables: environment),
            InMemoryProvider(name: "file", values: values),
        ]).scoped(to: "mediscope")
        return (reader, values)
    }

    private init(reader: ConfigReader, fileValues: [AbsoluteConfigKey: ConfigValue], environment: [String: String]) throws {
        let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
        varDirectory = reader.string(forKey: "var", default: "var")
        manifestPath = reader.string(forKey: "manifest", default: "models/manifest.json")
        logFile = reader.string(forKey: "log.file")
        pidFile = reader.string(forKey: "pid.file", default: varDirectory + "/run/mediscope.pid")
        bodyLimitBytes = reader.int(forKey: "body.limit.bytes", default: 20 << 20)
        maxImagePixels = reader.int(forKey: "image.max.pixels", default: 50_000_000)
        torchThreads = reader.int(forKey: "torch.threads", default: 1)
        firebaseProjectId = reader.string(forKey: "firebase.project.id")
        firebaseCertificatesURL = reader.string(
            forKey: "firebase.certificates.url",
            default: "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com")
        guard URL(string: firebaseCertificatesURL)?.scheme != nil else { throw ServerError("firebase.certificates.url is not a URL") }
        templatesDirectory = reader.string(forKey: "templates", default: "templates")
        reportInstitution = reader.string(forKey: "report.institution").flatMap { $0.isEmpty ? nil : $0 }
        let storeName = reader.string(forKey: "store", default: "sqlite")
        guard let backend = StoreBackend(rawValue: storeName) else { throw ServerError("store must be sqlite or firestore, got \(storeName)") }
        store = backend
        firestore = backend == .firestore
            ? try FirestoreSettings.read({ reader.string(forKey: ConfigKey($0)) }, double: { reader.number(forKey: ConfigKey($0), default: $1) },
                                         environment: environment)
            : nil
        hostName = reader.string(forKey: "host.name") ?? ProcessInfo.processInfo.hostName
        guard !hostName.isEmpty, hostName.utf8.count <= 253,
              hostName.utf8.allSatisfy({ $0 == 45 || $0 == 46 || $0 == 95 || (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) }) else {
            throw ServerError("host.name must be 1 to 253 letters, digits, '.', '-' or '_'")
        }
        if let text = reader.string(forKey: "public.url"), !text.isEmpty {
            guard let url = URL(string: text), ["http", "https"].contains(url.scheme?.lowercased() ?? ""),
                  let host = url.host, !host.isEmpty else {
                throw ServerError("public.url must be an http:// or https:// URL with a host, got \(text)")
            }
            publicURL = url
        } else {
            publicURL = nil
        }
        reports = try ReportSettings.read({ reader.string(forKey: ConfigKey($0)) }, int: { reader.int(forKey: ConfigKey($0), default: $1) },
                                          double: { reader.number(forKey: ConfigKey($0), default: $1) })
        receiving = try ReceivingSettings.read(int: { reader.int(forKey: ConfigKey($0), default: $1) })
        dicomSending = try DicomSendingSettings.read({ reader.string(forKey: ConfigKey($0)) },
                                                     int: { reader.int(forKey: ConfigKey($0), default: $1) })
        dicom = try DicomSettings.read({ reader.string(forKey: ConfigKey($0)) }, int: { reader.int(forKey: ConfigKey($0), default: $1) })
        var policy = AccountPolicy()
        policy.sessionIdleSeconds = reader.number(forKey: "session.idle.seconds", default: policy.sessionIdleSeconds)
        policy.sessionAbsoluteSeconds = reader.number(forKey: "session.absolute.seconds", default: policy.sessionAbsoluteSeconds)
        policy.maxFailuresPerAccount = reader.int(forKey: "signin.max.failures.per.account", default: policy.maxFailuresPerAccount)
        policy.maxFailuresPerAddress = reader.int(forKey: "signin.max.failures.per.address", default: policy.maxFailuresPerAddress)
        policy.failureWindowSeconds = reader.number(forKey: "signin.failure.window.seconds", default: policy.failureWindowSeconds)
        accountPolicy = policy

        let varDirectory = self.varDirectory
        func pool(_ name: String, workers: Int, backlog: Int, memoryMB: Int, timeout: Double, slow: Double,
                  preload: Bool = false) throws -> PoolConfig {
            let scoped = reader.scoped(to: ["pools", name])
            let listenText = scoped.string(forKey: "listen", default: "unix:\(varDirectory)/run/\(name).sock")
            guard let listen = ListenAddress(listenText) else {
                throw ServerError("pools.\(name).listen must be unix:/path or tcp:host:port, got \(listenText)")
            }
            var config = PoolConfig(
                name: name, listen: listen,
                workers: scoped.int(forKey: "workers", default: workers),
                backlog: scoped.int(forKey: "backlog", default: backlog),
                maxRequests: scoped.int(forKey: "max.requests", default: 1000),
                memoryLimitMB: scoped.int(forKey: "memory.limit.mb", default: memoryMB),
                requestTimeoutSeconds: scoped.number(forKey: "request.timeout.seconds", default: timeout),
                slowRequestSeconds: scoped.number(forKey: "slow.request.seconds", default: slow))
            // PHP-FPM's listen.allowed_clients: numeric addresses, comma-separated. FastCGI has no
            // authentication, so a TCP pool must name its peers ("any" says so on purpose): a missing,
            // empty or misspelt setting never leaves a pool open to the network.
            let allowedText = scoped.string(forKey: "allowed.clients", default: "").trimmingCharacters(in: .whitespaces)
            let clients = allowedText == "any" ? [] : allowedText.split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                .map { $0.hasPrefix("[") && $0.hasSuffix("]") ? String($0.dropFirst().dropLast()) : $0 }
            for client in clients where !Self.isNumericAddress(client) {
                throw ServerError("pools.\(name).allowed_clients must list numeric IP addresses, got \(client)")
            }
            if case .tcp = listen, clients.isEmpty, allowedText != "any" {
                throw ServerError("pools.\(name).allowed_clients must name the load balancer's address(es) for a TCP pool "
                                  + "(FastCGI has no authentication), or be \"any\" to accept every peer")
            }
            config.allowedClients = clients
            config.preload = scoped.bool(forKey: "preload", default: preload)
            guard (1...32).contains(config.workers) else { throw ServerError("pools.\(name).workers must be 1...32") }
            guard config.backlog >= 1 else { throw ServerError("pools.\(name).backlog must be at least 1") }
            return config
        }
        // Inference: one worker per core and a short queue, so overload turns into fast 503s, not waits.
        // Inference workers are forked from a fork server that loaded the models: the weights are shared
        // by every worker, and a new or restarted worker answers at once.
        let inference = try pool(MediscopeApplication.inferencePool, workers: cores, backlog: 4, memoryMB: 700, timeout: 60, slow: 2, preload: true)
        let io = try pool("io", workers: 2, backlog: 128, memoryMB: 200, timeout: 15, slow: 0.5)
        var pm = ProcessManagerConfig(pools: [inference, io])
        pm.stopTimeoutSeconds = reader.number(forKey: "stop.timeout.seconds", default: 20)
        pm.crashLimit = reader.int(forKey: "crash.limit", default: 10)
        pm.crashWindowSeconds = reader.number(forKey: "crash.window.seconds", default: 60)
        pm.crashBackoffMaxSeconds = reader.number(forKey: "crash.backoff.max.seconds", default: 60)
        pm.poisonedFileSeconds = reader.number(forKey: "crash.file.seconds", default: 86_400)
        pm.clientCrashLimit = reader.int(forKey: "crash.client.limit", default: 3)
        pm.clientCrashWindowSeconds = reader.number(forKey: "crash.client.window.seconds", default: 600)
        guard pm.crashLimit >= 1, pm.crashWindowSeconds > 0, pm.crashBackoffMaxSeconds >= 1, pm.poisonedFileSeconds >= 0,
              pm.clientCrashLimit >= 1, pm.clientCrashWindowSeconds > 0 else {
            throw ServerError("crash.limit and crash.client.limit must be at least 1, crash.backoff.max.seconds at least 1, "
                              + "the windows positive and crash.file.seconds not negative")
        }
        // nginx's workers must reach the sockets: 0660 plus socket.group = nginx's group in production,
        // 0666 for a local run where nginx's workers run as nobody.
        let mode = reader.string(forKey: "socket.mode", default: "0660")
        guard let parsedMode = Int(mode, radix: 8), (0...0o777).contains(parsedMode) else {
            throw ServerError("socket.mode must be octal like 0660, got \(mode)")
        }
        pm.socketMode = parsedMode
        pm.socketGroup = reader.string(forKey: "socket.group")
        processManager = pm
    }

    private static func flatten(_ object: [String: Any], prefix: [String], into values: inout [AbsoluteConfigKey: ConfigValue]) {
        for (key, value) in object {
            // "max_requests" and "maxRequests" both read as max.requests.
            let parts = prefix + splitKey(key)
            switch value {
            case let nested as [String: Any]: flatten(nested, prefix: parts, into: &values)
            case let number as NSNumber:
                if number.doubleValue == number.doubleValue.rounded() {
                    values[AbsoluteConfigKey(parts)] = ConfigValue(.int(number.intValue), isSecret: false)
                } else {
                    values[AbsoluteConfigKey(parts)] = ConfigValue(.double(number.doubleValue), isSecret: false)
                }
            case let text as String: values[AbsoluteConfigKey(parts)] = ConfigValue(.string(text), isSecret: false)
            case let array as [Any]:
                // A list (dicom.peers) is read as its JSON text, as its MEDISCOPE_* variable gives it.
                if let data = try? JSONSerialization.data(withJSONObject: array, options: [.sortedKeys]) {
                    values[AbsoluteConfigKey(parts)] = ConfigValue(.string(String(decoding: data, as: UTF8.self)), isSecret: false)
                }
            default: break
            }
        }
    }

    /// A numeric IPv4 or IPv6 address (what a peer's address is compared with).
    static func isNumericAddress(_ text: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }

    static func splitKey(_ key: String) -> [String] {
        var words: [String] = []
        var current = ""
        for ch in key {
            if ch == "_" || ch == "-" || ch == "." {
                if !current.isEmpty { words.append(current); current = "" }
            } else if ch.isUppercase {
                if !current.isEmpty { words.append(current) }
                current = String(ch).lowercased()
            } else {
                current.append(ch)
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }
}
