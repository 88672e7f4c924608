import Foundation
import Testing
import TestSupport

/// Idempotency-Key on uploads and on the report's changes, through real nginx and the real pools: a retry
/// is answered with the first answer and makes nothing again, whether the first answer was received, its
/// connection cut, or its worker killed; another request under the key is a 422, one still running a 409.
@Suite(.serialized) final class IdempotencyTests: @unchecked Sendable {
    let stack: Stack
    let adminToken: String

    init() async throws {
        // Two inference workers, so two uploads under one key can run at once; a file whose worker was
        // killed may be sent again (the kill is the test's, not the file's).
        stack = try await Stack.start(settings: ["POOLS_INFERENCE_WORKERS": "2", "CRASH_FILE_SECONDS": "0", "CRASH_CLIENT_LIMIT": "100"])
        adminToken = try stack.token(forNewUser: "idem-admin", role: "admin")
    }
    deinit { stack.stop() }

    func upload(_ image: Data, patient: String, key: String?, boundary: String = "idem-\(UUID().uuidString)") async throws -> Stack.Response {
        stack.remember([patient])
        let (body, type) = Multipart.body(fields: ["patient_id": patient, "modality": "MRI"], files: [("image", "scan.jpg", image)],
                                          boundary: boundary)
        return try await stack.request("POST", "/api/analyses", body: body, contentType: type,
                                       headers: key.map { ["Idempotency-Key": $0] } ?? [:])
    }

    func records(patient: String) async throws -> [String] {
        let r = try await stack.request("GET", "/api/analyses?limit=100&patient_id=\(patient)")
        #expect(r.status == 200)
        return try #require(r.json?["items"] as? [[String: Any]]).compactMap { $0["id"] as? String }
    }

    /// The upload sent again while it is answered 409 (its first request still runs), until the deadline;
    /// the last answer, and whether it was other than 409.
    func retried(_ image: Data, patient: String, key: String) async throws -> (Stack.Response, Bool) {
        var retry = try await upload(image, patient: patient, key: key)
        let answered = try await eventually(timeout: 60, every: .milliseconds(100)) {
            if retry.status != 409 { return true }
            retry = try await self.upload(image, patient: patient, key: key)
            return false
        }
        return (retry, answered)
    }

    /// Analyses run so far: every one counts its input check's verdict once.
    func analysesRun() async throws -> Int {
        let r = try await stack.request("GET", "/api/metrics", auth: .bearer(adminToken))
        #expect(r.status == 200)
        return String(decoding: r.body, as: UTF8.self).split(separator: "\n")
            .filter { $0.hasPrefix("mediscope_input_checks_total{") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0) { $0 + Int($1) }
    }

    /// The audit entries of `action` by outcome.
    func audited(_ action: String, record: String? = nil) async throws -> [String: Int] {
        let r = try await stack.request("GET", "/api/audit?limit=1000", auth: .bearer(adminToken))
        #expect(r.status == 200)
        let entries = try #require(r.json?["entries"] as? [[String: Any]])
        var outcomes: [String: Int] = [:]
        for e in entries where e["action"] as? String == action && (record == nil || e["recordId"] as? String == record) {
            outcomes[e["outcome"] as? String ?? "?", default: 0] += 1
        }
        return outcomes
    }

