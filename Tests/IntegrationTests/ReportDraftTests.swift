import FirebaseTestKit
import Foundation
import MediscopeImaging
import Testing

/// The plain-language report through real nginx and the real pool, with a local server speaking the
/// chat completions wire format as Groq documents it (Groq itself cannot be reached from here).
@Suite(.serialized) final class ReportDraftTests {
    /// Distinctive values that must never reach the LLM.
    static let patient = ["patient_id": "PID-QZ-48151623", "patient_name": "Hortensia Vexlander", "note": "allergic to quinzole, ward 7B",
                          "age": "93", "sex": "female", "modality": "MRI", "body_part": "brain"]

    /// A chat completion of `text`; `finish` is its `finish_reason` (none when nil, as some servers send).
    static func reply(_ text: String, model: String = "llama-3.1-8b-instant", finish: String? = nil) -> ScriptedHTTPServer.Response {
        let escaped = String(decoding: try! JSONEncoder().encode(text), as: UTF8.self)
        let reason = finish.map { #","finish_reason":"\#($0)""# } ?? ""
        return .json(200, #"{"id":"c1","object":"chat.completion","model":"\#(model)","choices":[{"index":0,"message":{"role":"assistant","content":\#(escaped)}\#(reason)}],"usage":{"prompt_tokens":111,"completion_tokens":22}}"#)
    }

    func stack(llm: ScriptedHTTPServer?, _ extra: [String: String] = [:]) async throws -> Stack {
        var settings = extra
        if let llm {
            settings["LLM_BASE_URL"] = llm.baseURL.appendingPathComponent("openai/v1").absoluteString
            settings["LLM_MODEL"] = "llama-3.1-8b-instant"
            settings["LLM_TIMEOUT_SECONDS"] = settings["LLM_TIMEOUT_SECONDS"] ?? "5"
        }
        let stack = try await Stack.start(settings: settings)
        stack.remember(Self.patient.values)
        return stack
    }

    /// Polls the analysis until its report leaves `pending`; the report object.
    func waitForDraft(_ stack: Stack, _ id: String, timeout: Double = 60) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let r = try await stack.request("GET", "/api/analyses/\(id)")
            if let report = r.json?["report"] as? [String: Any], report["status"] as? String != "pending" { return report }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw StackError("no draft for \(id) in \(timeout) s")
    }

    func send(_ stack: Stack, _ method: String, _ path: String, text: String, base: Int) async throws -> Stack.Response {
        let body = try JSONSerialization.data(withJSONObject: ["text": text, "baseVersion": base])
        return try await stack.request(method, path, body: body, contentType: "application/json")
    }

    @Test func anLLMDraftIsEditedSignedAndAmendedAndNothingIdentifyingIsSent() async throws {
        let text = "<script>alert('x')</script> **The Tumour type model** suggests a glioma.\n\nThe heatmap shows the regions that drove it."
        let llm = try ScriptedHTTPServer { _, _ in Self.reply(text) }
        defer { llm.stop() }
        let stack = try await stack(llm: llm)
        defer { stack.stop() }
        // A user whose name is distinctive: it must not reach the LLM either.
        let uploader = try stack.token(forNewUser: "drqvzrwx", role: "clinician")
        let upload = try await stack.upload(image: try Scans.jpeg, fields: Self.patient, auth: .bearer(uploader))
        #expect(upload.status == 201)
        #expect((upload.json?["report"] as? [String: Any])?["status"] as? String == "pending", "the 201 does not wait for the draft")
        let id = try #require(upload.json?["id"] as? String)

        let draft = try await waitForDraft(stack, id)
        #expect(draft["status"] as? String == "draft" && draft["text"] as? String == text && draft["version"] as? Int == 1)
        let source = try #require(draft["source"] as? [String: Any])
        #expect(source["kind"] as? String == "llm" && source["model"] as? String == "llama-3.1-8b-instant")

        // What left the building: results and coarse facts, no identifier.
        let sent = llm.requests.map { String(decoding: $0.body, as: UTF8.self) }.joined()
        #expect(llm.requests.count == 1)
        for (field, value) in Self.patient where ["patient_id", "patient_name", "note"].contains(field) {
            #expect(!sent.contains(value), "the prompt holds the \(field)")
        }
        #expect(!sent.contains("drqvzrwx") && !sent.contains("default") && !sent.contains(id), "no user, organisation or record id")
        #expect(sent.contains("90+") && sent.contains("MRI") && sent.contains("female"))

        let path = "/api/analyses/\(id)/report"
        let edited = try await send(stack, "PUT", path, text: "Edited by the clinician.", base: 1)
        #expect(edited.status == 200 && edited.json?["version"] as? Int == 2 && edited.json?["status"] as? String == "draft")
        #expect(try await send(stack, "PUT", path, text: "A stale edit.", base: 1).status == 409, "stale base version")
        let signed = try await send(stack, "POST", path + "/sign", text: "Signed text.", base: 2)
        #expect(signed.status == 200 && signed.json?["status"] as? String == "signed" && signed.json?["signedBy"] as? String == "clinician")
        #expect(try await send(stack, "PUT", path, text: "Change after signing.", base: 3).status == 409, "a signed report is final")
        #expect(try await send(stack, "POST", path + "/sign", text: "Sign twice.", base: 3).status == 409)
        let amended = try await send(stack, "POST", path + "/amend", text: "Amended: the second model agrees.", base: 3)
        #expect(amended.status == 200 && amended.json?["version"] as? Int == 4)
        let versions = try #require((try await stack.request("GET", "/api/analyses/\(id)")).json?["report"] as? [String: Any])["versions"]
            as? [[String: Any]]
        #expect(versions?.map { $0["status"] as? String ?? "" } == ["draft", "draft", "signed", "signed"])
        #expect(versions?.first?["text"] as? String == text, "every version is kept")

        let printed = String(decoding: try await stack.request("GET", "/analyses/\(id)/report").body, as: UTF8.self)
        #expect(printed.contains("Amended: the second model agrees.") && printed.contains("Signed by") && printed.contains("(amended)"))
        #expect(!printed.contains("Unsigned draft") && !printed.contains("<script>alert"))

        let admin = try stack.syncCreateToken(try { try stack.addUser("reportadmin", role: "admin"); return try stack.syncSignIn("reportadmin") }())
        #expect(try await stack.request("POST", path + "/amend", body: Data(#"{"text":"x","baseVersion":4}"#.utf8),
                                        contentType: "application/json", auth: .bearer(admin)).status == 403, "admins see no patients")
        let audit = try #require(try await stack.request("GET", "/api/audit?limit=1000", auth: .bearer(admin)).json?["entries"] as? [[String: Any]])
        let actions = audit.filter { $0["recordId"] as? String == id }.compactMap { $0["action"] as? String }
        for action in ["report.draft", "report.edit", "report.sign", "report.amend"] { #expect(actions.contains(action), "\(action) audited") }
    }

