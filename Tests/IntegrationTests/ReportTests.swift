import Foundation
import Testing

/// The printable report through real nginx and the real pool: escaping, access, audit, and the images it links.
@Suite(.serialized) final class ReportTests {
    let stack: Stack
    let adminToken: String
    let otherOrgToken: String

    init() async throws {
        stack = try await Stack.start()
        adminToken = try stack.token(forNewUser: "report-admin", role: "admin")
        otherOrgToken = try stack.token(forNewUser: "report-other", role: "clinician", organization: "other")
    }
    deinit { stack.stop() }

    static let note = "<img src=x onerror=alert(1)>"

    @Test func reportIsEscapedAccessCheckedAuditedAndItsImagesLoad() async throws {
        let upload = try await stack.upload(image: try Scans.jpeg, fields: [
            "patient_id": "P-REPORT-1", "patient_name": "Jane Reportname", "modality": "MRI", "note": Self.note,
        ])
        #expect(upload.status == 201)
        let id = try #require(upload.json?["id"] as? String)
        let results = try #require(upload.json?["results"] as? [[String: Any]])

        let r = try await stack.request("GET", "/analyses/\(id)/report")
        #expect(r.status == 200)
        #expect(r.header("Content-Type") == "text/html; charset=utf-8")
        #expect(r.header("Cache-Control") == "no-store")
        #expect(r.header("Content-Security-Policy")?.contains("style-src 'self'") == true)
        let html = String(decoding: r.body, as: UTF8.self)
        #expect(html.contains("&lt;img src=x onerror=alert(1)&gt;"))
        #expect(!html.contains("<img src=x"))
        #expect(html.contains("Jane Reportname") && html.contains("P-REPORT-1"))
        #expect(html.contains(#"<p class="institution">default</p>"#), "no institution configured: the organisation's name")
        #expect(html.contains("Decision support only, not a diagnosis."))
        for result in results {
            let title = try #require(result["title"] as? String)
            let prediction = try #require(result["prediction"] as? String)
            // The report shows the manifest's title of the predicted label (models/manifest.json has one for each).
            let probabilities = try #require(result["probabilities"] as? [[String: Any]])
            let shown = try #require(probabilities.first { $0["label"] as? String == prediction }?["title"] as? String)
            #expect(shown != prediction, "the default manifest titles every label")
            #expect(html.contains("<h3>\(title)</h3>") && html.contains("<strong>\(shown)</strong>"), "\(title)")
        }
        let scanURL = "/api/analyses/\(id)/scan.jpg"
        let overlayURLs = results.compactMap { $0["id"] as? String }.map { "/api/analyses/\(id)/heatmaps/\($0).webp" }
        let sources = html.matches(of: /<img src="([^"]+)"/).map { String($0.output.1) }
        #expect(sources == [scanURL] + overlayURLs)

        // A browser fetches the images with the session cookie the report page was opened with.
        let session = try stack.syncSignIn("clinician")
        for (url, type) in [(scanURL, "image/jpeg")] + overlayURLs.map({ ($0, "image/webp") }) {
            let image = try await stack.request("GET", url, auth: session)
            #expect(image.status == 200 && image.header("Content-Type") == type && image.body.count > 100, "\(url)")
        }
        #expect(try await stack.request("GET", "/report.css").header("Content-Type")?.hasPrefix("text/css") == true)

        #expect(try await stack.request("GET", "/analyses/\(id)/report", auth: .bearer(otherOrgToken)).status == 404)
        #expect(try await stack.request("GET", "/analyses/\(id)/report", auth: .bearer(adminToken)).status == 403)
        #expect(try await stack.request("GET", "/analyses/\(id)/report", auth: Stack.Auth.none).status == 401)

        let unknown = try await stack.request("GET", "/analyses/01NOSUCHANALYSIS0000000000/report")
        #expect(unknown.status == 404 && unknown.header("Content-Type")?.hasPrefix("application/problem+json") == true)

        // The admin reads this organisation's trail: the other organisation's attempt is in it too (and
        // in its own), and so is the attempt without credentials.
        let audit = try await stack.request("GET", "/api/audit?action=analysis.report&limit=1000", auth: .bearer(adminToken))
        let entries = try #require(audit.json?["entries"] as? [[String: Any]])
        let outcomes = entries.filter { $0["recordId"] as? String == id }
            .map { "\($0["actorUsername"] as? String ?? "-") \($0["outcome"] as? String ?? "?")" }
        #expect(outcomes.sorted() == ["- denied", "clinician success", "report-admin denied", "report-other denied"], "\(outcomes)")
    }
}

/// Its own suite: the report suite's stack has a working template folder.
@Suite struct ReportTemplateFaultTests {
    @Test func aMissingTemplateFolderIs503() async throws {
        let broken = try await Stack.start(settings: ["TEMPLATES": "/nonexistent/mediscope-templates"])
        defer { broken.stop() }
        let upload = try await broken.upload(image: try Scans.jpeg)
        let id = try #require(upload.json?["id"] as? String)
        let r = try await broken.request("GET", "/analyses/\(id)/report")
        #expect(r.status == 503 && r.header("Content-Type")?.hasPrefix("application/problem+json") == true)
        #expect((r.json?["detail"] as? String)?.contains("report templates") == true)
        try await Task.sleep(for: .milliseconds(200))
        let log = (try? String(contentsOf: broken.logFile, encoding: .utf8)) ?? ""
        #expect(log.contains("report_templates_invalid"))
    }
}
