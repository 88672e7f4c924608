import Foundation
import MediscopeServer
import MediscopeAuth
import MediscopeDicomOut
import MediscopeFirestore
import Testing
import TestSupport
@testable import MediscopeApp

@Suite struct AppConfigTests {
    static let example = Repository.root.appendingPathComponent("deploy/mediscope.example.json").path

    @Test func exampleFileIsReadAndEnvironmentWins() throws {
        let c = try AppConfig.load(file: Self.example, environment: ["MEDISCOPE_POOLS_INFERENCE_WORKERS": "3"])
        #expect(c.varDirectory == "/var/lib/mediscope")
        #expect(c.pidFile == "/run/mediscope/mediscope.pid")
        let inference = c.processManager.pools[0]
        #expect(inference.name == "inference" && inference.workers == 3)
        #expect(inference.listen == .unix(path: "/run/mediscope/inference.sock"))
        #expect(inference.maxRequests == 1000 && inference.memoryLimitMB == 700 && inference.slowRequestSeconds == 2)
        #expect(c.processManager.pools[1].slowRequestSeconds == 0.5)
        #expect(c.processManager.socketMode == 0o660 && c.processManager.socketGroup == "www-data")
        #expect(c.hostName == "mediscope-1" && inference.allowedClients.isEmpty)
    }

