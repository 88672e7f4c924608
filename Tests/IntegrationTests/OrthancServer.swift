import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Debian's Orthanc (with its DICOMweb plugin) as the hospital's PACS: on free loopback ports, with a
/// configuration and a database of its own in a temporary folder; started, stopped and started again on
/// the same ports and database (a PACS that goes down for a while).
final class OrthancServer {
    let httpPort: Int
    let dicomPort: Int
    let aeTitle = "ORTHANC"
    private let folder = TemporaryFolder("mediscope-orthanc")
    private let configFile: URL
    private var process: Process?

    /// - Parameters:
    ///   - modalities: Orthanc's `DicomModalities` (name -> [AE title, host, port]): where it may send.
    ///   - dicomWebServers: its DICOMweb plugin's `Servers` (name -> {"Url", "HttpHeaders"}).
    init(modalities: [String: [Any]] = [:], dicomWebServers: [String: Any] = [:]) throws {
        httpPort = try Stack.freePort()
        dicomPort = try Stack.freePort()
        let config: [String: Any] = [
            "Name": "MediscopeTestPACS", "StorageDirectory": folder.appending("db").path, "IndexDirectory": folder.appending("db").path,
            "HttpPort": httpPort, "DicomPort": dicomPort, "DicomAet": aeTitle, "RemoteAccessAllowed": false,
            "AuthenticationEnabled": false, "DicomModalities": modalities,
            "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"], "LogExportedResources": false,
            "DicomWeb": ["Enable": true, "Root": "/dicom-web/", "Servers": dicomWebServers],
        ]
        configFile = folder.appending("orthanc.json")
        try JSONSerialization.data(withJSONObject: config).write(to: configFile)
        FileManager.default.createFile(atPath: folder.appending("orthanc.log").path, contents: nil)
    }

    deinit { stop() }

    /// Starts Orthanc and waits until its REST API answers.
    func start() async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/sbin/Orthanc")
        p.arguments = [configFile.path]
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        let log = try FileHandle(forWritingTo: folder.appending("orthanc.log"))
        log.seekToEndOfFile()
        p.standardError = log
        try p.run()
        process = p
        #expect(try await eventually(timeout: 60, every: .milliseconds(200)) { (try? self.call("GET", "/system").status) == 200 },
                "Orthanc did not start: \(self.log)")
    }

    /// Stops Orthanc at once. SIGKILL: a child of the test process inherits its blocked signals, SIGTERM
    /// among them, and would never see one. Its database stays for the next `start`.
    func stop() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Orthanc's own log (its warnings and errors), for a failure's message.
    var log: String { String((try? String(contentsOf: folder.appending("orthanc.log"), encoding: .utf8))?.suffix(3000) ?? "") }

    /// A call to Orthanc's REST API (no credentials: the test's Orthanc has none).
    func call(_ method: String, _ path: String, body: Data? = nil) throws -> Stack.Response {
        try OrthancREST(port: httpPort).syncRequest(method, path, body: body)
    }

    /// Stores a PS3.10 file; its Orthanc id.
    func store(_ file: URL) throws -> String {
        let stored = try call("POST", "/instances", body: try Data(contentsOf: file))
        guard stored.status == 200, let id = stored.json?["ID"] as? String else { throw StackError("Orthanc refused \(file.lastPathComponent)") }
        return id
    }

    /// Every instance of the study with `studyInstanceUID`: its simplified tags, by Orthanc id.
    func instances(study studyInstanceUID: String) throws -> [String: [String: Any]] {
        let query = try JSONSerialization.data(withJSONObject: ["Level": "Instance", "Query": ["StudyInstanceUID": studyInstanceUID]])
        let found = try call("POST", "/tools/find", body: query)
        guard found.status == 200, let ids = try JSONSerialization.jsonObject(with: found.body) as? [String] else { return [:] }
        var out: [String: [String: Any]] = [:]
        for id in ids { out[id] = try call("GET", "/instances/\(id)/tags?simplify").json ?? [:] }
        return out
    }
}

/// Orthanc's REST API, spoken like any other endpoint of the tests.
final class OrthancREST: HTTPEndpoint {
    let baseURL: String
    let defaultAuth: Stack.Auth? = Stack.Auth.none
    init(port: Int) { baseURL = "http://127.0.0.1:\(port)" }
    func remember(_ values: some Sequence<String>) {}
}
