import FirestoreTestKit
import Foundation
import MediscopeFirestore
import Testing
import TestSupport

/// `MEDISCOPE_STORE=firestore` through real nginx and the real pool, against the real Firestore
/// emulator behind a fault proxy (FIRESTORE_EMULATOR_HOST points at the proxy).
@Suite(.serialized, .firestoreEmulator) final class FirestoreStackTests {
    let emulator: FirestoreEmulator
    let proxy: FirestoreFaultProxy
    let project = "stack-\(UUID().uuidString.prefix(8).lowercased())"
    let stack: Stack
    /// Reads Firestore directly, as another host would.
    let firestore: FirestoreClient

    init() async throws {
        emulator = try SharedEmulator.get()
        proxy = try FirestoreFaultProxy(emulator: emulator)
        // One io worker: the outage grace is per worker, so the test knows which worker saw the token.
        stack = try await Stack.start(settings: ["STORE": "firestore", "FIRESTORE_PROJECT_ID": project, "FIRESTORE_CACHE_SECONDS": "1",
                                     "POOLS_IO_WORKERS": "1"],
                          environment: ["FIRESTORE_EMULATOR_HOST": proxy.host])
        firestore = emulator.client(projectId: project)
    }
    deinit { stack.stop() }

    /// The status page's outbox section, asked as a loopback operator (no credentials to look up).
    func outbox() throws -> [String: Any] {
        try #require(try stack.syncRequest("GET", "/api/status", auth: Stack.Auth.none).json?["outbox"] as? [String: Any])
    }

    func metrics() throws -> String {
        String(decoding: try stack.syncRequest("GET", "/api/metrics", auth: Stack.Auth.none).body, as: UTF8.self)
    }