    @Test func theFileComesFromMEDISCOPE_CONFIGWhenNoneIsGiven() throws {
        let folder = TemporaryFolder("mediscope-config")
        let file = folder.file("second.json", Array(#"{"var": "/tmp/second", "pools": {"inference": {"workers": 3}}}"#.utf8)).path
        let named = try AppConfig.load(file: nil, environment: ["MEDISCOPE_CONFIG": file])
        #expect(named.varDirectory == "/tmp/second" && named.processManager.pools[0].workers == 3)
        // --config wins; MEDISCOPE_* variables win over either file.
        #expect(try AppConfig.load(file: Self.example, environment: ["MEDISCOPE_CONFIG": file]).varDirectory == "/var/lib/mediscope")
        #expect(try AppConfig.load(file: nil, environment: ["MEDISCOPE_CONFIG": file, "MEDISCOPE_VAR": "/tmp/third"]).varDirectory == "/tmp/third")
        #expect(try AppConfig.load(file: nil, environment: ["MEDISCOPE_CONFIG": ""]).processManager.pools.count == 2)
        #expect { try AppConfig.load(file: nil, environment: ["MEDISCOPE_CONFIG": folder.path + "/missing.json"]) } throws: {
            "\($0)".contains("cannot read the configuration file") && "\($0)".contains("missing.json")
        }
    }

    @Test func theDICOMListenerIsOffUnlessAPortIsGivenAndItsPeersAreChecked() throws {
        #expect(try AppConfig.load(file: nil, environment: [:]).dicom == nil)
        let peers = #"[{"ae_title": "ORTHANC", "host": "10.0.0.20", "organization": "default"}]"#
        let on = try #require(try AppConfig.load(file: nil, environment: ["MEDISCOPE_DICOM_LISTEN": "11112", "MEDISCOPE_DICOM_PEERS": peers]).dicom)
        #expect(on.port == 11112 && on.aeTitle == "MEDISCOPE" && on.peers.count == 1)
        #expect(on.peer(callingAETitle: "ORTHANC", address: "10.0.0.20")?.organization == "default")
        #expect(on.peer(callingAETitle: "ORTHANC", address: "10.0.0.21") == nil)
        let twice = #"[{"ae_title": "PACS", "host": "10.0.0.20", "organization": "a"}, {"ae_title": "PACS", "host": "10.0.0.20", "organization": "b"}]"#
        for bad in [["MEDISCOPE_DICOM_LISTEN": "127.0.0.1:11112"], ["MEDISCOPE_DICOM_LISTEN": "[::]:11112"],
                    ["MEDISCOPE_DICOM_LISTEN": "11112", "MEDISCOPE_DICOM_PEERS": twice],
                    ["MEDISCOPE_DICOM_LISTEN": "11112", "MEDISCOPE_DICOM_AE_TITLE": "A\\B"],
                    ["MEDISCOPE_DICOM_LISTEN": "11112", "MEDISCOPE_DICOM_PEERS": #"[{"ae_title": "X", "host": "pacs.local", "organization": "o"}]"#]] {
            #expect(throws: (any Error).self, "\(bad)") { try AppConfig.load(file: nil, environment: bad) }
        }
    }

    @Test func resultsGoOnlyToListedDestinationsAndEachIsChecked() throws {
        #expect(try AppConfig.load(file: nil, environment: [:]).dicomSending.destinations.isEmpty)
        let destinations = #"[{"name": "pacs", "kind": "c-store", "ae_title": "ORTHANC", "host": "10.0.0.20", "port": 4242}, "#
            + #"{"name": "vna", "kind": "stow-rs", "url": "https://vna.example.org/dicom-web", "token_file": "/etc/mediscope/vna", "authorization": "basic"}]"#
        let folder = TemporaryFolder("mediscope-config")
        let file = folder.file("c.json", #"{"dicom": {"destinations": "# + destinations + #", "send_results": ["vna", "pacs"]}}"#)
        for environment in [["MEDISCOPE_DICOM_DESTINATIONS": destinations, "MEDISCOPE_DICOM_SEND_RESULTS": "vna, pacs"],
                            ["MEDISCOPE_CONFIG": file.path]] {
            let sending = try AppConfig.load(file: nil, environment: environment).dicomSending
            #expect(sending.sendResults == ["vna", "pacs"] && sending.resultDestinations.map(\.kind) == ["stow-rs", "c-store"])
            #expect(sending.destinations[0].transport == .cStore(aeTitle: "ORTHANC", host: "10.0.0.20", port: 4242))
            #expect(sending.destinations[1].transport == .stowRS(url: URL(string: "https://vna.example.org/dicom-web")!,
                                                                 tokenFile: "/etc/mediscope/vna", authorization: .basic))
            #expect(sending.callingAETitle == "MEDISCOPE" && sending.maxAttempts == 10 && sending.retryMaxSeconds == 300)
        }
        let pacs = #"{"name": "pacs", "kind": "c-store", "ae_title": "ORTHANC", "host": "10.0.0.20", "port": 4242}"#
        for bad in [#"[{"name": "pacs", "kind": "c-store", "ae_title": "ORTHANC", "host": "10.0.0.20"}]"#,           // no port
                    #"[{"name": "pacs", "kind": "c-store", "ae_title": "A\\B", "host": "10.0.0.20", "port": 4242}]"#,  // backslash
                    #"[{"name": "pacs", "kind": "c-store", "ae_title": "ORTHANC", "host": "fd00::1", "port": 4242}]"#,   // IPv6 literal
                    #"[{"name": "web", "kind": "stow-rs", "url": "ftp://vna/dicom-web"}]"#,
                    #"[{"name": "web", "kind": "stow-rs", "url": "https://vna/dicom-web", "token_file": "relative"}]"#,
                    #"[{"name": "web", "kind": "stow-rs", "url": "https://vna/dicom-web", "authorization": "digest"}]"#,
                    #"[{"name": "pacs", "kind": "c-move", "ae_title": "ORTHANC", "host": "10.0.0.20", "port": 4242}]"#,
                    "[" + pacs + ", " + pacs + "]", #"[{"name": "a b", "kind": "c-store", "ae_title": "X", "host": "h", "port": 1}]"#] {
            #expect(throws: (any Error).self, "\(bad)") { try AppConfig.load(file: nil, environment: ["MEDISCOPE_DICOM_DESTINATIONS": bad]) }
        }
        for bad in [["MEDISCOPE_DICOM_SEND_RESULTS": "pacs"], ["MEDISCOPE_DICOM_DESTINATIONS": "[" + pacs + "]", "MEDISCOPE_DICOM_SEND_RESULTS": "pacs,pacs"],
                    ["MEDISCOPE_DICOM_DESTINATIONS": "[" + pacs + "]", "MEDISCOPE_DICOM_SEND_MAX_ATTEMPTS": "0"]] {
            #expect(throws: (any Error).self, "\(bad)") { try AppConfig.load(file: nil, environment: bad) }
        }
    }

    @Test func defaultsNeedNoFile() throws {
        let c = try AppConfig.load(file: nil, environment: ["MEDISCOPE_VAR": "/tmp/x"])
        #expect(c.processManager.pools.map(\.name) == ["inference", "io"])
        #expect(c.processManager.pools[0].listen == .unix(path: "/tmp/x/run/inference.sock"))
        #expect(c.processManager.pools[0].workers == ProcessInfo.processInfo.activeProcessorCount)
        #expect(c.bodyLimitBytes == 20 << 20)
        #expect(c.templatesDirectory == "templates" && c.reportInstitution == nil)
    }

    @Test func reportSettingsComeFromTheEnvironment() throws {
        let c = try AppConfig.load(file: nil, environment: ["MEDISCOPE_TEMPLATES": "/opt/mediscope/templates",
                                                            "MEDISCOPE_REPORT_INSTITUTION": "St. Example Hospital"])
        #expect(c.templatesDirectory == "/opt/mediscope/templates" && c.reportInstitution == "St. Example Hospital")
    }

    @Test(arguments: [
        ["MEDISCOPE_POOLS_IO_LISTEN": "udp:1"], ["MEDISCOPE_POOLS_IO_WORKERS": "0"], ["MEDISCOPE_SOCKET_MODE": "rw"],
        // A TCP pool must name its peers: missing, empty, only separators, a host name.
        ["MEDISCOPE_POOLS_IO_LISTEN": "tcp:10.0.0.12:9001"],
        ["MEDISCOPE_POOLS_IO_LISTEN": "tcp:10.0.0.12:9001", "MEDISCOPE_POOLS_IO_ALLOWED_CLIENTS": ""],
        ["MEDISCOPE_POOLS_IO_LISTEN": "tcp:10.0.0.12:9001", "MEDISCOPE_POOLS_IO_ALLOWED_CLIENTS": " , "],
        ["MEDISCOPE_POOLS_IO_LISTEN": "tcp:10.0.0.12:9001", "MEDISCOPE_POOLS_IO_ALLOWED_CLIENTS": "balancer.internal"],
    ])
    func invalidSettingsAreRefused(env: [String: String]) {
        #expect(throws: (any Error).self) { try AppConfig.load(file: nil, environment: env) }
    }

    @Test func aTCPPoolAcceptsOnlyTheNamedPeersOrAnyOnPurpose() throws {
        let named = try AppConfig.load(file: nil, environment: ["MEDISCOPE_POOLS_IO_LISTEN": "tcp:[fd00::12]:9001",
                                                                "MEDISCOPE_POOLS_IO_ALLOWED_CLIENTS": "10.0.0.10, [fd00::10]"])
        let io = try #require(named.processManager.pools.first { $0.name == "io" })
        #expect(io.listen == .tcp(host: "fd00::12", port: 9001) && io.allowedClients == ["10.0.0.10", "fd00::10"])
        let any = try AppConfig.load(file: nil, environment: ["MEDISCOPE_POOLS_IO_LISTEN": "tcp:10.0.0.12:9001",
                                                              "MEDISCOPE_POOLS_IO_ALLOWED_CLIENTS": "any"])
        #expect(any.processManager.pools.first { $0.name == "io" }?.allowedClients == [])
        // Unix sockets are guarded by their file mode: no list needed.
        #expect(try AppConfig.load(file: nil, environment: [:]).processManager.pools.allSatisfy { $0.allowedClients.isEmpty })
    }

    /// JSON keeps `0` and `60` as whole numbers: decimal settings must read them too, not fall back.
    @Test func wholeNumbersInTheJSONFileSetDecimalSettings() throws {
        let folder = TemporaryFolder("mediscope-config")
        let file = folder.appending("config.json")
        try #"{"store":"firestore","firestore":{"project_id":"p","outage_grace_seconds":0,"cache_seconds":1},"#
            .appending(#""pools":{"io":{"request_timeout_seconds":9}},"session":{"idle":{"seconds":600}},"llm":{"base_url":"http://h","model":"m","timeout_seconds":12}}"#)
            .write(to: file, atomically: true, encoding: .utf8)
        let c = try AppConfig.load(file: file.path, environment: ["FIRESTORE_EMULATOR_HOST": "h:1"])
        #expect(c.firestore?.outageGraceSeconds == 0 && c.firestore?.cacheSeconds == 1)
        #expect(c.processManager.pools.first { $0.name == "io" }?.requestTimeoutSeconds == 9)
        #expect(c.accountPolicy.sessionIdleSeconds == 600 && c.reports.llm?.timeout == 12)
    }

    @Test func llmSettingsAndTheKeyFile() throws {
        let folder = TemporaryFolder("mediscope-config")
        let keyFile = folder.file("llm-key", "gsk_secret_value\n")
        let c = try AppConfig.load(file: nil, environment: [
            "MEDISCOPE_LLM_BASE_URL": "https://api.groq.com/openai/v1", "MEDISCOPE_LLM_MODEL": "llama-3.1-8b-instant",
            "MEDISCOPE_LLM_API_KEY_FILE": keyFile.path, "MEDISCOPE_LLM_TIMEOUT_SECONDS": "12", "MEDISCOPE_REPORTS_WORKERS": "2",
        ])
        let llm = try #require(c.reports.llm)
        #expect(llm.apiKey == "gsk_secret_value" && llm.timeout == 12 && llm.model == "llama-3.1-8b-instant")
        #expect(c.reports.workers == 2 && c.reports.maxAttempts == 3)
        #expect(c.reports.draftReceived == .onView, "a received series' drafts wait until looked at")
        let atOnce = try AppConfig.load(file: nil, environment: ["MEDISCOPE_REPORTS_DRAFT_RECEIVED": "at_once"])
        #expect(atOnce.reports.draftReceived == .atOnce)
        let badTiming = #expect(throws: ServerError.self) {
            try AppConfig.load(file: nil, environment: ["MEDISCOPE_REPORTS_DRAFT_RECEIVED": "later"])
        }
        #expect(badTiming?.description.contains("on_view or at_once") == true)
        #expect(try AppConfig.load(file: nil, environment: [:]).reports.llm == nil, "no base URL: the template writes drafts")
        for bad in [["MEDISCOPE_LLM_BASE_URL": "ftp://x", "MEDISCOPE_LLM_MODEL": "m"], ["MEDISCOPE_LLM_BASE_URL": "https://x"],
                    ["MEDISCOPE_LLM_BASE_URL": "https://x", "MEDISCOPE_LLM_MODEL": "m", "MEDISCOPE_LLM_API_KEY_FILE": "/nonexistent"]] {
            let error = #expect(throws: ServerError.self) { try AppConfig.load(file: nil, environment: bad) }
            #expect(error?.description.contains("gsk_") == false)
        }
    }

    @Test func firestoreSettingsComeFromTheEnvironmentAsGoogleNamesThem() throws {
        let c = try AppConfig.load(file: nil, environment: [
            "MEDISCOPE_STORE": "firestore", "MEDISCOPE_FIRESTORE_PROJECT_ID": "my-project",
            "MEDISCOPE_FIRESTORE_CACHE_SECONDS": "1.5", "FIRESTORE_EMULATOR_HOST": "127.0.0.1:8681",
        ])
        #expect(c.store == .firestore)
        let f = try #require(c.firestore)
        #expect(f.projectId == "my-project" && f.databaseId == "(default)" && f.emulatorHost == "127.0.0.1:8681")
        #expect(f.cacheSeconds == 1.5 && f.outageGraceSeconds == 300)
        let client = try f.client(for: .requests)
        #expect(client.configuration.baseURL.absoluteString == "http://127.0.0.1:8681/v1/")
        #expect(client.documentsRoot == "projects/my-project/databases/(default)/documents")

        let keyed = try AppConfig.load(file: Self.example, environment: ["MEDISCOPE_STORE": "firestore", "FIRESTORE_EMULATOR_HOST": "h:1",
                                                                        "GOOGLE_APPLICATION_CREDENTIALS": "/elsewhere.json"])
        #expect(keyed.firestore?.projectId == "my-project", "from the JSON file")
        #expect(keyed.firestore?.credentialsFile == "/etc/mediscope/service-account.json", "the file's key wins over the variable")
        #expect(try AppConfig.load(file: Self.example, environment: [:]).firestore == nil, "store sqlite: Firestore is off")
    }

    @Test(arguments: [
        ["MEDISCOPE_STORE": "postgres"],
        ["MEDISCOPE_STORE": "firestore"],
        ["MEDISCOPE_STORE": "firestore", "MEDISCOPE_FIRESTORE_PROJECT_ID": "Bad Project"],
        ["MEDISCOPE_STORE": "firestore", "MEDISCOPE_FIRESTORE_PROJECT_ID": "p", "MEDISCOPE_FIRESTORE_CACHE_SECONDS": "30"],
        ["MEDISCOPE_STORE": "firestore", "MEDISCOPE_FIRESTORE_PROJECT_ID": "p", "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/key.json"],
    ])
    func badStoreSettingsAreRefusedAtStart(_ env: [String: String]) {
        #expect(throws: ServerError.self) { try AppConfig.load(file: nil, environment: env) }
    }

    @Test func firestoreSettingsAreReadWhileTheStoreIsStillSQLite() throws {
        let env = ["MEDISCOPE_FIRESTORE_PROJECT_ID": "from-env", "FIRESTORE_EMULATOR_HOST": "127.0.0.1:8681"]
        #expect(try AppConfig.load(file: nil, environment: env).firestore == nil)
        let settings = try AppConfig.firestoreSettings(file: nil, environment: env)
        #expect(settings.projectId == "from-env" && settings.emulatorHost == "127.0.0.1:8681")
        #expect(try AppConfig.firestoreSettings(file: nil, projectId: "from-flag", environment: env).projectId == "from-flag")
        let missing = #expect(throws: ServerError.self) { try AppConfig.firestoreSettings(file: nil, environment: [:]) }
        #expect(missing?.description.contains("--project") == true)
        // `serve` with store=firestore still names its own setting.
        let serve = #expect(throws: ServerError.self) { try AppConfig.load(file: nil, environment: ["MEDISCOPE_STORE": "firestore"]) }
        #expect(serve?.description.contains("store is firestore") == true)
    }

    @Test func tcpListenParses() {
        #expect(ListenAddress("tcp:127.0.0.1:9000") == .tcp(host: "127.0.0.1", port: 9000))
        #expect(ListenAddress("tcp:127.0.0.1:0") == nil)
        #expect(AppConfig.splitKey("maxRequests") == ["max", "requests"])
        #expect(AppConfig.splitKey("memory_limit_mb") == ["memory", "limit", "mb"])
    }
}

@Suite struct RouterTests {
    func router() -> Router {
        var r = Router()
        r.add("GET", "/api/a/{id}/heatmaps/{result}.webp") { _, p in .text("\(p["id"])|\(p["result"])") }
        r.add("DELETE", "/api/a/{id}") { _, _ in .noContent }
        r.add("GET", "/api/fail") { _, _ throws(Problem) in throw Problem(status: 422, detail: "nope") }
        return r
    }