    @Test func withoutAnLLMTheTemplateWritesTheDraftAndItPrintsAsUnsigned() async throws {
        let stack = try await stack(llm: nil)
        defer { stack.stop() }
        let id = try #require(try await stack.upload(image: try Scans.jpeg, fields: Self.patient).json?["id"] as? String)
        // Poll the report alone, as the dashboard does: pending polls leave no audit entry.
        var polls = 0
        var draft: [String: Any] = [:]
        _ = try await eventually(timeout: 60, every: .milliseconds(50)) {
            polls += 1
            draft = try #require(try await stack.request("GET", "/api/analyses/\(id)/report").json)
            return draft["status"] as? String != "pending"
        }
        #expect(draft["status"] as? String == "draft")
        let source = try #require(draft["source"] as? [String: Any])
        #expect(source["kind"] as? String == "template" && source["reason"] as? String == "no LLM is configured")
        let admin = try stack.syncCreateToken(try { try stack.addUser("auditor2", role: "admin"); return try stack.syncSignIn("auditor2") }())
        let audit = try #require(try await stack.request("GET", "/api/audit?limit=1000", auth: .bearer(admin)).json?["entries"] as? [[String: Any]])
        let views = audit.filter { $0["recordId"] as? String == id && ($0["action"] as? String)?.hasSuffix(".view") == true }
        #expect(views.map { $0["action"] as? String } == ["report.view"], "\(polls) polls, one audited view (the one with text)")
        #expect((draft["text"] as? String)?.contains("not a diagnosis") == true)
        let printed = String(decoding: try await stack.request("GET", "/analyses/\(id)/report").body, as: UTF8.self)
        #expect(printed.contains("Unsigned draft") && printed.contains("Reviewed by"))

        // Bad input: a clear 4xx, nothing stored, the worker alive.
        let path = "/api/analyses/\(id)/report"
        #expect(try await send(stack, "PUT", path, text: "Left-to-right \u{202E}reversed", base: 1).status == 400, "a bidi override")
        #expect(try await send(stack, "PUT", path, text: "   ", base: 1).status == 422, "empty text")
        let malformed = try await stack.request("PUT", path, body: Data("{\"text\": ".utf8), contentType: "application/json")
        #expect(malformed.status == 400 && malformed.header("Content-Type")?.contains("problem+json") == true)
        #expect(try await stack.request("PUT", path, body: Data("text=x".utf8), contentType: "text/plain").status == 415)
        #expect(try await send(stack, "PUT", path, text: String(repeating: "x", count: 20_001), base: 1).status == 400, "too long")
        let after = try #require(try await stack.request("GET", path).json)
        #expect(after["version"] as? Int == 1 && (after["versions"] as? [[String: Any]])?.count == 1, "nothing was stored")
        let other = try { try stack.addUser("elsewhere", role: "clinician", organization: "other-org"); return try stack.syncSignIn("elsewhere") }()
        #expect(try await stack.request("PUT", "/api/analyses/\(id)/report", body: Data(#"{"text":"x","baseVersion":1}"#.utf8),
                                        contentType: "application/json", auth: other).status == 404, "another organisation cannot edit")
        #expect(try await stack.request("POST", "/api/analyses/\(id)/report/sign", body: Data(#"{"text":"x","baseVersion":1}"#.utf8),
                                        contentType: "application/json", auth: other).status == 404, "or sign")
    }

    /// 500 then 429 with Retry-After then success: the draft is the LLM's, after waiting as told.
    @Test func serverErrorsAndRateLimitsAreRetriedThenTheTemplateTakesOver() async throws {
        let llm = try ScriptedHTTPServer { _, i in
            switch i {
            case 0: .json(500, #"{"error":{"message":"oops","type":"server_error"}}"#)
            case 1: ScriptedHTTPServer.Response(status: 429, headers: [("Content-Type", "application/json"), ("Retry-After", "2")],
                                                body: Array(#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#.utf8))
            case 2: Self.reply("Third time lucky: the Tumour type model's result is shown.")
            default: .json(503, #"{"error":{"message":"down"}}"#)
            }
        }
        defer { llm.stop() }
        let stack = try await stack(llm: llm, ["LLM_MAX_ATTEMPTS": "3"])
        defer { stack.stop() }
        let first = try #require(try await stack.upload(image: try Scans.jpeg).json?["id"] as? String)
        let draft = try await waitForDraft(stack, first)
        #expect(draft["text"] as? String == "Third time lucky: the Tumour type model's result is shown."
                && (draft["source"] as? [String: Any])?["kind"] as? String == "llm")
        #expect(llm.requests.count == 3)

        // From now on the server fails: after 3 attempts the template, with the reason.
        let second = try #require(try await stack.upload(image: try Scans.jpeg).json?["id"] as? String)
        let fallback = try await waitForDraft(stack, second, timeout: 90)
        let source = try #require(fallback["source"] as? [String: Any])
        #expect(source["kind"] as? String == "template" && (source["reason"] as? String)?.contains("HTTP 503") == true, "\(source)")
        #expect(llm.requests.count == 6)
        // The job is counted as done just after its draft is stored: wait for the counters, not the draft.
        let expected = ["mediscope_report_jobs_done_total{host=\"it-host\",source=\"llm\"} 1",
                        "mediscope_report_jobs_done_total{host=\"it-host\",source=\"template\"} 1",
                        "mediscope_report_job_failed_attempts_total{host=\"it-host\"} 5",
                        "mediscope_llm_tokens_total{host=\"it-host\",kind=\"prompt\"} 111"]
        var metrics = ""
        _ = try await eventually(timeout: 20, every: .milliseconds(200)) {
            metrics = String(decoding: try await stack.request("GET", "/api/metrics", auth: Stack.Auth.none).body, as: UTF8.self)
            return expected.allSatisfy(metrics.contains)
        }
        for line in expected { #expect(metrics.contains(line), "\(line)") }
    }

    @Test(arguments: ["{not json", #"{"choices":[]}"#, "huge"])
    func unusableRepliesFallBackToTheTemplate(_ body: String) async throws {
        let huge = Self.reply(String(repeating: "y", count: 5 << 20))
        let llm = try ScriptedHTTPServer { _, _ in body == "huge" ? huge : .json(200, body) }
        defer { llm.stop() }
        let stack = try await stack(llm: llm, ["LLM_MAX_ATTEMPTS": "1"])
        defer { stack.stop() }
        let id = try #require(try await stack.upload(image: try Scans.jpeg).json?["id"] as? String)
        let draft = try await waitForDraft(stack, id)
        #expect((draft["source"] as? [String: Any])?["kind"] as? String == "template")
        #expect(((draft["source"] as? [String: Any])?["reason"] as? String)?.contains(body == "huge" ? "tooLarge" : "badResponse") == true)
    }

    /// An LLM that takes 10 s holds a report job process, never an upload or an inference worker.
    @Test func aSlowLLMNeverHoldsUploads() async throws {
        let release = DispatchSemaphore(value: 0)
        // Held until released (60 s at most, so a failing test cannot hang): a timed release let a slow
        // machine's uploads outlast the hold, and the second draft's request then arrived.
        let llm = try ScriptedHTTPServer { _, _ in
            _ = release.wait(timeout: .now() + 60)
            return Self.reply("Late but fine: the Tumour type model answered.")
        }
        defer { llm.stop() }
        let stack = try await stack(llm: llm, ["LLM_TIMEOUT_SECONDS": "90"])
        defer { stack.stop() }
        let first = try #require(try await stack.upload(image: try Scans.jpeg).json?["id"] as? String)
        // Wait until the LLM holds the first draft's request.
        let deadline = Date().addingTimeInterval(60)
        while llm.requests.isEmpty, Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(llm.requests.count == 1)
        // While it does, uploads complete, and no inference worker is busy once they have.
        for _ in 0..<3 { #expect(try await stack.upload(image: try Scans.jpeg).status == 201) }
        // A worker marks itself idle just after its answer is sent: poll for that.
        #expect(try await eventually(timeout: 60) { try stack.poolNumber("inference", "activeWorkers") == 0 },
                "the inference pool is idle while the LLM works")
        let status = try #require(try stack.syncRequest("GET", "/api/status", auth: Stack.Auth.none).json)
        #expect((status["reportJobs"] as? [String: Any])?["running"] as? Int == 1)
        #expect(llm.requests.count == 1, "the LLM was still busy with the first draft: it ran outside the uploads")
        release.signal()
        #expect(try await waitForDraft(stack, first)["text"] as? String == "Late but fine: the Tumour type model answered.")
        for _ in 0..<3 { release.signal() }
    }

    /// Jobs queued and one running when the whole pool is killed: after a restart every draft is written once.
    @Test func queuedJobsSurviveARestartAndCompleteOnce() async throws {
        // The LLM answers only after the kill (a timed hang let slow uploads on a loaded machine outlast
        // it), and the job keeps trying until then (30 s attempts, 10 of them). The lease of the job the
        // kill interrupts is the timeout + 30 s: after that the restarted pool takes it again.
        let gate = DispatchSemaphore(value: 0)
        let hang = try ScriptedHTTPServer { _, _ in
            _ = gate.wait(timeout: .now() + 300)
            return Self.reply("never seen")
        }
        let stack = try await stack(llm: hang, ["LLM_TIMEOUT_SECONDS": "30", "LLM_MAX_ATTEMPTS": "10"])
        defer { stack.stop() }
        var ids: [String] = []
        for _ in 0..<3 { ids.append(try #require(try await stack.upload(image: try Scans.jpeg).json?["id"] as? String)) }
        stack.killWholePool()
        for _ in 0..<4 { gate.signal() }
        hang.stop()

        // Same state folder, an LLM that answers, on the same address.
        let llm = try ScriptedHTTPServer(port: hang.port) { _, _ in Self.reply("Written after the restart: the Tumour type model answered.") }
        defer { llm.stop() }
        try await stack.startServer()
        for id in ids {
            let draft = try await waitForDraft(stack, id, timeout: 90)
            #expect(draft["text"] as? String == "Written after the restart: the Tumour type model answered.")
            #expect((draft["versions"] as? [[String: Any]])?.count == 1, "one draft per analysis")
        }
        // The last job is finished just after its draft is stored.
        var jobs: [String: Any] = [:]
        let settled = try await eventually(timeout: 20, every: .milliseconds(200)) {
            jobs = try #require(try stack.syncRequest("GET", "/api/status", auth: Stack.Auth.none).json?["reportJobs"] as? [String: Any])
            return jobs["queued"] as? Int == 0 && jobs["running"] as? Int == 0
        }
        #expect(settled, "\(jobs)")
    }

    // MARK: Issue 21

    /// A reply cut at max_tokens, a refusal and a filtered reply each became the draft. Now each is a failed
    /// attempt that is not retried (the same prompt would fail the same way): the template writes the draft
    /// with the reason, the reply is not stored anywhere in the report, and the log keeps what came.
    @Test func cutRefusedAndFilteredRepliesAreNotDraftsTheTemplateIsAndTheLogKeepsThem() async throws {
        let replies: [ScriptedHTTPServer.Response] = [
            Self.reply("The Tumour type model predicted Glioma with a confidence of 9", finish: "length"),
            Self.reply("I can't help with medical image interpretation. Please ask a radiologist.", finish: "stop"),
            Self.reply("The Tumour type model", finish: "content_filter"),
            Self.reply("The Tumour type model predicted Glioma with a confidence of 9"),   // cut, and the server did not say so
        ]
        let llm = try ScriptedHTTPServer { _, i in replies[min(i, replies.count - 1)] }
        defer { llm.stop() }
        let stack = try await stack(llm: llm, ["LLM_MAX_ATTEMPTS": "3"])
        defer { stack.stop() }
        for (i, words) in ["truncated", "refusal", "filtered", "mid-sentence"].enumerated() {
            let id = try #require(try await stack.upload(image: try Scans.jpeg, fields: Self.patient).json?["id"] as? String)
            let draft = try await waitForDraft(stack, id)
            let source = try #require(draft["source"] as? [String: Any])
            #expect(source["kind"] as? String == "template" && (source["reason"] as? String)?.contains(words) == true, "\(source)")
            #expect((draft["text"] as? String)?.contains("not a diagnosis") == true)
            #expect(!(draft["text"] as? String ?? "").contains("confidence of 9") && !(draft["text"] as? String ?? "").contains("help with medical"))
            #expect(llm.requests.count == i + 1, "one request per report: not retried")
        }
        // What came back is in the reports process's log for the operator (log fields keep letters, digits, spaces).
        var log = ""
        let logged = try await eventually(timeout: 20, every: .milliseconds(200)) {
            log = (try? String(contentsOf: stack.logFile, encoding: .utf8)) ?? ""
            return log.components(separatedBy: "llm_reply_not_used").count - 1 >= 4
        }
        #expect(logged && log.contains("with a confidence of 9") && log.contains("I can?t help with medical"), "\(log.suffix(2000))")
    }

    /// `Retry-After: 3600` kept the report pending an hour per attempt. A wait longer than
    /// llm.max_retry_wait_seconds (default 120) is not waited for: the template writes the draft at once.
    @Test func aRetryAfterOfAnHourIsNotWaitedFor() async throws {
        let llm = try ScriptedHTTPServer { _, _ in
            ScriptedHTTPServer.Response(status: 429, headers: [("Content-Type", "application/json"), ("Retry-After", "3600")],
                                        body: Array(#"{"error":{"message":"daily limit","type":"tokens","code":"rate_limit_exceeded"}}"#.utf8))
        }
        defer { llm.stop() }
        let stack = try await stack(llm: llm, ["LLM_MAX_ATTEMPTS": "3"])
        defer { stack.stop() }
        let id = try #require(try await stack.upload(image: try Scans.jpeg).json?["id"] as? String)
        let draft = try await waitForDraft(stack, id, timeout: 90)
        let source = try #require(draft["source"] as? [String: Any])
        let reason = source["reason"] as? String ?? ""
        #expect(source["kind"] as? String == "template" && reason.contains("HTTP 429") && reason.contains("asked to wait 3600 s")
                && reason.contains("llm.max_retry_wait_seconds (120 s)"), "\(reason)")
        #expect(llm.requests.count == 1)
    }

    /// The clinician's own text was refused (409) while the draft was pending. Now they write and sign it;
    /// the draft that arrives later is kept as a late draft and never replaces their text, in the API and
    /// on the printed report.
    @Test func aClinicianWritesAndSignsWhileTheDraftIsPendingAndTheLateDraftNeverReplacesIt() async throws {
        let release = DispatchSemaphore(value: 0)
        let llm = try ScriptedHTTPServer { _, _ in
            _ = release.wait(timeout: .now() + 60)   // held until released; 60 s at most so a failing test cannot hang
            return Self.reply("The Tumour type model's late draft.")
        }
        defer { llm.stop() }
        let stack = try await stack(llm: llm, ["LLM_TIMEOUT_SECONDS": "90"])
        defer { stack.stop() }
        let id = try #require(try await stack.upload(image: try Scans.jpeg, fields: Self.patient).json?["id"] as? String)
        #expect(try await eventually(timeout: 60) { !llm.requests.isEmpty }, "the LLM holds the draft's request")
        let path = "/api/analyses/\(id)/report"
        #expect(try await stack.request("GET", path).json?["status"] as? String == "pending")

        #expect(try await send(stack, "PUT", path, text: "Stale base.", base: 1).status == 409, "no version 1 yet: base 0")
        let written = try await send(stack, "PUT", path, text: "Written while pending.", base: 0)
        #expect(written.status == 200 && written.json?["version"] as? Int == 1 && written.json?["status"] as? String == "draft",
                "\(String(decoding: written.body, as: UTF8.self))")
        #expect((written.json?["source"] as? [String: Any])?["kind"] as? String == "clinician")
        let signed = try await send(stack, "POST", path + "/sign", text: "Written while pending, signed.", base: 1)
        #expect(signed.status == 200 && signed.json?["status"] as? String == "signed" && signed.json?["version"] as? Int == 2)

        release.signal()
        var report: [String: Any] = [:]
        let arrived = try await eventually(timeout: 60, every: .milliseconds(200)) {
            report = try #require(try await stack.request("GET", path).json)
            return (report["versions"] as? [[String: Any]])?.count == 3
        }
        #expect(arrived, "the late draft is kept as version 3: \(report)")
        let versions = report["versions"] as? [[String: Any]] ?? []
        #expect(versions.last?["text"] as? String == "The Tumour type model's late draft." && versions.last?["late"] as? Bool == true
                && (versions.last?["source"] as? [String: Any])?["kind"] as? String == "llm")
        #expect(versions.dropLast().allSatisfy { $0["late"] == nil })
        #expect(report["status"] as? String == "signed" && report["text"] as? String == "Written while pending, signed."
                && report["signedBy"] as? String == "clinician" && report["version"] as? Int == 3, "\(report)")
        #expect((report["source"] as? [String: Any])?["kind"] as? String == "clinician")
        // Still signed: an edit is refused, an amendment (on the newest version number) is not.
        #expect(try await send(stack, "PUT", path, text: "An edit.", base: 3).status == 409)
        #expect(try await send(stack, "POST", path + "/amend", text: "Amended after the late draft.", base: 3).json?["version"] as? Int == 4)
        let printed = String(decoding: try await stack.request("GET", "/analyses/\(id)/report").body, as: UTF8.self)
        #expect(printed.contains("Amended after the late draft.") && !printed.contains("s late draft") && printed.contains("Signed by"))
        #expect(llm.requests.count == 1)
    }
}

extension ReportDraftTests {
    /// Issue 22 through the stack: the LLM is told an image is out of scope (the verdict and reason codes,
    /// nothing that identifies anyone), and its draft, which left the warning out, is kept with it first.
    @Test func anOutOfScopeImageIsAFactTheLLMGetsAndTheDraftKeepsTheWarning() async throws {
        let text = "Brain tumour: the model predicted no tumour with high confidence."
        let llm = try ScriptedHTTPServer { _, _ in Self.reply(text) }
        defer { llm.stop() }
        let stack = try await stack(llm: llm)
        defer { stack.stop() }
        let blank = Data(try ImageEncoder.png(PixelImage(width: 300, height: 300, channels: 1,
                                                         pixels: [UInt8](repeating: 90, count: 300 * 300))))
        let upload = try await stack.upload(image: blank, filename: "blank.png", fields: Self.patient)
        #expect(upload.status == 201)
        #expect((upload.json?["inputCheck"] as? [String: Any])?["verdict"] as? String == "out_of_scope")
        let id = try #require(upload.json?["id"] as? String)

        let draft = try await waitForDraft(stack, id)
        #expect(draft["text"] as? String == "WARNING: \(InputCheck.warning)\n\n" + text, "\(draft["text"] ?? "")")
        let sent = llm.requests.map { String(decoding: $0.body, as: UTF8.self) }.joined()
        #expect(sent.contains(#"\"inputCheck\":\"out_of_scope\""#) && sent.contains("uniform"), "the verdict and its code reach the LLM")
        for (field, value) in Self.patient where ["patient_id", "patient_name", "note"].contains(field) {
            #expect(!sent.contains(value), "the prompt holds the \(field)")
        }
        #expect(!sent.contains(id) && !sent.contains("blank.png"), "no record id or file name")
    }
}
