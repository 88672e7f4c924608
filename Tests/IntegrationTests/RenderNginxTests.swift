import Foundation
import Testing
import TestSupport

/// deploy/render-nginx.sh: the upstream groups it writes for one box and for a host list, the host
/// lists it refuses, and the production site with several hosts passing `nginx -t`.
@Suite struct RenderNginxTests {
    /// What the script did, and the folder it wrote into (removed with the value).
    struct Rendered {
        var status: Int32
        var stderr: String
        let folder: TemporaryFolder
        var dir: URL { folder.url }
        func snippet(_ name: String) -> String {
            (try? String(contentsOf: dir.appendingPathComponent("snippets/\(name)"), encoding: .utf8)) ?? ""
        }
        var wroteConfig: Bool { FileManager.default.fileExists(atPath: dir.appendingPathComponent("nginx.conf").path) }
    }

    func render(_ settings: [String: String], template: String = "nginx/local.conf.template") throws -> Rendered {
        let folder = TemporaryFolder("mediscope-render")
        var env = ProcessInfo.processInfo.environment
        env["VAR"] = folder.appending("var").path
        env["LISTEN"] = "127.0.0.1:8080"
        env["BODY_LIMIT"] = "20m"
        for (k, v) in settings { env[k] = v }
        let run = try runProcess(URL(fileURLWithPath: "/bin/bash"), [Repository.root.appendingPathComponent("deploy/render-nginx.sh").path,
                                                                     Repository.root.appendingPathComponent(template).path,
                                                                     folder.appending("nginx.conf").path], environment: env)
        return Rendered(status: run.status, stderr: run.stderr, folder: folder)
    }

    @Test func oneBoxUsesItsUnixSocketsWithOneAttempt() throws {
        let r = try render([:])
        #expect(r.status == 0, "\(r.stderr)")
        let upstreams = r.snippet("mediscope-upstreams.conf")
        for (group, socket) in [("mediscope_inference", "inference"), ("mediscope_io", "io"), ("mediscope_io_reads", "io")] {
            #expect(upstreams.contains("upstream \(group) ") && upstreams.contains("server unix:\(r.dir.path)/var/run/\(socket).sock;"))
        }
        #expect(!upstreams.contains("keepalive") && !upstreams.contains("max_fails"))
        #expect(!r.snippet("mediscope-hosts.conf").contains("location ~"))
        let fastcgi = r.snippet("mediscope-fastcgi-upstream.conf")
        #expect(fastcgi.contains("fastcgi_keep_conn off;") && fastcgi.contains("fastcgi_next_upstream off;"))
    }

