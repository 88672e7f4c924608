import FirebaseTestKit
import Foundation
import Testing

/// The dashboard in a real browser: headless Chromium driven by Tests/Browser/dashboard.py (Selenium),
/// one scenario per test, against one real stack (nginx + `mediscope serve`) shared by the suite.
/// A missing browser, driver or Selenium is a failure, never a skip.
@Suite(.serialized, .browserStack)
struct BrowserTests {
    @Test func chromiumChromedriverAndSeleniumAreInstalled() async throws {
        let missing = await BrowserTools.missing()
        #expect(missing.isEmpty, "browser tests cannot run: \(missing.joined(separator: "; ")) (deploy/install-deps.sh installs chromium chromium-driver python3-selenium)")
    }

    @Test func theHarnessDetectsCSPViolationsAndScriptErrors() async throws { try await scenario("selftest") }
    @Test func clinicianFlow() async throws { try await scenario("clinician_flow") }
    @Test func adminFlow() async throws { try await scenario("admin_flow") }
    @Test func patientTextIsNeverMarkup() async throws { try await scenario("xss_note") }
    @Test func rightToLeftPatientTextIsIsolated() async throws { try await scenario("bidi_isolation") }
    @Test func aDicomFilePrefillsTheForm() async throws { try await scenario("dicom_prefill") }
    @Test func deleteAfterConfirmation() async throws { try await scenario("delete_analysis") }
    @Test func dropAScanAndWatchTheUpload() async throws { try await scenario("drop_and_progress") }
    @Test func reportPrintsOnA4AndLetterDraftAndSigned() async throws { try await scenario("report_print") }
    @Test func anOutOfScopeImageLeadsWithTheWarning() async throws { try await scenario("out_of_scope") }
    @Test func tabletLayout() async throws { try await scenario("tablet_layout") }
    @Test func keyboardAndAccessibleNames() async throws { try await scenario("keyboard") }

    // The report (issue 12): drafted in the background, edited, signed and amended on the analysis page.
    @Test func theReportDraftAppearsWithoutReload() async throws { try await scenario("report_draft") }
    @Test func editSignAndAmendTheReport() async throws { try await scenario("report_sign") }
    @Test func unsavedReportTextIsAskedAboutBeforeLeaving() async throws { try await scenario("report_leave") }
    @Test func thePrintedReportShowsTheSignerOrAnUnsignedDraft() async throws { try await scenario("report_printed") }
    @Test func markupInAReportIsText() async throws { try await scenario("report_markup") }

    /// An LLM's draft, with markup in it, on a stack of its own whose LLM is a local stand-in speaking the
    /// chat completions wire format: shown as text, "Drafted by" the model the reply names.
    @Test func anLLMDraftIsShownAsTextNeverAsMarkup() async throws {
        let reply = BrowserLLM.reply
        let llm = try ScriptedHTTPServer { request, _ in
            request.path.hasSuffix("/chat/completions") ? .json(200, BrowserLLM.completion(reply)) : .json(404, #"{"error":{"message":"no such route"}}"#)
        }
        defer { llm.stop() }
        let stack = try await Stack.start(settings: ["LLM_BASE_URL": llm.baseURL.appendingPathComponent("v1").absoluteString,
                                         "LLM_MODEL": BrowserLLM.model, "LLM_TIMEOUT_SECONDS": "10"])
        defer { stack.stop() }
        try await scenario("report_llm", on: stack, environment: ["MEDISCOPE_LLM_REPLY": reply, "MEDISCOPE_LLM_MODEL": BrowserLLM.model])
        let calls = llm.requests.filter { $0.path.hasSuffix("/chat/completions") }
        #expect(calls.count == 1, "one upload, one draft: the LLM was asked \(calls.count) times")
    }

    /// The Studies view (issue 24 part 4), on a stack of its own: its list starts empty, and its series cap is
    /// small, so a series the scenario sends by STOW-RS (with the clinician's API token) has skipped slices.
    @Test func receivedStudiesShowTheirSeriesSlicesAndAnalyses() async throws {
        let cap = "3"
        let stack = try await Stack.start(settings: ["DICOM_MAX_INSTANCES_PER_SERIES": cap])
        defer { stack.stop() }
        try await scenario("studies", on: stack, environment: ["MEDISCOPE_SERIES_CAP": cap])
    }

    /// Runs `dashboard.py --scenario NAME` against `stack` (the suite's shared one unless given); its exit
    /// status is the verdict, its output the explanation. `environment`: more variables for the scenario.
    func scenario(_ name: String, on given: Stack? = nil, environment extra: [String: String] = [:], timeout: Double = 600) async throws {
        let stack = try #require(given ?? BrowserStack.current, "no stack: the suite's .browserStack trait did not run")
        var env = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        env["MEDISCOPE_URL"] = stack.baseURL
        env["MEDISCOPE_PASSWORD"] = Stack.password
        env["MEDISCOPE_CLINICIAN"] = "clinician"
        env["MEDISCOPE_ADMIN"] = BrowserStack.admin
        env["MEDISCOPE_SCAN"] = Scans.folder.appendingPathComponent("scan_baseline.jpg").path
        env["MEDISCOPE_ARTIFACTS"] = Stack.root.appendingPathComponent("Tests/Artifacts/browser").path
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        let script = Stack.root.appendingPathComponent("Tests/Browser/dashboard.py").path
        let (status, output) = try await BrowserTools.run(BrowserTools.python, [script, "--scenario", name],
                                                          environment: env, timeout: timeout)
        // What the browser typed (patient details, passwords): Stack.stop() checks that no log holds them.
        let typed = output.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("MEDISCOPE-SENSITIVE: ") else { return nil }
            let json = Data(line.dropFirst("MEDISCOPE-SENSITIVE: ".count).utf8)
            return try? JSONDecoder().decode(String.self, from: json)
        }
        stack.remember(typed)
        let shown = output.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("MEDISCOPE-SENSITIVE: ") }.joined(separator: "\n")
        print("---- dashboard.py --scenario \(name): exit \(status) ----\n\(shown)")
        #expect(status == 0, "browser scenario \(name) failed (exit \(status)):\n\(shown)")
    }
}