    @Test func aRetriedUploadGetsItsFirstAnswerAndMakesNothingAgain() async throws {
        let image = PoisonedRequestTests.variant(try Scans.jpeg, "idem retried")
        let key = "\"\(UUID().uuidString)\""
        let first = try await upload(image, patient: "IDEM-1", key: key)
        #expect(first.status == 201, "\(String(decoding: first.body, as: UTF8.self))")
        let id = try #require(first.json?["id"] as? String)
        #expect(first.header("Idempotent-Replayed") == nil)
        let runs = try await analysesRun()

        // Built anew, as a client's retry is: another multipart boundary, the same fields and file.
        let again = try await upload(image, patient: "IDEM-1", key: key)
        #expect(again.status == 201)
        #expect(again.json?["id"] as? String == id)
        #expect(again.header("Location") == first.header("Location"))
        #expect(again.header("Idempotent-Replayed") == "true")
        #expect((again.json?["results"] as? [[String: Any]])?.count == (first.json?["results"] as? [[String: Any]])?.count)
        #expect(try await records(patient: "IDEM-1") == [id])
        #expect(try await analysesRun() == runs, "a replay runs no model")
        let audit = try await audited("analysis.create", record: id)
        #expect(audit["success"] == 1 && audit["replayed"] == 1, "\(audit)")

        // The same key with another request: another patient, or another file.
        let otherPatient = try await upload(image, patient: "IDEM-1B", key: key)
        #expect(otherPatient.status == 422)
        #expect((otherPatient.json?["detail"] as? String)?.contains("Idempotency-Key was used for a different request") == true)
        #expect(try await upload(PoisonedRequestTests.variant(image, "other"), patient: "IDEM-1", key: key).status == 422)
        #expect(try await records(patient: "IDEM-1") == [id])
        #expect(try await records(patient: "IDEM-1B").isEmpty)

        // Another user's key is another key, even with the same text.
        let other = try stack.token(forNewUser: "idem-other", role: "clinician")
        let (body, type) = Multipart.body(fields: ["patient_id": "IDEM-1", "modality": "MRI"], files: [("image", "scan.jpg", image)])
        let theirs = try await stack.request("POST", "/api/analyses", body: body, contentType: type, auth: .bearer(other),
                                             headers: ["Idempotency-Key": key])
        #expect(theirs.status == 201)
        #expect(theirs.json?["id"] as? String != id)

        // A malformed key is refused before anything runs.
        for bad in ["two words", "\"unclosed", String(repeating: "k", count: 256)] {
            let r = try await upload(image, patient: "IDEM-1", key: bad)
            #expect(r.status == 400, "\(bad)")
            #expect(r.header("Content-Type")?.hasPrefix("application/problem+json") == true)
        }
        // After its analysis is deleted, the key says so instead of pointing at nothing.
        #expect(try await stack.request("DELETE", "/api/analyses/\(id)").status == 204)
        let afterDelete = try await upload(image, patient: "IDEM-1", key: key)
        #expect(afterDelete.status == 410)
        #expect((afterDelete.json?["detail"] as? String)?.contains("deleted") == true)
    }