    @Test func severalHostsBecomeBalancedGroupsWithKeptConnectionsForReadsOnly() throws {
        let r = try render(["UPSTREAM_HOSTS": "10.0.0.11,\n 10.0.0.12 [fd00::13]=down", "UPSTREAM_INFERENCE_MAX_CONNS": "3",
                            "UPLOAD_RATE_EXEMPT": "10.0.0.0/24"])
        #expect(r.status == 0, "\(r.stderr)")
        let upstreams = r.snippet("mediscope-upstreams.conf")
        let groups = upstreams.components(separatedBy: "upstream ").dropFirst().map { String($0) }
        #expect(groups.count == 3)
        for group in groups {
            let port = group.hasPrefix("mediscope_inference") ? 9000 : 9001
            #expect(group.contains("least_conn;") && group.contains("zone "))
            #expect(group.contains("server 10.0.0.11:\(port) max_fails=2 fail_timeout=10s"))
            #expect(group.contains("server 10.0.0.12:\(port) max_fails=2 fail_timeout=10s"))
            #expect(group.contains("server [fd00::13]:\(port) down;"))
            #expect(group.contains("max_conns=3") == group.hasPrefix("mediscope_inference"))
            // Only reads keep connections: a write on a connection a worker just closed could not be replayed.
            #expect(group.contains("keepalive 16;") == group.hasPrefix("mediscope_io_reads"))
        }
        let fastcgi = r.snippet("mediscope-fastcgi-upstream.conf")
        // A 404 goes to the next host too: the host that took a record serves it before delivery.
        #expect(fastcgi.contains("fastcgi_keep_conn on;") && fastcgi.contains("fastcgi_next_upstream error timeout http_404;"))
        // Each host, drained or not, has its own checks path.
        let hosts = r.snippet("mediscope-hosts.conf")
        #expect(hosts.contains(#"location ~ ^/hosts/10\.0\.0\.12/api/(?:health|ready|status|metrics)$"#)
                && hosts.contains("fastcgi_pass 10.0.0.12:9001;") && hosts.contains("fastcgi_pass [fd00::13]:9001;"))
        #expect(!fastcgi.contains("non_idempotent"), "an upload is never sent twice")
        #expect(r.snippet("mediscope-upload-exempt.conf").contains("10.0.0.0/24 1;"))
    }

    @Test(arguments: ["10.0.0.11;", "10.0.0.11 10.0.0.11=down", "10.0.0.11=up", "*", "fd00::1", "$host",
                      "1.2.3", "10.0.0.256", "10.0.0.11=down 10.0.0.12=down"])
    func aBadHostListIsRefusedAndNothingIsWritten(_ hosts: String) throws {
        let r = try render(["UPSTREAM_HOSTS": hosts])
        #expect(r.status != 0 && r.stderr.contains("UPSTREAM_HOSTS"), "\(r.stderr)")
        #expect(!r.wroteConfig)
    }

    /// Issue 20, item 13: exempt networks that together cover more than a /8 are every client in
    /// pieces ("0.0.0.0/1 128.0.0.0/1" is /0), refused like /0; networks that need it pass.
    @Test(arguments: ["0.0.0.0/1 128.0.0.0/1", "0.0.0.0/2,64.0.0.0/2", "10.0.0.0/9 10.128.0.0/9 11.0.0.1", "fd00::/7", "::/8 100::/8"])
    func exemptNetworksLargerThanASlash8TogetherAreRefused(_ networks: String) throws {
        let r = try render(["UPLOAD_RATE_EXEMPT": networks, "NGINX_TEST": "0"])
        #expect(r.status != 0 && r.stderr.contains("UPLOAD_RATE_EXEMPT") && r.stderr.contains("/8"), "\(networks): \(r.stderr)")
        #expect(!r.wroteConfig)
    }

    @Test func exemptNetworksUpToASlash8AreWritten() throws {
        let r = try render(["UPLOAD_RATE_EXEMPT": "10.0.0.0/9 10.128.0.0/10, 192.168.7.0/24 fd00:1::/48", "NGINX_TEST": "0"])
        #expect(r.status == 0, "\(r.stderr)")
        let exempt = r.snippet("mediscope-upload-exempt.conf")
        for net in ["10.0.0.0/9 1;", "10.128.0.0/10 1;", "192.168.7.0/24 1;", "fd00:1::/48 1;"] { #expect(exempt.contains(net), "\(exempt)") }
    }

    @Test func theProductionSiteWithSeveralHostsPassesNginxTest() throws {
        let folder = TemporaryFolder("mediscope-tls")
        let openssl = try runProcess(URL(fileURLWithPath: "/usr/bin/openssl"), [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=mediscope.test",
            "-keyout", folder.appending("key.pem").path, "-out", folder.appending("cert.pem").path])
        try #require(openssl.status == 0, "openssl req made the test certificate: \(openssl.stderr)")
        let r = try render([
            "UPSTREAM_HOSTS": "10.0.0.11 10.0.0.12", "SERVER_NAME": "mediscope.test",
            "TLS_CERT": folder.appending("cert.pem").path, "TLS_KEY": folder.appending("key.pem").path,
            "WEB_ROOT": folder.appending("www").path,
            "ACCESS_LOG": folder.appending("access.log").path, "ERROR_LOG": folder.appending("error.log").path], template: "nginx/production/mediscope.conf")
        #expect(r.status == 0 && r.stderr.contains("test is successful"), "\(r.stderr)")
        #expect(r.wroteConfig && r.snippet("mediscope-upstreams.conf").contains("server 10.0.0.12:9000"))
    }
}