    @Test func matchesParametersWithSuffixes() {
        let r = router().handle(HTTPRequest(method: "GET", path: "/api/a/X1/heatmaps/tumor-presence.webp"))
        #expect(r.status == 200 && String(decoding: r.body, as: UTF8.self) == "X1|tumor-presence")
        #expect(router().handle(HTTPRequest(method: "GET", path: "/api/a/X1/heatmaps/.webp")).status == 404)
        #expect(router().handle(HTTPRequest(method: "GET", path: "/api/a/X1/heatmaps/x.png")).status == 404)
    }

    @Test func wrongMethodIs405WithAllow() {
        let r = router().handle(HTTPRequest(method: "PUT", path: "/api/a/X1"))
        #expect(r.status == 405 && r.header("Allow") == "DELETE")
    }

    @Test func problemsBecomeProblemJSONAndHeadDropsTheBody() throws {
        let r = router().handle(HTTPRequest(method: "GET", path: "/api/fail"))
        #expect(r.status == 422 && r.header("Content-Type") == "application/problem+json")
        let json = try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]
        #expect(json?["detail"] as? String == "nope" && json?["title"] as? String == "Unprocessable Content")
        let head = router().handle(HTTPRequest(method: "HEAD", path: "/api/a/X1/heatmaps/r.webp"))
        #expect(head.status == 200 && head.body.isEmpty)
    }

