import Foundation
import MediscopeImaging
import MediscopeInference
import MediscopeServer
import MediscopeStore

/// The state one worker process serves requests from. Workers are single-threaded.
final class Services: @unchecked Sendable {
    let config: AppConfig
    let server: ServerContext
    let pool: PoolRuntime
    let slot: Int
    private var openedStore: AnalysisStore?
    private var openedPipeline: AnalysisPipeline?
    private var manifestError: ModelError?

    init(config: AppConfig, server: ServerContext, pool: PoolRuntime, slot: Int) {
        self.config = config
        self.server = server
        self.pool = pool
        self.slot = slot
    }

    /// Organisation of the caller. Accounts (a later issue) replace this with the signed-in user's.
    func organization(for request: HTTPRequest) -> String { "default" }

    func store() throws(Problem) -> AnalysisStore {
        if let openedStore { return openedStore }
        do {
            let store = try SQLiteAnalysisStore(directory: URL(fileURLWithPath: config.storeDirectory))
            openedStore = store
            return store
        } catch {
            server.log.error("store_unavailable", ["kind": .token(.init(error.kind.rawValue))])
            throw Problem(status: 503, detail: "the result store is unavailable", retryAfter: 5)
        }
    }

    func manifest() throws(ModelError) -> ModelManifest {
        try ModelManifest.load(from: URL(fileURLWithPath: config.manifestPath))
    }

    /// The analysis pipeline; its models load on the first analysis, never before.
    func pipeline() throws(Problem) -> AnalysisPipeline {
        if let openedPipeline { return openedPipeline }
        do {
            var options = PipelineOptions()
            options.limits = ImageLimits(maxPixels: config.maxImagePixels)
            options.overlayFormat = .webp
            TorchThreads.set(config.torchThreads)
            let pipeline = AnalysisPipeline(manifest: try manifest(), options: options)
            openedPipeline = pipeline
            return pipeline
        } catch {
            server.log.error("manifest_invalid", ["kind": .token(.init(error.kind.rawValue))])
            throw Problem(status: 503, detail: "the models are not available: \(error.message)", retryAfter: 30)
        }
    }

    func publishLoadedModels() {
        guard let openedPipeline else { return }
        var mask: Int64 = 0
        for (i, model) in openedPipeline.manifest.models.enumerated() where openedPipeline.loadedModelIDs.contains(model.id) {
            mask |= 1 << Int64(i)
        }
        server.scoreboard.setLoadedModels(slot: slot, mask: mask)
    }
}

