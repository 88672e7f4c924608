import Foundation
import MediscopeAuth
import MediscopeEncoding
import MediscopeImaging
import MediscopeInference
import MediscopeServer
import MediscopeStore

/// Routes of DESIGN section 4.
package enum API {
    /// Every route, who may call it and what the audit log calls it. The access test walks this table.
    static let specs: [RouteSpec] = analysisRoutes + ReportAPI.routes + AccountAPI.routes.map(auditingAdminReads) + DicomAPI.routes + [
        RouteSpec(method: "GET", pattern: "/api/models", access: .signedIn, audit: nil) { s, _, _, _ throws(Problem) in try models(s) },
        RouteSpec(method: "GET", pattern: "/api/health", open: .everyone, audit: nil) { _, _, _, _ throws(Problem) in
            .json(["status": "ok"])
        },
        RouteSpec(method: "GET", pattern: "/api/ready", open: .everyone, audit: nil) { s, _, _, _ throws(Problem) in ready(s) },
        RouteSpec(method: "GET", pattern: "/api/status", open: .operatorOrAdmin, audit: nil) { s, _, _, _ throws(Problem) in
            .json(Status.report(s.server, host: s.config.hostName, store: s.config.store, outbox: s.outboxStats(), jobs: try? s.jobs().stats()),
                  headers: [("Cache-Control", "no-store")])
        },
        RouteSpec(method: "GET", pattern: "/api/metrics", open: .operatorOrAdmin, audit: nil) { s, _, _, _ throws(Problem) in
            .text(Status.prometheus(s.server, host: s.config.hostName, histograms: s.histograms, outbox: s.outboxStats(), jobs: try? s.jobs().stats()), contentType: "text/plain; version=0.0.4; charset=utf-8")
        },
    ]

    static let analysisRoutes: [RouteSpec] = [
        RouteSpec(method: "POST", pattern: APILinks.analyses, access: .clinical, audit: "analysis.create") { s, req, _, c throws(Problem) in
            try createAnalysis(s, req, c.user)
        },
        // May this caller upload? nginx asks (auth_request, without the body) before it reads an upload's
        // body, so a bad or missing credential is refused before the file is sent. Guard's checks only: 204.
        RouteSpec(method: "POST", pattern: "/api/uploads/check", access: .clinical, audit: nil) { _, _, _, _ throws(Problem) in
            .noContent
        },
        RouteSpec(method: "GET", pattern: APILinks.analyses, access: .clinical, audit: "analysis.list") { s, req, _, c throws(Problem) in
            try listAnalyses(s, req, c.user)
        },
        RouteSpec(method: "GET", pattern: APILinks.analysisPattern, access: .clinical, audit: "analysis.view") { s, _, p, c throws(Problem) in
            let rec = try record(s, c.user, p["id"])
            var body = AnalysisBody(rec, links: s.links)
            body.report = try ReportAPI.body(s, rec)
            return .json(body, headers: [("Cache-Control", "no-store")])
        },
        RouteSpec(method: "DELETE", pattern: APILinks.analysisPattern, access: .clinical, audit: "analysis.delete") { s, _, p, c throws(Problem) in
            try deleteAnalysis(s, try record(s, c.user, p["id"]))
        },
        RouteSpec(method: "GET", pattern: APILinks.scanPattern, access: .clinical, audit: "analysis.image") { s, req, p, c throws(Problem) in
            try image(s, req, try record(s, c.user, p["id"]).scan)
        },
        RouteSpec(method: "GET", pattern: APILinks.heatmapPattern, access: .clinical, audit: "analysis.image") { s, req, p, c throws(Problem) in
            let rec = try record(s, c.user, p["id"])
            guard let result = s.links.result(named: p["file"], in: rec) else {
                throw Problem.notFound("analysis \(rec.id) has no heatmap \(p["file"].prefix(64))")
            }
            return try image(s, req, result.heatmap)
        },
        // Printable HTML; its images are the two routes above, fetched by the browser with the same session.
        RouteSpec(method: "GET", pattern: APILinks.reportPattern, access: .clinical, audit: "analysis.report") { s, _, p, c throws(Problem) in
            let rec = try record(s, c.user, p["id"])
            let versions: [ReportVersion]
            do { versions = try s.reportStore().versions(analysisId: rec.id, organizationId: rec.organizationId) } catch {
                throw s.problem(error)
            }
            let page = try s.reportTemplates().render(rec, institution: try s.institution(for: c.user), links: s.links,
                                                      modelNotes: ModelFidelity.notes(for: rec, s), versions: versions)
            return .html(page, headers: [("Cache-Control", "no-store")])
        },
    ]

    /// Admins' reads of the audit log and the user list, audited like every other access: who read the
    /// trail, and when, is part of it ("METHOD pattern" -> action).
    static let adminReadActions = ["GET /api/audit": "audit.view", "GET /api/audit/export": "audit.export", "GET /api/users": "user.list"]

    /// `spec` audited as `adminReadActions` says, when its table left it unaudited.
    static func auditingAdminReads(_ spec: RouteSpec) -> RouteSpec {
        guard spec.audit == nil, let action = adminReadActions["\(spec.method) \(spec.pattern)"] else { return spec }
        return spec.audited(as: action)
    }

    /// Deletes an analysis of the caller's organisation with its report, unless the report is signed
    /// (409): a signed report is a medical record that is kept, and its analysis with it; a correction is
    /// an amendment. The report is closed first, in one step with the check (`ReportStore.close`), so no
    /// signature, edit or draft can land between the check and the deletion; should the record then not
    /// be deleted, the report is opened again.
    static func deleteAnalysis(_ s: Services, _ rec: AnalysisRecord) throws(Problem) -> HTTPResponse {
        let reports = try s.reportStore()
        let closing: ReportClosing
        do { closing = try reports.close(analysisId: rec.id, organizationId: rec.organizationId) } catch { throw s.problem(error) }
        guard closing == .closed else {
            throw Problem(status: 409, detail: "the report of this analysis is signed: a signed report is kept, and its analysis "
                          + "with it; to correct it, amend the report")
        }
        let deleted: Bool
        do { deleted = try s.store().delete(id: rec.id, organizationId: rec.organizationId) } catch {
            try? reports.reopen(analysisId: rec.id, organizationId: rec.organizationId)
            throw s.problem(error)
        }
        guard deleted else { throw Problem.notFound("no analysis \(rec.id)") }   // deleted meanwhile by another request
        // The report goes with its analysis; a failure here leaves versions no record shows (and no
        // version can be added to them).
        do { try reports.deleteAll(analysisId: rec.id, organizationId: rec.organizationId) } catch {
            s.server.log.error("report_delete_failed", ["analysis": .token(.init(rec.id))])
        }
        s.server.log.info("analysis_deleted", ["analysis": .token(.init(rec.id))])
        return .noContent
    }

    /// "METHOD pattern" of every route, for the access-table test.
    package static var routeSignatures: [String] { specs.map { "\($0.method) \($0.pattern)" } }
    package static var routeAccess: [String: Access] {
        Dictionary(uniqueKeysWithValues: specs.map { ("\($0.method) \($0.pattern)", $0.access) })
    }

    static func router(_ s: Services) -> Router {
        var r = Router()
        for spec in specs {
            r.add(spec.method, spec.pattern) { req, p throws(Problem) in Guard.run(s, spec, req, p) }
        }
        return r
    }

    static func validID(_ id: String) -> Bool {
        id.count == 26 && id.unicodeScalars.allSatisfy { ("0"..."9").contains($0) || ("A"..."Z").contains($0) }
    }

    /// A record of the caller's organisation; another organisation's is "not found", never "forbidden".
    static func record(_ s: Services, _ user: User, _ id: String) throws(Problem) -> AnalysisRecord {
        guard validID(id) else { throw Problem.notFound("no analysis \(id.prefix(40))") }
        let found: AnalysisRecord?
        do { found = try s.store().get(id: id, organizationId: user.organizationId) } catch {
            throw s.problem(error)
        }
        guard let found else { throw Problem.notFound("no analysis \(id)") }
        return found
    }

    /// How a browser may keep an image: in its own cache only, and asked again each time (a revoked
    /// session, a deleted record or a signed-out browser must not keep showing a scan). Content-addressed,
    /// so the question is cheap: the ETag is the key, and a match is a 304 without a body.
    static let imageCacheControl = "private, no-cache"

    /// nginx sends the file (X-Accel-Redirect) once we have checked the caller may see it (its internal
    /// location sets the same Cache-Control and answers If-None-Match with 304 itself); a store without
    /// local files (Firestore) hands us the bytes, sent with the same headers and the key as ETag.
    static func image(_ s: Services, _ req: HTTPRequest, _ ref: ImageRef) throws(Problem) -> HTTPResponse {
        let store = try s.store()
        guard let path = store.imagePath(key: ref.key) else {
            let etag = "\"\(ref.key)\""
            let headers = [("Cache-Control", imageCacheControl), ("ETag", etag), ("X-Content-Type-Options", "nosniff")]
            if let tags = req.header("if-none-match"), matches(tags, etag) {
                return HTTPResponse(status: 304, headers: headers)   // the bytes under a key never change
            }
            let bytes: [UInt8]?
            do { bytes = try store.imageBytes(key: ref.key) } catch { throw s.problem(error) }
            guard let bytes else { throw Problem.notFound("the image is missing") }
            return HTTPResponse(status: 200, headers: [("Content-Type", ref.contentType)] + headers, body: bytes)
        }
        let root = URL(fileURLWithPath: s.config.storeDirectory).appendingPathComponent("blobs").path + "/"
        guard path.hasPrefix(root) else { throw Problem(status: 500, detail: "image outside the store") }
        // nginx picks Content-Type from the extension and adds the cache headers of the internal location.
        return HTTPResponse(status: 200, headers: [("X-Accel-Redirect", AppConfig.internalBlobPrefix + path.dropFirst(root.count))])
    }

    /// Whether an If-None-Match header (`*`, or entity tags, weak or strong, comma separated) matches `etag`.
    static func matches(_ header: String, _ etag: String) -> Bool {
        header.split(separator: ",").contains { tag in
            let tag = tag.trimmingCharacters(in: .whitespaces)
            return tag == "*" || tag == etag || tag == "W/" + etag
        }
    }

    static func listAnalyses(_ s: Services, _ req: HTTPRequest, _ user: User) throws(Problem) -> HTTPResponse {
        var query = AnalysisQuery(organizationId: user.organizationId)
        if let limit = req.query["limit"] {
            guard let n = Int(limit), (1...100).contains(n) else { throw Problem.badRequest("`limit` must be 1 to 100") }
            query.limit = n
        }
        // The search term follows the stored id's rules (NFC, no invisible characters), or a search for
        // what a person typed could silently find nothing.
        let terms = req.queryValues("patient_id")
        guard terms.count <= 1 else { throw Problem.badRequest("`patient_id` is given more than once; search for one id") }
        if let term = terms.first { query.patientId = try FieldText.check(term, field: "patient_id", rule: .patientId) }
        if let cursor = req.query["cursor"], !cursor.isEmpty { query.cursor = cursor }
        let page: AnalysisPage
        do { page = try s.store().list(query) } catch { throw s.problem(error) }
        var links: [String: String] = [:]
        if let next = page.nextCursor {
            var params = ["limit=\(query.limit)", "cursor=\(next)"]
            if let p = query.patientId, let encoded = p.addingPercentEncoding(withAllowedCharacters: .alphanumerics) {
                params.append("patient_id=\(encoded)")
            }
            links["next"] = "/api/analyses?" + params.joined(separator: "&")
        }
        return .json(AnalysisListBody(items: page.items.map { AnalysisBody($0, links: s.links) }, nextCursor: page.nextCursor,
                                      links: links),
                     headers: [("Cache-Control", "no-store")])
    }

    /// The handler parses the form and answers; UploadAnalysis does the work.
    static func createAnalysis(_ s: Services, _ req: HTTPRequest, _ user: User) throws(Problem) -> HTTPResponse {
        try admitClient(s, req, user)
        let form = try MultipartForm.parse(contentType: req.header("content-type"), body: req.body)
        guard let imagePart = form.first("image") else {
            throw Problem.badRequest("the form has no `image` field (a JPEG, PNG or DICOM file)")
        }
        try admitFile(s, imagePart.body)
        let patient = try PatientForm.parse(form)
        let frame = try PatientForm.frame(form)
        let upload = UploadAnalysis(pipeline: try s.pipeline(), store: try s.store())
        let stored: AnalysisRecord, analysis: Analysis, storeMs: Double
        do { (stored, analysis, storeMs) = try upload.run(image: imagePart.body, frame: frame, patient: patient, by: user) } catch {
            s.publishLoadedModels()
            throw s.problem(error)
        }
        s.publishLoadedModels()
        s.observeStages(analysis, storeMilliseconds: storeMs)
        s.observeInputCheck(stored.inputCheck)
        s.server.log.info("analysis_created", ["analysis": .token(.init(stored.id)), "forward_ms": .double(analysis.timings.forward),
                                               "model_load_ms": .double(analysis.timings.modelLoad)])
        // The draft is written by a report job process, never here: the 201 does not wait for an LLM.
        ReportAPI.enqueueDraft(s, stored)
        var body = AnalysisBody(stored, links: s.links)
        body.report = .pending
        return .json(body, status: 201, headers: [("Location", s.links.analysis(stored.id))])
    }

    /// First thing a route that decodes files does: a crash from here on is charged to the signed-in
    /// user (CrashLedger), and a user, or an address, whose requests crashed workers too often is
    /// refused (429) before its form is even read.
    static func admitClient(_ s: Services, _ req: HTTPRequest, _ user: User) throws(Problem) {
        try s.server.admitClient(slot: s.slot, client: CrashLedger.clientKey(user: user.id),
                                 alsoChecked: [CrashLedger.clientKey(address: req.remoteAddress)])
    }

    /// Before `file` reaches a decoder: a crash from here on is charged to the file too, and a file that
    /// crashed a worker before is refused (422) without being decoded.
    static func admitFile(_ s: Services, _ file: [UInt8]) throws(Problem) {
        try s.server.admitContent(slot: s.slot, content: CrashLedger.contentKey(sha256Hex: SHA256Hex.digest(file)))
    }

    static func models(_ s: Services) throws(Problem) -> HTTPResponse {
        struct ModelBody: Encodable {
            var id: String, title: String, task: String, labels: [String], results: [String]
            var filePresent: Bool, loaded: Bool
            /// int8 models only: the quantised engine and the fidelity report (or why it cannot be read).
            var engine: String?, fidelity: ModelFidelity?
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
                      loaded: mask & (1 << Int64(i)) != 0, engine: m.engine, fidelity: ModelFidelity(m, in: manifest))
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
        // Workers crashing without a request (a broken deployment): the master backs off, this host is not ready.
        let loop = s.server.crashes.crashLoop
        checks["workers"] = loop.active ? "crash loop: restarting with back-off (\(Int(loop.respawnDelaySeconds.rounded(.up))) s)" : "ok"
        ok = ok && !loop.active
        // Uploads go to the outbox while Firestore is down: still ready, but degraded.
        var degraded = false
        if let stats = s.outboxStats() {
            checks["firestore"] = Status.OutboxStatus.reachability(stats)
            // An entry waiting for minutes means delivery is stuck (Firestore, or the outbox process itself).
            let oldest = stats.oldestEnqueuedAt.map { Int(Date().timeIntervalSince($0)) } ?? 0
            checks["outbox"] = "\(stats.depth) waiting" + (stats.parked > 0 ? ", \(stats.parked) parked" : "")
                + (oldest >= 120 ? ", oldest \(oldest) s" : "")
            degraded = stats.remoteReachable == false || stats.parked > 0 || oldest >= 120
        }
        struct Body: Encodable { var status: String; var checks: [String: String] }
        let body = Body(status: !ok ? "not ready" : degraded ? "degraded" : "ready", checks: checks)
        return ok ? .json(body) : HTTPResponse.json(body, status: 503, headers: [("Retry-After", "5")])
    }
}