    @Test func statusAndMetricsAreForLoopbackOrAdmins() {
        let remote = HTTPRequest(method: "GET", path: "/api/status", remoteAddress: "10.1.2.3")
        #expect { try Guard.authorize(.operatorOrAdmin, nil, remote) } throws: { ($0 as? Problem)?.status == 401 }
        #expect(throws: Never.self) { try Guard.authorize(.operatorOrAdmin, nil, HTTPRequest(method: "GET", path: "/", remoteAddress: "127.0.0.1")) }
    }

    @Test func clinicalRoutesRefuseAdminsAndAdminRoutesRefuseClinicians() {
        let req = HTTPRequest(method: "GET", path: "/", remoteAddress: "10.1.2.3")
        func caller(_ role: Role) -> Caller {
            Caller(user: User(id: "U", username: "u", displayName: nil, role: role, organizationId: "o", disabled: false,
                              createdAt: Date(), firebaseUID: nil), method: .firebase(uid: "x"))
        }
        #expect { try Guard.authorize(.clinical, caller(.admin), req) } throws: { ($0 as? Problem)?.status == 403 }
        #expect { try Guard.authorize(.admin, caller(.clinician), req) } throws: { ($0 as? Problem)?.status == 403 }
        #expect { try Guard.authorize(.signedIn, nil, req) } throws: { ($0 as? Problem)?.status == 401 }
        #expect(throws: Never.self) { try Guard.authorize(.clinical, caller(.clinician), req) }
        #expect(throws: Never.self) { try Guard.authorize(.operatorOrAdmin, caller(.admin), req) }
    }

    @Test func queryStringsDecode() {
        #expect(HTTPRequest.parseQuery("patient_id=P%2D1+x&limit=5&flag") == ["patient_id": "P-1 x", "limit": "5", "flag": ""])
    }
}