/// Routes of DESIGN section 4.
enum API {
    static func router(_ s: Services) -> Router {
        var r = Router()
        r.add("POST", "/api/analyses") { req, _ throws(Problem) in try createAnalysis(s, req) }
        r.add("GET", "/api/analyses") { req, _ throws(Problem) in try listAnalyses(s, req) }
        r.add("GET", "/api/analyses/{id}") { req, p throws(Problem) in
            .json(AnalysisBody(try record(s, req, p["id"])))
        }
        r.add("DELETE", "/api/analyses/{id}") { req, p throws(Problem) in
            guard validID(p["id"]) else { throw Problem.notFound("no analysis \(p["id"].prefix(40))") }
            let deleted: Bool
            do { deleted = try s.store().delete(id: p["id"], organizationId: s.organization(for: req)) } catch {
                throw storeProblem(s, error)
            }
            guard deleted else { throw Problem.notFound("no analysis \(p["id"])") }
            s.server.log.info("analysis_deleted", ["analysis": .token(.init(p["id"]))])
            return .noContent
        }
        r.add("GET", "/api/analyses/{id}/scan.jpg") { req, p throws(Problem) in
            let rec = try record(s, req, p["id"])
            return try image(s, rec.scan)
        }
        r.add("GET", "/api/analyses/{id}/heatmaps/{result}.webp") { req, p throws(Problem) in
            let rec = try record(s, req, p["id"])
            guard let result = rec.results.first(where: { $0.id == p["result"] }) else {
                throw Problem.notFound("analysis \(rec.id) has no result \(p["result"].prefix(64))")
            }
            return try image(s, result.heatmap)
        }
        r.add("GET", "/analyses/{id}/report") { _, _ throws(Problem) in
            throw Problem(status: 501, detail: "the printable report is not available yet")
        }
        r.add("GET", "/api/models") { _, _ throws(Problem) in try models(s) }
        r.add("GET", "/api/health") { _, _ throws(Problem) in .json(["status": "ok"]) }
        r.add("GET", "/api/ready") { _, _ throws(Problem) in ready(s) }
        r.add("GET", "/api/status") { req, _ throws(Problem) in
            try requireOperator(req)
            return .json(Status.report(s.server), headers: [("Cache-Control", "no-store")])
        }
        r.add("GET", "/api/metrics") { req, _ throws(Problem) in
            try requireOperator(req)
            return .text(Status.prometheus(s.server), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        return r
    }

    /// Status and metrics: loopback only until accounts bring an admin role.
    static func requireOperator(_ req: HTTPRequest) throws(Problem) {
        guard req.isLoopback else { throw Problem(status: 403, detail: "status and metrics are served to loopback clients only") }
    }

    static func validID(_ id: String) -> Bool {
        id.count == 26 && id.unicodeScalars.allSatisfy { ("0"..."9").contains($0) || ("A"..."Z").contains($0) }
    }

    static func record(_ s: Services, _ req: HTTPRequest, _ id: String) throws(Problem) -> AnalysisRecord {
        guard validID(id) else { throw Problem.notFound("no analysis \(id.prefix(40))") }
        let found: AnalysisRecord?
        do { found = try s.store().get(id: id, organizationId: s.organization(for: req)) } catch {
            throw storeProblem(s, error)
        }
        guard let found else { throw Problem.notFound("no analysis \(id)") }
        return found
    }

    static func storeProblem(_ s: Services, _ error: Error) -> Problem {
        if let problem = error as? Problem { return problem }
        if let e = error as? StoreError {
            if e.kind == .invalidCursor { return Problem.badRequest("the cursor is not valid") }
            s.server.log.error("store_error", ["kind": .token(.init(e.kind.rawValue))])
        }
        return Problem(status: 503, detail: "the result store is unavailable", retryAfter: 5)
    }

    /// nginx sends the file (X-Accel-Redirect) once we have checked the caller may see it.
    static func image(_ s: Services, _ ref: ImageRef) throws(Problem) -> HTTPResponse {
        let store = try s.store()
        guard let path = store.imagePath(key: ref.key) else { throw Problem.notFound("the image is missing") }
        let root = URL(fileURLWithPath: s.config.storeDirectory).appendingPathComponent("blobs").path + "/"
        guard path.hasPrefix(root) else { throw Problem(status: 500, detail: "image outside the store") }
        // nginx picks Content-Type from the extension and adds the cache headers of the internal location.
        return HTTPResponse(status: 200, headers: [("X-Accel-Redirect", AppConfig.internalBlobPrefix + path.dropFirst(root.count))])
    }

    static func listAnalyses(_ s: Services, _ req: HTTPRequest) throws(Problem) -> HTTPResponse {
        var query = AnalysisQuery(organizationId: s.organization(for: req))
        if let limit = req.query["limit"] {
            guard let n = Int(limit), (1...100).contains(n) else { throw Problem.badRequest("`limit` must be 1 to 100") }
            query.limit = n
        }
        if let patient = req.query["patient_id"], !patient.isEmpty { query.patientId = patient }
        if let cursor = req.query["cursor"], !cursor.isEmpty { query.cursor = cursor }
        let page: AnalysisPage
        do { page = try s.store().list(query) } catch { throw storeProblem(s, error) }
        var links: [String: String] = [:]
        if let next = page.nextCursor {
            var params = ["limit=\(query.limit)", "cursor=\(next)"]
            if let p = query.patientId, let encoded = p.addingPercentEncoding(withAllowedCharacters: .alphanumerics) {
                params.append("patient_id=\(encoded)")
            }
            links["next"] = "/api/analyses?" + params.joined(separator: "&")
        }
        return .json(AnalysisListBody(items: page.items.map(AnalysisBody.init), nextCursor: page.nextCursor, links: links),
                     headers: [("Cache-Control", "no-store")])
    }

    static func createAnalysis(_ s: Services, _ req: HTTPRequest) throws(Problem) -> HTTPResponse {
        let form = try MultipartForm.parse(contentType: req.header("content-type"), body: req.body)
        guard let imagePart = form.first("image") else {
            throw Problem.badRequest("the form has no `image` field (a JPEG or PNG file)")
        }
        let patient = try PatientForm.parse(form)
        let pipeline = try s.pipeline()

        let analysis: Analysis
        do {
            analysis = try pipeline.analyze(imageBytes: imagePart.body)
        } catch {
            switch error {
            case .badImage(let e):
                switch e.kind {
                case .unsupportedFormat: throw Problem(status: 415, detail: "the image is not a JPEG or PNG: \(e.message)")
                case .empty: throw Problem(status: 422, detail: "the image file is empty")
                case .tooLarge: throw Problem(status: 422, detail: e.message)
                case .corrupt: throw Problem(status: 422, detail: "the image cannot be decoded: \(e.message)")
                case .encodeFailed: throw Problem(status: 500, detail: "the overlay could not be encoded")
                }
            case .model(let e):
                s.server.log.error("model_error", ["kind": .token(.init(e.kind.rawValue))])
                throw Problem(status: 503, detail: "the models are not available: \(e.message)", retryAfter: 30)
            case .unreadable(let message):
                throw Problem(status: 422, detail: message)
            }
        }
        s.publishLoadedModels()
        guard let scan = analysis.scan else { throw Problem(status: 500, detail: "no display image was rendered") }

        let scanBlob = ImageBlob.make(bytes: scan.bytes, contentType: "image/jpeg", width: scan.width, height: scan.height)
        var blobs = [scanBlob]
        var results: [StoredResult] = []
        for outcome in analysis.results {
            guard let overlay = analysis.overlays[outcome.id] else { continue }
            let blob = ImageBlob.make(bytes: overlay.bytes, contentType: "image/webp", width: overlay.width, height: overlay.height)
            blobs.append(blob)
            results.append(StoredResult(
                id: outcome.id, model: outcome.model, title: outcome.title, task: outcome.task.rawValue,
                probabilities: outcome.probabilities.map { StoredProbability(label: $0.label, probability: $0.probability) },
                prediction: outcome.prediction, confidence: outcome.confidence, explainedLabel: outcome.explainedLabel,
                heatmap: blob.ref))
        }
        let t = analysis.timings
        let new = NewAnalysis(
            organizationId: s.organization(for: req), createdBy: nil, patient: patient,
            imageWidth: analysis.imageWidth, imageHeight: analysis.imageHeight, scan: scanBlob.ref, results: results,
            timingsMs: ["decode": t.decode, "preprocess": t.preprocess, "forward": t.forward, "gradCAM": t.gradCAM,
                        "encode": t.encode, "modelLoad": t.modelLoad],
            images: blobs)
        let stored: AnalysisRecord
        do { stored = try s.store().create(new) } catch { throw storeProblem(s, error) }
        s.server.log.info("analysis_created", ["analysis": .token(.init(stored.id)), "forward_ms": .double(t.forward),
                                               "model_load_ms": .double(t.modelLoad)])
        return .json(AnalysisBody(stored), status: 201, headers: [("Location", "/api/analyses/\(stored.id)")])
    }

    static func models(_ s: Services) throws(Problem) -> HTTPResponse {
        struct ModelBody: Encodable {
            var id: String, title: String, task: String, labels: [String], results: [String]
            var filePresent: Bool, loaded: Bool
        }
        let manifest: ModelManifest
        do { manifest = try s.manifest() } catch {
            throw Problem(status: 503, detail: "the model manifest is not valid: \(error.message)", retryAfter: 30)
        }
        let inference = s.server.pools.first { $0.config.name == "inference" }
        let mask = inference.map { s.server.scoreboard.loadedModels(pool: $0.index) } ?? 0
        let body = manifest.models.enumerated().map { i, m in
            ModelBody(id: m.id, title: m.title ?? m.id, task: m.task.rawValue, labels: m.labels,
                      results: [m.id] + (m.derived ?? []).map(\.id),
                      filePresent: FileManager.default.fileExists(atPath: manifest.fileURL(of: m).path),
                      loaded: mask & (1 << Int64(i)) != 0)
        }
        return .json(["models": body])
    }

    static func ready(_ s: Services) -> HTTPResponse {
        var checks: [String: String] = [:]
        var ok = true
        do { try s.store().checkReady(); checks["store"] = "ok" } catch {
            checks["store"] = "unavailable"; ok = false
        }
        do {
            let manifest = try s.manifest()
            let missing = manifest.models.filter { !FileManager.default.fileExists(atPath: manifest.fileURL(of: $0).path) }
            checks["models"] = missing.isEmpty ? "ok" : "missing: " + missing.map(\.id).joined(separator: ", ")
            ok = ok && missing.isEmpty
        } catch {
            checks["models"] = "manifest invalid"; ok = false
        }
        struct Body: Encodable { var status: String; var checks: [String: String] }
        let body = Body(status: ok ? "ready" : "not ready", checks: checks)
        return ok ? .json(body) : HTTPResponse.json(body, status: 503, headers: [("Retry-After", "5")])
    }
}