/// What the stand-in LLM answers: markup and code that must stay text, in the reply of an
/// OpenAI-compatible chat completion.
enum BrowserLLM {
    static let model = "llama-3.1-8b-instant"
    static let reply = """
        The Tumour type model found <b>no tumour</b> with high confidence. <script>window.__reportXSS = 'llm script'</script>

        The heatmap marks what drove the prediction <img src=x onerror="window.__reportXSS = 'llm img'">; it does not outline disease.

        A qualified clinician must review the images & these results.
        """
    static func completion(_ content: String) -> String {
        let escaped = String(decoding: try! JSONEncoder().encode(content), as: UTF8.self)
        return #"{"id":"chatcmpl-browser","object":"chat.completion","created":1,"model":"\#(model)","choices":[{"index":0,"message":{"role":"assistant","content":\#(escaped)},"finish_reason":"stop"}],"usage":{"prompt_tokens":150,"completion_tokens":60,"total_tokens":210}}"#
    }
}

/// The stack the browser suite shares: started once before its first test, stopped after its last.
enum BrowserStack {
    @TaskLocal static var current: Stack?
    static let admin = "admin"
}

struct BrowserStackTrait: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let stack = try await Stack.start()
        defer { stack.stop() }
        try stack.addUser(BrowserStack.admin, role: "admin")
        try await BrowserStack.$current.withValue(stack) {
            try await function()
        }
    }
}

extension Trait where Self == BrowserStackTrait {
    /// Runs the suite against one shared `Stack` (see `BrowserStack.current`), with an admin account.
    static var browserStack: Self { Self() }
}

enum BrowserTools {
    /// Debian's python3: the one with python3-selenium (a `python3` earlier on PATH may lack it).
    static let python = "/usr/bin/python3"

    /// What the browser tests need and this machine lacks (empty: all present).
    static func missing() async -> [String] {
        var missing: [String] = []
        for (path, package) in [("/usr/bin/chromium", "chromium"), ("/usr/bin/chromedriver", "chromium-driver"), (python, "python3")]
        where !FileManager.default.isExecutableFile(atPath: path) {
            missing.append("\(path) is missing (Debian package \(package))")
        }
        if FileManager.default.isExecutableFile(atPath: python) {
            let probe = try? await run(python, ["-c", "import selenium, sys; v = tuple(int(x) for x in selenium.__version__.split('.')[:2]); "
                                                + "sys.exit(0 if v >= (4, 6) else 3)"],
                                       environment: ProcessInfo.processInfo.environment, timeout: 60)
            if probe?.status != 0 {
                missing.append("\(python) cannot import selenium >= 4.6 (Debian package python3-selenium): \(probe?.output ?? "did not run")")
            }
        }
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver") {
            let probe = try? await run("/usr/bin/chromedriver", ["--version"], environment: ProcessInfo.processInfo.environment, timeout: 60)
            if probe?.status != 0 { missing.append("chromedriver --version failed: \(probe?.output ?? "did not run")") }
        }
        return missing
    }

    /// Runs a program to completion without blocking a thread: stdout and stderr together (through a
    /// file, so a chatty child never blocks on a full pipe). Terminated (SIGTERM) after `timeout` s.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String],
                    timeout: Double) async throws -> (status: Int32, output: String) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("mediscope-browser-\(UUID().uuidString).log")
        guard FileManager.default.createFile(atPath: log.path, contents: nil) else { throw StackError("cannot create \(log.path)") }
        defer { try? FileManager.default.removeItem(at: log) }
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.environment = environment
        p.currentDirectoryURL = Stack.root
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = handle
        p.standardError = handle
        let watchdog = Task {
            try await Task.sleep(for: .seconds(timeout))
            guard p.isRunning else { return }
            p.terminate()   // dashboard.py turns SIGTERM into a failure and quits Chromium
            try await Task.sleep(for: .seconds(30))
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        defer { watchdog.cancel() }
        let started = Date()
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            p.terminationHandler = { _ in continuation.resume() }
            do { try p.run() } catch { continuation.resume(throwing: error) }
        }
        var output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        if p.terminationReason == .uncaughtSignal || Date().timeIntervalSince(started) >= timeout {
            output += "\n[terminated after \(Int(Date().timeIntervalSince(started))) s (timeout \(Int(timeout)) s)]"
        }
        return (p.terminationStatus, output)
    }
}
