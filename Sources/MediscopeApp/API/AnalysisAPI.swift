import Foundation
import MediscopeAuth
import MediscopeEncoding
import MediscopeIdempotency
import MediscopeImaging
import MediscopeInference
import MediscopeServer
import MediscopeStore

/// The analyses' routes: upload, list, read, delete, their images and the printable report.
enum AnalysisAPI {
    static let routes: [RouteSpec] = [
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
        // A received instance's analysis: the study no longer lists it (nor its patient), and the
        // instance sent again is analysed anew (this host's index: the instance came to this host).
        if rec.source?.format == "dicom", FileManager.default.fileExists(atPath: DicomInbox.spool(s.config).path) {
            do { try s.studies().forget(analysisId: rec.id, organizationId: rec.organizationId) } catch {
                s.server.log.error("study_index_not_written", ["analysis": .token(.init(rec.id))])
            }
        }
        s.server.log.info("analysis_deleted", ["analysis": .token(.init(rec.id))])
        return .noContent
    }

    /// A record of the caller's organisation; another organisation's is "not found", never "forbidden".
    static func record(_ s: Services, _ user: User, _ id: String) throws(Problem) -> AnalysisRecord {
        guard API.validID(id) else { throw Problem.notFound("no analysis \(id.prefix(40))") }
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
    /// local files (Firestore) hands us the bytes, sent with the same headers and the key as ETag. A
    /// heatmap drawn when first looked at is drawn here the first time (`AnalysisStore.bytes(of:)`), then
    /// served like any image; its key names what it is drawn from, so the ETag holds for it too.
    static func image(_ s: Services, _ req: HTTPRequest, _ ref: ImageRef) throws(Problem) -> HTTPResponse {
        let store = try s.store()
        if let path = store.imagePath(key: ref.key) { return try redirect(s, to: path) }
        let etag = "\"\(ref.key)\""
        let headers = [("Cache-Control", imageCacheControl), ("ETag", etag), ("X-Content-Type-Options", "nosniff")]
        if let tags = req.header("if-none-match"), matches(tags, etag) {
            return HTTPResponse(status: 304, headers: headers)   // the bytes under a key never change
        }
        let bytes: [UInt8]?
        do { bytes = try store.bytes(of: ref) } catch { throw s.problem(error) }
        guard let bytes else { throw Problem.notFound("the image is missing") }
        // Drawn just now and kept on local disk: nginx sends it, with the headers of every image.
        if ref.drawing != nil, let path = store.imagePath(key: ref.key) { return try redirect(s, to: path) }
        return HTTPResponse(status: 200, headers: [("Content-Type", ref.contentType)] + headers, body: bytes)
    }

    /// X-Accel-Redirect to an image file of the store; nginx picks Content-Type from the extension and
    /// adds the cache headers of the internal location.
    private static func redirect(_ s: Services, to path: String) throws(Problem) -> HTTPResponse {
        let root = URL(fileURLWithPath: s.config.storeDirectory).appendingPathComponent("blobs").path + "/"
        guard path.hasPrefix(root) else { throw Problem(status: 500, detail: "image outside the store") }
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

    /// The handler parses the form and answers; UploadAnalysis does the work. Under an Idempotency-Key
    /// (`IdempotentRequest`) the record's id derives from the key and the request, and a request the key
    /// has made already is answered with its record, found by that id, without running anything again.
    static func createAnalysis(_ s: Services, _ req: HTTPRequest, _ user: User) throws(Problem) -> HTTPResponse {
        try admitClient(s, req, user)
        let form = try MultipartForm.parse(contentType: req.header("content-type"), body: req.body)
        guard let imagePart = form.first("image") else {
            throw Problem.badRequest("the form has no `image` field (a JPEG, PNG or DICOM file)")
        }
        guard let keyed = try IdempotentRequest.begin(s, req, user, fingerprint: form.fingerprint) else {
            return try upload(s, form, imagePart, user, idempotency: nil)
        }
        if let refusal = keyed.refusal { throw refusal }   // another request's key: not this one's to release
        if case .done(let made) = keyed.claim { return try replay(s, user, made) }
        // From here this process holds the key: it is completed with what is made, else released.
        var settled = false
        defer { if !settled { keyed.release() } }
        let id = keyed.key.analysisId(organizationId: user.organizationId, userId: user.id, fingerprint: keyed.fingerprint)
        // The record may exist all the same: made by a process that died before completing the key (this
        // client never had its answer: a success), by another host, or under this key more than a day ago.
        if let made = try madeAlready(s, user, id) {
            keyed.complete(made.id)
            settled = true
            return keyed.claim == .takenOver ? try created(s, made) : try replay(s, user, made.id)
        }
        do {
            let response = try upload(s, form, imagePart, user, idempotency: IdempotentCreate(id: id, fingerprint: keyed.fingerprint))
            keyed.complete(id)
            settled = true
            return response
        } catch where error.status == 409 {
            // Made meanwhile under the id (another host's copy delivered first): that record.
            guard let made = try madeAlready(s, user, id) else { throw error }
            keyed.complete(made.id)
            settled = true
            return try replay(s, user, made.id)
        }
    }

    /// Analyses `imagePart` for the form's patient and stores it (under `idempotency`'s id when given).
    static func upload(_ s: Services, _ form: MultipartForm, _ imagePart: MultipartForm.Part, _ user: User,
                       idempotency: IdempotentCreate?) throws(Problem) -> HTTPResponse {
        try admitFile(s, imagePart.body)
        let patient = try PatientForm.parse(form)
        let frame = try PatientForm.frame(form)
        let upload = UploadAnalysis(pipeline: try s.pipeline(), store: try s.store())
        let outcome: UploadOutcome
        do { outcome = try upload.run(image: imagePart.body, frame: frame, patient: patient, by: user, idempotency: idempotency) } catch {
            s.publishLoadedModels()   // a failed analysis may still have loaded a model
            throw s.problem(error)
        }
        let stored = outcome.record
        s.publishLoadedModels(outcome.loadedModelIDs)
        s.observe(outcome)
        s.server.log.info("analysis_created", ["analysis": .token(.init(stored.id)), "forward_ms": .double(outcome.timings.forward),
                                               "model_load_ms": .double(outcome.timings.modelLoad)])
        // The draft is written by a report job process, never here: the 201 does not wait for an LLM.
        ReportAPI.enqueueDraft(s, stored)
        ResultsSending.analysisCreated(s, stored)
        var body = AnalysisBody(stored, links: s.links)
        body.report = .pending
        return .created(body, id: stored.id, location: s.links.analysis(stored.id))
    }

    /// The 201 of stored record `rec`, its report as it is now.
    static func created(_ s: Services, _ rec: AnalysisRecord) throws(Problem) -> HTTPResponse {
        var body = AnalysisBody(rec, links: s.links)
        body.report = try ReportAPI.body(s, rec)
        return .created(body, id: rec.id, location: s.links.analysis(rec.id))
    }

    /// The answer to a key whose request made record `id`: that record as a 201, marked replayed; 410
    /// when it has been deleted since.
    static func replay(_ s: Services, _ user: User, _ id: String) throws(Problem) -> HTTPResponse {
        let found: AnalysisRecord?
        do { found = try s.store().get(id: id, organizationId: user.organizationId) } catch { throw s.problem(error) }
        guard let rec = found else {
            throw Problem(status: 410, detail: "the analysis this Idempotency-Key created has been deleted since")
        }
        s.server.log.info("analysis_replayed", ["analysis": .token(.init(rec.id))])
        ResultsSending.analysisCreated(s, rec)   // queued once; the first request's worker may have died before it did
        return IdempotentRequest.replayed(try created(s, rec))
    }

    /// The record under a key's id, when there is one; nil when there is none, or the shared store cannot
    /// tell now (the outbox takes the upload; its delivery keeps one record should another host have made
    /// it). The id derives from the request's fingerprint, so a record found is this request's.
    static func madeAlready(_ s: Services, _ user: User, _ id: String) throws(Problem) -> AnalysisRecord? {
        let store = try s.store()
        do { return try store.get(id: id, organizationId: user.organizationId) } catch {
            guard error.kind == .unavailable else { throw s.problem(error) }
            return nil
        }
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
}