    @Test func uploadsUnderOneKeyAtOnceMakeOneRecord() async throws {
        let image = PoisonedRequestTests.variant(try Scans.jpeg, "idem concurrent")
        let key = UUID().uuidString
        #expect(try await upload(image, patient: "IDEM-2-WARM", key: nil).status == 201)   // both workers' models loaded
        #expect(try await upload(image, patient: "IDEM-2-WARM", key: nil).status == 201)
        let runs = try await analysesRun()
        let answers = try await withThrowingTaskGroup(of: Stack.Response.self) { group in
            for _ in 0..<4 { group.addTask { try await self.upload(image, patient: "IDEM-2", key: key) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let made = answers.filter { $0.status == 201 }
        #expect(!made.isEmpty)
        #expect(answers.allSatisfy { [201, 409].contains($0.status) }, "\(answers.map(\.status))")
        for busy in answers where busy.status == 409 {
            #expect(busy.header("Retry-After") != nil)
            #expect((busy.json?["detail"] as? String)?.contains("still being processed") == true)
        }
        let ids = Set(made.compactMap { $0.json?["id"] as? String })
        #expect(ids.count == 1)
        #expect(made.filter { $0.header("Idempotent-Replayed") == nil }.count == 1, "one answer is the first, the others repeat it")
        // Those told 409 retry and get the same answer.
        let later = try await upload(image, patient: "IDEM-2", key: key)
        #expect(later.status == 201 && ids.contains(later.json?["id"] as? String ?? ""))
        #expect(try await records(patient: "IDEM-2") == Array(ids))
        #expect(try await analysesRun() == runs + 1, "one model run for the key")
    }

    @Test func anUploadWhoseConnectionWasCutIsFoundByItsRetry() async throws {
        let image = PoisonedRequestTests.variant(try Scans.jpeg, "idem cut")
        let key = UUID().uuidString
        stack.remember(["IDEM-3"])
        let (body, type) = Multipart.body(fields: ["patient_id": "IDEM-3", "modality": "MRI"], files: [("image", "scan.jpg", image)])
        guard case .bearer(let token)? = stack.defaultAuth else { throw StackError("the stack has no API token") }
        var head = "POST /api/analyses HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\n"
        head += "Content-Type: \(type)\r\nContent-Length: \(body.count)\r\nIdempotency-Key: \(key)\r\nConnection: close\r\n\r\n"
        // The whole request, then the connection closed once a worker has begun it (its audit intent is
        // written first thing): the answer is never read.
        let started = try await audited("analysis.create")["started"] ?? 0
        let client = try RawConnection(port: stack.port, from: "127.0.0.1")
        try client.send(Array(head.utf8) + Array(body))
        let taken = try await eventually(every: .milliseconds(20)) {
            try await self.audited("analysis.create")["started"] ?? 0 > started
        }
        client.close()
        #expect(taken, "no worker took the upload")

        let (retry, answered) = try await retried(image, patient: "IDEM-3", key: key)
        #expect(answered && retry.status == 201, "\(retry.status)")
        // The cut request ran to its end: the retry is its answer, repeated.
        #expect(retry.header("Idempotent-Replayed") == "true")
        #expect(try await records(patient: "IDEM-3") == [try #require(retry.json?["id"] as? String)])
    }

    @Test func anUploadWhoseWorkerWasKilledIsTakenOverByItsRetry() async throws {
        let jpeg = try Scans.jpeg
        #expect(try await upload(jpeg, patient: "IDEM-WARM", key: nil).status == 201)   // models loaded
        // Catch a worker busy with a keyed upload and kill it; an upload that finished unseen is followed
        // by another under a new key (a loaded machine may outrun the status reads).
        var killed: (key: String, image: Data, answer: Stack.Response)?
        for attempt in 0..<10 where killed == nil {
            let key = UUID().uuidString, image = PoisonedRequestTests.variant(jpeg, "idem kill \(attempt)")
            let finished = UploadFinished()
            let first = Task { defer { finished.mark() }; return try await self.upload(image, patient: "IDEM-4", key: key) }
            var victim: Int32?
            let deadline = Date().addingTimeInterval(30)
            while victim == nil, !finished.isMarked, Date() < deadline {
                if let busy = try stack.workers("inference").first(where: { $0.state == "busy" }) {
                    kill(busy.pid, SIGKILL)
                    victim = busy.pid
                } else {
                    try await Task.sleep(for: .milliseconds(2))
                }
            }
            let answer = try await first.value
            if victim != nil && answer.status != 201 { killed = (key, image, answer) }
        }
        let (key, image, answer) = try #require(killed)
        #expect(answer.status == 500)
        let before = Set(try await records(patient: "IDEM-4"))

        // The key's holder is dead: the retry takes it over and runs the upload (or finds its record).
        let (retry, answered) = try await retried(image, patient: "IDEM-4", key: key)
        #expect(answered && retry.status == 201, "\(retry.status) \(String(decoding: retry.body, as: UTF8.self))")
        let id = try #require(retry.json?["id"] as? String)
        let after = Set(try await records(patient: "IDEM-4"))
        #expect(after.subtracting(before) == [id] || (before.contains(id) && after == before), "one record for the key")
        let again = try await upload(image, patient: "IDEM-4", key: key)
        #expect(again.status == 201 && again.json?["id"] as? String == id && again.header("Idempotent-Replayed") == "true")
    }

    @Test func aRetriedSignOrAmendGetsItsFirstAnswerAndAppendsNothing() async throws {
        let upload = try await self.upload(PoisonedRequestTests.variant(try Scans.jpeg, "idem report"), patient: "IDEM-5", key: nil)
        let id = try #require(upload.json?["id"] as? String)
        _ = try await stack.draft(id)
        func change(_ route: String, _ text: String, base: Int, key: String?) async throws -> Stack.Response {
            try await stack.request("POST", "/api/analyses/\(id)/report/\(route)",
                                    body: try JSONSerialization.data(withJSONObject: ["text": text, "baseVersion": base]),
                                    contentType: "application/json", headers: key.map { ["Idempotency-Key": $0] } ?? [:])
        }
        func versions(_ r: Stack.Response) -> Int { (r.json?["versions"] as? [[String: Any]])?.count ?? -1 }

        let key = UUID().uuidString
        let signed = try await change("sign", "Signed text.", base: 1, key: key)
        #expect(signed.status == 200, "\(String(decoding: signed.body, as: UTF8.self))")
        #expect(versions(signed) == 2)
        let again = try await change("sign", "Signed text.", base: 1, key: key)
        #expect(again.status == 200)
        #expect(again.header("Idempotent-Replayed") == "true")
        #expect(again.json?["versions"] as? NSArray == signed.json?["versions"] as? NSArray)
        #expect(try await change("sign", "Other text.", base: 1, key: key).status == 422)
        // Without a key the same request is a stale one, as before.
        #expect(try await change("sign", "Signed text.", base: 1, key: nil).status == 409)

        let amendKey = UUID().uuidString
        let amended = try await change("amend", "Amended text.", base: 2, key: amendKey)
        #expect(amended.status == 200 && versions(amended) == 3)
        // The same amendment under a new key (the first key's row lost, or the first request taken by
        // another host) is recognised in the versions: the same clinician, text, status and base.
        let recognised = try await change("amend", "Amended text.", base: 2, key: UUID().uuidString)
        #expect(recognised.status == 200 && versions(recognised) == 3 && recognised.header("Idempotent-Replayed") == "true")
        // The sign's replay still shows the report as that sign left it.
        let late = try await change("sign", "Signed text.", base: 1, key: key)
        #expect(late.status == 200 && versions(late) == 2)
        let report = try #require(try await stack.request("GET", "/api/analyses/\(id)/report").json)
        #expect((report["versions"] as? [[String: Any]])?.count == 3)
        let audit = try await audited("report.amend", record: id)
        #expect(audit["success"] == 1 && audit["replayed"] == 1, "\(audit)")
    }
}
