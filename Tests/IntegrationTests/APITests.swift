import Foundation
import Testing

/// The analysis API through real nginx and the real pool, with the real default model.
@Suite(.serialized) final class APITests {
    let stack: Stack
    init() async throws { stack = try await Stack.start() }
    deinit { stack.stop() }

    func problem(_ r: Stack.Response, _ status: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == status, "body: \(String(decoding: r.body, as: UTF8.self))", sourceLocation: sourceLocation)
        #expect(r.header("Content-Type")?.hasPrefix("application/problem+json") == true, sourceLocation: sourceLocation)
        #expect(r.json?["status"] as? Int == status, sourceLocation: sourceLocation)
        #expect((r.json?["detail"] as? String)?.isEmpty == false, sourceLocation: sourceLocation)
    }

    @Test func uploadJPEGAndPNGThenReadListAndDelete() async throws {
        var ids: [String] = []
        for (data, name) in [(try Scans.jpeg, "scan.jpg"), (try Scans.png, "scan.png")] {
            let r = try await stack.upload(image: data, filename: name,
                                           fields: ["patient_id": "P-LIFE-1", "modality": "MRI", "age": "54", "sex": "F"])
            #expect(r.status == 201, "\(String(decoding: r.body, as: UTF8.self))")
            let json = try #require(r.json)
            let id = try #require(json["id"] as? String)
            #expect(r.header("Location") == "/api/analyses/\(id)")
            let results = try #require(json["results"] as? [[String: Any]])
            #expect(results.map { $0["id"] as? String } == ["brain-tumor-vgg16", "tumor-presence"])
            #expect((json["patient"] as? [String: Any])?["sex"] as? String == "female")
            ids.append(id)
        }

        for id in ids {
            let detail = try await stack.request("GET", "/api/analyses/\(id)")
            #expect(detail.status == 200)
            let json = try #require(detail.json)
            let scan = try #require((json["scan"] as? [String: Any])?["url"] as? String)
            let image = try await stack.request("GET", scan)
            #expect(image.status == 200 && image.header("Content-Type") == "image/jpeg")
            #expect(image.body.prefix(2) == Data([0xFF, 0xD8]))
            #expect(image.header("Cache-Control")?.contains("private") == true)
            for result in try #require(json["results"] as? [[String: Any]]) {
                let url = try #require((result["heatmap"] as? [String: Any])?["url"] as? String)
                let overlay = try await stack.request("GET", url)
                #expect(overlay.status == 200 && overlay.header("Content-Type") == "image/webp")
                #expect(overlay.body.count > 100 && overlay.body[8..<12] == Data("WEBP".utf8))
            }
        }

        // Newest first, one per page, following the cursor.
        let first = try await stack.request("GET", "/api/analyses?limit=1&patient_id=P-LIFE-1")
        #expect(first.status == 200)
        let firstItems = try #require(first.json?["items"] as? [[String: Any]])
        #expect(firstItems.map { $0["id"] as? String } == [ids[1]])
        let cursor = try #require(first.json?["nextCursor"] as? String)
        let second = try await stack.request("GET", "/api/analyses?limit=1&patient_id=P-LIFE-1&cursor=\(cursor)")
        #expect((second.json?["items"] as? [[String: Any]])?.map { $0["id"] as? String } == [ids[0]])
        let other = try await stack.request("GET", "/api/analyses?patient_id=P-NOBODY")
        #expect((other.json?["items"] as? [Any])?.isEmpty == true)

        let deleted = try await stack.request("DELETE", "/api/analyses/\(ids[0])")
        #expect(deleted.status == 204)
        problem(try await stack.request("GET", "/api/analyses/\(ids[0])"), 404)
        problem(try await stack.request("GET", "/api/analyses/\(ids[0])/scan.jpg"), 404)
        problem(try await stack.request("DELETE", "/api/analyses/\(ids[0])"), 404)
        #expect(try await stack.request("GET", "/api/analyses/\(ids[1])").status == 200, "the other record is untouched")
    }

    @Test func badRequestsGetProblemsAndThePoolKeepsServing() async throws {
        let jpeg = try Scans.jpeg
        problem(try await stack.upload(image: Data("just some text\n".utf8), filename: "notes.jpg"), 415)
        problem(try await stack.upload(image: jpeg.prefix(jpeg.count / 2), filename: "cut.jpg"), 422)
        problem(try await stack.upload(image: Data(), filename: "empty.jpg"), 422)
        var giant = jpeg
        let sof = try #require((0..<giant.count - 1).first { giant[$0] == 0xFF && (giant[$0 + 1] == 0xC0 || giant[$0 + 1] == 0xC2) })
        for offset in [sof + 5, sof + 7] { giant[offset] = 0x4E; giant[offset + 1] = 0x20 }  // 20000 x 20000
        problem(try await stack.upload(image: giant, filename: "giant.jpg"), 422)
        problem(try await stack.request("POST", "/api/analyses", body: Data(), contentType: "multipart/form-data; boundary=x"), 400)
        problem(try await stack.request("POST", "/api/analyses", body: jpeg, contentType: "image/jpeg"), 415)
        problem(try await stack.request("POST", "/api/analyses", body: Data("{}".utf8), contentType: "application/json"), 415)
        problem(try await stack.upload(image: jpeg, imageField: "picture"), 400)
        problem(try await stack.upload(image: jpeg, fields: [:]), 400)   // no patient_id
        problem(try await stack.upload(image: jpeg, fields: ["patient_id": "P-1", "age": "old"]), 400)
        let (cutBody, type) = Multipart.body(fields: ["patient_id": "P-1"], files: [("image", "a.jpg", jpeg)])
        problem(try await stack.request("POST", "/api/analyses", body: cutBody.prefix(cutBody.count - 30), contentType: type), 400)
        problem(try await stack.request("POST", "/api/analyses", body: Data(count: 21 << 20), contentType: type), 413)
        problem(try await stack.request("GET", "/api/analyses/not-an-id"), 404)
        problem(try await stack.request("GET", "/api/analyses?limit=1000"), 400)
        problem(try await stack.request("GET", "/api/analyses?cursor=garbage!!"), 400)
        problem(try await stack.request("PUT", "/api/analyses"), 405)

        // Nothing of the above was stored, and the pool still analyses.
        let list = try await stack.request("GET", "/api/analyses?patient_id=P-1")
        #expect((list.json?["items"] as? [Any])?.count == 0)
        #expect(try await stack.upload(image: jpeg).status == 201)
        #expect(try stack.poolNumber("inference", "restarts") == 0, "no worker died on bad input")
    }

    @Test func healthReadyModelsStatusAndMetrics() async throws {
        #expect(try await stack.request("GET", "/api/health").json?["status"] as? String == "ok")
        let ready = try await stack.request("GET", "/api/ready")
        #expect(ready.status == 200 && ready.json?["status"] as? String == "ready")
        let models = try #require(try await stack.request("GET", "/api/models").json?["models"] as? [[String: Any]])
        #expect(models.first?["id"] as? String == "brain-tumor-vgg16")
        #expect(models.first?["filePresent"] as? Bool == true)
        let metrics = try await stack.request("GET", "/api/metrics")
        let text = String(decoding: metrics.body, as: UTF8.self)
        #expect(metrics.status == 200 && text.contains("mediscope_accepted_requests_total{host=\"it-host\",pool=\"io\"}"))
        let status = try stack.status()
        #expect(status["host"] as? String == Stack.hostName, "which host answered")
        let pools = try #require(status["pools"] as? [String: Any])
        #expect(Set(pools.keys) == ["inference", "io"])
        let inference = try #require(pools["inference"] as? [String: Any])
        #expect(inference["listenQueueLimit"] as? Int == 4, "listen queue measured on the unix socket")
    }
}