    /// Waits until the outbox has no waiting entry; returns the outbox status then.
    @discardableResult
    func waitForDrain(timeout: Double = 60) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let status = try outbox()
            if status["depth"] as? Int == 0 { return status }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw StackError("the outbox did not drain in \(timeout) s: \(try outbox())")
    }

    func documents(_ collection: String) throws -> [FirestoreDocument] {
        try firestore.runQuery(FirestoreQuery(collectionId: collection))
    }

    @Test func theWholeFlowLandsInFirestore() async throws {
        let session = try stack.syncSignIn("clinician")
        var ids: [String: [String]] = [:]
        // The second upload's image is the only grey one: deleting its record must delete its images.
        for (i, patient) in ["P-FS-A", "P-FS-B", "P-FS-A", "P-FS-A", "P-FS-B"].enumerated() {
            let image = i == 1 ? try Scans.data("scan_gray.jpg") : i.isMultiple(of: 2) ? try Scans.jpeg : try Scans.png
            let r = try await stack.upload(image: image, fields: ["patient_id": patient])
            #expect(r.status == 201, "\(String(decoding: r.body, as: UTF8.self))")
            ids[patient, default: []].append(try #require(r.json?["id"] as? String))
        }
        try waitForDrain()
        #expect(try documents("analyses").count == 5, "each record once in Firestore")

        // Paging with the patient filter, one per page, newest first.
        var seen: [String] = []
        var cursor: String?
        repeat {
            let r = try await stack.request("GET", "/api/analyses?limit=1&patient_id=P-FS-A" + (cursor.map { "&cursor=\($0)" } ?? ""), auth: session)
            #expect(r.status == 200)
            seen += (r.json?["items"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            cursor = r.json?["nextCursor"] as? String
        } while cursor != nil
        #expect(seen == ids["P-FS-A"]!.reversed())

        let id = ids["P-FS-B"]![0]
        let record = try await stack.request("GET", "/api/analyses/\(id)", auth: session)
        #expect(record.status == 200)
        let scan = try await stack.request("GET", "/api/analyses/\(id)/scan.jpg", auth: session)
        #expect(scan.status == 200 && scan.header("Content-Type")?.hasPrefix("image/") == true && scan.body.count > 100)
        #expect(scan.header("Cache-Control")?.contains("private") == true)
        let results = try #require(record.json?["results"] as? [[String: Any]])
        let heatmapURL = try #require((results.first?["heatmap"] as? [String: Any])?["url"] as? String)
        let heatmap = try await stack.request("GET", heatmapURL, auth: session)
        #expect(heatmap.status == 200 && heatmap.body.count > 100)
        let report = try await stack.request("GET", "/analyses/\(id)/report", auth: session)
        #expect(report.status == 200 && String(decoding: report.body, as: UTF8.self).contains("P-FS-B"))

        // Delete: the record and the images only it used leave Firestore; shared ones stay.
        let imagesBefore = Set(try documents("images").map(\.id))
        #expect(try await stack.request("DELETE", "/api/analyses/\(id)", auth: session).status == 204)
        #expect(try await stack.request("GET", "/api/analyses/\(id)", auth: session).status == 404, "gone at once on this host")
        try waitForDrain()
        #expect(try firestore.get(firestore.name("analyses", id)) == nil)
        let imagesAfter = Set(try documents("images").map(\.id))
        #expect(imagesAfter.isSubset(of: imagesBefore) && imagesAfter.count < imagesBefore.count)
        for doc in try documents("analyses") {
            guard case .array(let keys)? = doc.fields["imageKeys"] else { Issue.record("no imageKeys"); continue }
            // A heatmap drawn when first looked at is listed before it is drawn (and kept) by anyone.
            for case .string(let key) in keys where imagesBefore.contains(key) {
                #expect(imagesAfter.contains(key), "an image a record uses was deleted")
            }
        }

        // The report's draft lives in Firestore too (template: no LLM is configured here).
        let drafted = ids["P-FS-A"]![0]
        let deadline = Date().addingTimeInterval(30)
        while try firestore.get(firestore.name("reportVersions", drafted + "-0001")) == nil, Date() < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        let version = try #require(try firestore.get(firestore.name("reportVersions", drafted + "-0001")))
        #expect(version.fields["origin"] == .string("template") && version.fields["status"] == .string("draft"))
        let shown = try await stack.request("GET", "/api/analyses/\(drafted)", auth: session)
        #expect((shown.json?["report"] as? [String: Any])?["status"] as? String == "draft")

        // The audit trail is in Firestore's `audit` collection, each entry once.
        let audit = try documents("audit")
        let actions = audit.compactMap { doc -> String? in if case .string(let a)? = doc.fields["action"] { a } else { nil } }
        #expect(actions.filter { $0 == "analysis.create" }.count >= 5)
        #expect(actions.contains("analysis.delete") && actions.contains("analysis.report") && actions.contains("session.create"))
        #expect(Set(audit.map(\.id)).count == audit.count)
        let trail = try await stack.request("GET", "/api/audit?limit=1000", auth: session)
        #expect(trail.status == 403, "a clinician cannot read the audit log")
    }

    /// Firestore down: uploads still answer 201 and are readable here, /api/ready says degraded; when it
    /// heals, everything arrives once. Then the whole pool is SIGKILLed with a full outbox and restarted.
    @Test func outageThenKillThenRestartLosesNothing() async throws {
        let token = try stack.token(for: "clinician")
        let warm = try await stack.upload(image: try Scans.jpeg, auth: .bearer(token))
        #expect(warm.status == 201, "warm: both pools have seen the token")
        #expect(try await stack.request("GET", "/api/analyses/\(warm.json?["id"] as? String ?? "")", auth: .bearer(token)).status == 200)
        try waitForDrain()
        let before = try documents("analyses").count

        proxy.mode = .refuse
        var ids: [String] = []
        for _ in 0..<3 {
            let r = try await stack.upload(image: try Scans.jpeg, fields: ["patient_id": "P-OUTAGE"], auth: .bearer(token))
            #expect(r.status == 201, "\(r.status) \(String(decoding: r.body, as: UTF8.self)) \((try? String(contentsOf: stack.logFile, encoding: .utf8))?.suffix(1500) ?? "")")
            if let id = r.json?["id"] as? String { ids.append(id) }
        }
        #expect(ids.count == 3)
        for id in ids { #expect(try await stack.request("GET", "/api/analyses/\(id)", auth: .bearer(token)).status == 200) }
        let deadline = Date().addingTimeInterval(60)
        var ready = try stack.syncRequest("GET", "/api/ready", auth: Stack.Auth.none)
        while ready.json?["status"] as? String != "degraded", Date() < deadline {
            try await Task.sleep(for: .milliseconds(200))
            ready = try stack.syncRequest("GET", "/api/ready", auth: Stack.Auth.none)
        }
        #expect(ready.status == 200 && ready.json?["status"] as? String == "degraded")
        #expect((ready.json?["checks"] as? [String: String])?["firestore"] == "unreachable")
        let waiting = try outbox()
        #expect((waiting["depth"] as? Int ?? 0) >= 3 && (waiting["retries"] as? Int ?? 0) >= 1)
        let during = try metrics()
        #expect(during.contains("mediscope_firestore_reachable{host=\"it-host\"} 0"))
        #expect(during.contains("mediscope_outbox_depth{host=\"it-host\"} ") && during.contains("mediscope_outbox_retries_total{host=\"it-host\"} "))

        // Power cut with the outbox full, then Firestore back, then the pool again.
        stack.killWholePool()
        proxy.mode = .pass
        try await stack.startServer()
        try waitForDrain()
        let analyses = try documents("analyses")
        #expect(analyses.count == before + 3, "every record once")
        #expect(Set(ids).isSubset(of: Set(analyses.map(\.id))))
        #expect(try stack.syncRequest("GET", "/api/ready", auth: Stack.Auth.none).json?["status"] as? String == "ready")
    }

    /// A write Firestore refuses for good (400) is parked: counted, shown, kept, and the queue moves on.
    @Test func aRefusedWriteIsParkedAndShown() async throws {
        // Only writes are refused: reading the caller's token still works.
        proxy.commitsOnly = true
        defer { proxy.commitsOnly = false }
        proxy.mode = .status(400)
        let r = try await stack.upload(image: try Scans.jpeg, fields: ["patient_id": "P-PARK"])
        #expect(r.status == 201)
        // Everything written meanwhile (the record, its audit entries) is refused and parked.
        let parkedAll = try await eventually(timeout: 60, every: .milliseconds(100)) {
            let now = try outbox()
            return now["depth"] as? Int == 0 && now["parked"] as? Int ?? 0 >= 2
        }
        try #require(parkedAll, "the refused writes were parked while Firestore refused them")
        proxy.mode = .pass
        let status = try waitForDrain()
        #expect(status["parked"] as? Int ?? 0 >= 2, "the record and its audit entry: \(status)")
        #expect((status["parkedTotal"] as? Int ?? 0) >= 1)
        let id = try #require(r.json?["id"] as? String)
        #expect(try await stack.request("GET", "/api/analyses/\(id)").status == 200, "kept and readable on this host")
        let ready = try stack.syncRequest("GET", "/api/ready", auth: Stack.Auth.none)
        #expect(ready.status == 200 && ready.json?["status"] as? String == "degraded")
        let text = try metrics()
        #expect(text.contains("mediscope_outbox_parked{host=\"it-host\"} \(status["parked"] as? Int ?? -1)\n"), "the metric agrees with the status page")
        let log = (try? String(contentsOf: stack.logFile, encoding: .utf8)) ?? ""
        #expect(log.contains("outbox_parked") && !log.contains("P-PARK"))

        // The operator's view, then the fix: parked entries back in the queue, delivered in order.
        let shown = try command(["outbox", "status"])
        #expect(shown.contains(id) && shown.contains("INVALID_ARGUMENT") && !shown.contains("P-PARK"), "\(shown)")
        #expect(try command(["outbox", "requeue"]).contains("requeued"))
        let after = try waitForDrain()
        #expect(after["parked"] as? Int == 0)
        #expect(try firestore.get(firestore.name("analyses", id)) != nil, "delivered after the requeue")
    }

    /// The master restarts a killed delivery process like a worker, and delivery goes on.
    @Test func aKilledDeliveryProcessIsRestarted() async throws {
        func deliveryPIDs() -> [Int32] {
            let log = (try? String(contentsOf: stack.logFile, encoding: .utf8)) ?? ""
            return log.split(separator: "\n").filter { $0.contains("\"background_ready\"") && $0.contains("\"outbox\"") }.compactMap { line in
                guard let range = line.range(of: "\"pid\":") else { return nil }
                return Int32(line[range.upperBound...].prefix { $0.isNumber })
            }
        }
        // The stack is healthy before its delivery process has necessarily said it is ready.
        #expect(await eventually(every: .milliseconds(100)) { !deliveryPIDs().isEmpty })
        let first = try #require(deliveryPIDs().last)
        #expect(kill(first, SIGKILL) == 0)
        #expect(await eventually(timeout: 45, every: .milliseconds(100)) { deliveryPIDs().last != first })
        let second = try #require(deliveryPIDs().last)
        #expect(second != first && kill(second, 0) == 0, "a new delivery process runs")
        let r = try await stack.upload(image: try Scans.jpeg, fields: ["patient_id": "P-RESTART"])
        let id = try #require(r.json?["id"] as? String)
        try waitForDrain()
        #expect(try firestore.get(firestore.name("analyses", id)) != nil)
        #expect(((try? String(contentsOf: stack.logFile, encoding: .utf8)) ?? "").contains("background_died"))
    }

    /// Runs the real `mediscope` with this stack's settings; its standard output.
    func command(_ arguments: [String]) throws -> String {
        let run = try runProcess(Repository.executable, arguments, environment: stack.environment)
        #expect(run.status == 0, "mediscope \(arguments.joined(separator: " ")): \(run.stderr)")
        return run.stdout
    }
}
