import Foundation
import MediscopeNet
import Testing
@testable import FirebaseTestKit

/// CurlHTTP (libcurl via Sources/CCurl) against the local test server.
@Suite("CurlHTTP")
struct CurlHTTPTests {
    @Test func returnsStatusBodyAndCacheControl() throws {
        let body = Array(#"{"hello":"world"}"#.utf8)
        let server = try FirebaseTestHTTPServer(.init(status: 200, headers: [("cache-control", "public, max-age=77")], body: body))
        defer { server.stop() }
        let result = try CurlHTTP.get(server.url, timeout: 5)
        #expect(result.status == 200)
        #expect(result.body == body)
        #expect(result.cacheControl == "public, max-age=77")
        #expect(server.requestCount == 1)
    }

    @Test func missingCacheControlIsNil() throws {
        let server = try FirebaseTestHTTPServer(.init(status: 404, headers: [], body: []))
        defer { server.stop() }
        let result = try CurlHTTP.get(server.url, timeout: 5)
        #expect(result.status == 404)
        #expect(result.body.isEmpty)
        #expect(result.cacheControl == nil)
    }

    @Test func redirectsAreNotFollowed() throws {
        let target = try FirebaseTestHTTPServer(.init(status: 200, headers: [], body: Array("elsewhere".utf8)))
        defer { target.stop() }
        let server = try FirebaseTestHTTPServer(.init(status: 302, headers: [("Location", target.url.absoluteString)], body: []))
        defer { server.stop() }
        let result = try CurlHTTP.get(server.url, timeout: 5)
        #expect(result.status == 302)
        #expect(target.requestCount == 0)
    }

    @Test func oversizeBodyIsRefused() throws {
        let server = try FirebaseTestHTTPServer(.init(status: 200, headers: [], body: [UInt8](repeating: 0x61, count: CurlHTTP.maxBodyBytes + 1)))
        defer { server.stop() }
        #expect(throws: CurlError.self) { try CurlHTTP.get(server.url, timeout: 5) }
        // Exactly the limit is accepted.
        server.setResponse(.init(status: 200, headers: [], body: [UInt8](repeating: 0x62, count: CurlHTTP.maxBodyBytes)))
        #expect(try CurlHTTP.get(server.url, timeout: 5).body.count == CurlHTTP.maxBodyBytes)
    }

    @Test func connectionRefusedThrows() throws {
        let server = try FirebaseTestHTTPServer()
        let url = server.url
        server.stop()
        do {
            _ = try CurlHTTP.get(url, timeout: 2)
            Issue.record("GET against a closed port succeeded")
        } catch let error as CurlError {
            #expect(error.code == 3) // CCURL_ERR_TRANSFER
            #expect(!error.message.isEmpty)
        }
    }

    @Test func nonHTTPSchemesAreRefused() {
        #expect(throws: CurlError.self) { try CurlHTTP.get(URL(fileURLWithPath: "/etc/passwd"), timeout: 1) }
    }
}
