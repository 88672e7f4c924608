import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 19, item 8 ("slow clients"): 300 connections that never finish their request header made nginx
/// refuse every other client until they timed out. Through the real nginx (nginx/local.conf.template,
/// rendered by deploy/render-nginx.sh with its defaults) and the real pool. Every client socket is bound
/// to its own loopback source address first (127.0.0.0/8 all reach lo on Linux), so "another client"
/// has another address, as nginx's per-address limit sees it.
@Suite struct SlowClientTests {
    /// CONN_PER_ADDRESS's default in deploy/render-nginx.sh.
    static let perAddress = 64

    @Test func unfinishedRequestsFromOneAddressNeitherLockOthersOutNorOutliveTheHeaderTimeout() async throws {
        let stack = try await Stack.start()
        defer { stack.stop() }
        var flood: [RawConnection] = []
        defer { flood.forEach { $0.close() } }
        for i in 0..<300 {
            let c = try RawConnection(port: stack.port, from: "127.0.0.1")
            // Half stop inside the request line, half inside the headers; none ever sends the blank line.
            try c.send(i % 2 == 0 ? "GET /api/hea" : "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            flood.append(c)
        }

        // Another address is answered at once, for the API and for a static page (socket deadline 5 s each;
        // the header timeout that would otherwise free nginx is 10 s).
        let health = try RawConnection.get("/api/health", port: stack.port, from: "127.0.0.2")
        #expect(health.status == 200, "\(health.head)")
        let page = try RawConnection.get("/", port: stack.port, from: "127.0.0.2")
        #expect(page.status == 200 && page.body.contains("<html"), "\(page.head)")
        // ...while every slow connection was still open: nginx held all 300 and still had room.
        #expect(flood.filter { $0.closedByPeer() }.isEmpty, "nginx dropped slow connections instead of holding them")

        // nginx closes each of them once client_header_timeout (10 s) has passed.
        let closed = await eventually(timeout: 40, every: .milliseconds(200)) { flood.allSatisfy { $0.closedByPeer() } }
        #expect(closed, "\(flood.filter { !$0.closedByPeer() }.count) of 300 slow connections still open after 40 s")
        // And nginx serves that address again.
        #expect(try RawConnection.get("/api/health", port: stack.port, from: "127.0.0.1").status == 200)
    }

    @Test func anAddressHasItsShareOfRequestsInProgressAndTheNextIsAnswered429() async throws {
        let stack = try await Stack.start()
        defer { stack.stop() }
        // Uploads are authenticated before their body is read (issue 21): these carry a clinician's token.
        let token = try stack.token(forNewUser: "slow-clinician", role: "clinician")
        var uploads: [RawConnection] = []
        defer { uploads.forEach { $0.close() } }
        // Slow uploads: a whole header, then the start of a body that never ends. nginx says 100 Continue when it
        // starts reading the body, so each one is past limit_conn (counted) once that answer is here.
        for i in 0..<Self.perAddress {
            let c = try RawConnection(port: stack.port, from: "127.0.0.1")
            try c.send("POST /api/analyses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=slow\r\n"
                       + "Authorization: Bearer \(token)\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n")
            let interim = try c.readHead()
            #expect(interim.hasPrefix("HTTP/1.1 100 Continue"), "upload \(i + 1): \(interim)")
            try c.send("--slow\r\nContent-Disposition: form-data; name=\"patient_id\"\r\n\r\nP-SLOW\r\n")
            uploads.append(c)
        }

        // The next request from that address, API or static, is refused with the limit's problem+json.
        for path in ["/api/health", "/"] {
            let refused = try RawConnection.get(path, port: stack.port, from: "127.0.0.1")
            #expect(refused.status == 429, "\(path): \(refused.head)")
            #expect(refused.header("Content-Type") == "application/problem+json", "\(path)")
            #expect(refused.header("Retry-After") != nil, "\(path)")
            #expect(refused.body.contains("too many requests in progress from this address"), "\(path): \(refused.body)")
        }
        // Another address is not affected.
        #expect(try RawConnection.get("/api/health", port: stack.port, from: "127.0.0.2").status == 200)
        #expect(try RawConnection.get("/", port: stack.port, from: "127.0.0.3").status == 200)

        // One upload given up frees its slot for the next request of that address.
        uploads.removeLast().close()
        let served = try await eventually(timeout: 15, every: .milliseconds(100)) {
            try RawConnection.get("/api/health", port: stack.port, from: "127.0.0.1").status == 200
        }
        #expect(served, "a closed upload's slot was not given back")
        // The other uploads are still open: admitted requests are never cut by the limit.
        #expect(uploads.filter { $0.closedByPeer() }.isEmpty)

        // The upload rate limit's 429 (limit_req, same @rate_limited answer) keeps its own words: 1 + burst 10
        // uploads from an address that is not exempt, then refused.
        var rateLimited: RawConnection.Response?
        for _ in 0..<20 where rateLimited == nil {
            let r = try RawConnection.request("POST", "/api/analyses", port: stack.port, from: "127.0.0.4")
            if r.status == 429 { rateLimited = r }
        }
        #expect(rateLimited?.body.contains("too many uploads from this address") == true, "\(rateLimited?.body ?? "no 429")")
    }
}
