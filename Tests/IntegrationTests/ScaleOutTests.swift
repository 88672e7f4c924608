import Foundation
import Synchronization
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Scale-out on a simulated network (`Cluster`): nginx balancing two application hosts that share the
/// Firestore emulator, each in its own network namespace, as the multi-host guide in docs/several-hosts.md sets up.
@Suite(.serialized) final class ScaleOutTests {
    /// Records made before a test's load starts, delivered to Firestore: what the readers read.
    struct Fixture { var paths: [String]; var ids: [String] }

    func makeFixture(_ cluster: Cluster, count: Int = 2) async throws -> Fixture {
        var ids: [String] = []
        for i in 0..<count {
            let r = try await cluster.upload(image: try Scans.jpeg, fields: ["patient_id": "P-SCALE-FIX-\(i)"])
            #expect(r.status == 201, "\(String(decoding: r.body, as: UTF8.self))")
            ids.append(try #require(r.json?["id"] as? String))
        }
        try cluster.waitForDelivery()
        var paths: [String] = []
        for id in ids {
            // The report draft (template: no LLM configured) is written by the taking host's report process.
            try cluster.waitUntil("the report of \(id) is drafted", timeout: 60) {
                (try? cluster.syncRequest("GET", "/api/analyses/\(id)/report").json?["status"] as? String) == "draft"
            }
            let record = try #require(try cluster.syncRequest("GET", "/api/analyses/\(id)").json)
            let images = Self.images(in: record, of: id)
            #expect(images.count >= 2, "the scan and at least one heatmap: \(images)")
            paths += ["/api/analyses/\(id)", "/api/analyses/\(id)/report", "/api/analyses?limit=5"] + images
        }
        return Fixture(paths: Array(Set(paths)).sorted(), ids: ids)
    }

    /// The scan and heatmap links of an analysis's JSON.
    static func images(in record: [String: Any], of id: String) -> [String] {
        Array(Set(strings(in: record).filter { $0.hasPrefix("/api/analyses/\(id)/scan.") || $0.hasPrefix("/api/analyses/\(id)/heatmaps/") }))
    }

    static func strings(in value: Any) -> [String] {
        switch value {
        case let s as String: [s]
        case let a as [Any]: a.flatMap { strings(in: $0) }
        case let d as [String: Any]: d.values.flatMap { strings(in: $0) }
        default: []
        }
    }

    @Test func bothHostsServeEveryRequestAlike() async throws {
        let cluster = try await Cluster.start()
        defer { cluster.stop() }
        let session = try cluster.syncSignIn("clinician")
        let fixture = try await makeFixture(cluster, count: 1)
        let logStart = cluster.accessLogEntries().count

        // Each path many times, with the API token and with the cookie session: one answer everywhere.
        for path in fixture.paths {
            var bodies: Set<Data> = []
            for i in 0..<8 {
                let r = try cluster.syncRequest("GET", path, auth: i.isMultiple(of: 2) ? nil : session)
                #expect(r.status == 200, "\(path): \(r.status)")
                bodies.insert(r.body)
            }
            #expect(bodies.count == 1, "\(path) answered \(bodies.count) different bodies")
        }
        let reads = cluster.accessLogEntries().dropFirst(logStart)
        let served = Set(reads.compactMap { ($0["upstream"] as? String)?.split(separator: ":").first.map(String.init) })
        #expect(served == [cluster["a"].address, cluster["b"].address], "the balancer sent reads to both hosts: \(served)")

        // Each host names itself in its status and counts what it served.
        var seen: [String: Int] = [:]
        for _ in 0..<8 {
            let status = try cluster.status()
            let accepted = (((status["pools"] as? [String: Any])?["io"] as? [String: Any])?["snapshot"] as? [String: Any])?["acceptedRequests"] as? Int
            if let host = status["host"] as? String { seen[host] = accepted ?? -1 }
        }
        #expect(Set(seen.keys) == ["host-a", "host-b"], "\(seen)")
        #expect(seen.values.allSatisfy { $0 > 0 }, "each host's io pool accepted requests: \(seen)")

        // One host's checks by its address, for an operator and a per-host Prometheus scrape.
        for name in ["a", "b"] {
            let base = "/hosts/\(cluster[name].address)/api"
            #expect(try cluster.syncRequest("GET", "\(base)/status", auth: cluster.adminAuth).json?["host"] as? String == "host-\(name)")
            let metrics = String(decoding: try cluster.syncRequest("GET", "\(base)/metrics", auth: cluster.adminAuth).body, as: UTF8.self)
            #expect(metrics.contains("mediscope_active_workers{host=\"host-\(name)\",pool=\"io\"}"))
            #expect(try cluster.syncRequest("GET", "\(base)/status").status == 403, "status stays for admins")
            #expect(try cluster.syncRequest("GET", "\(base)/ready", auth: Stack.Auth.none).status == 200)
        }

        // A record is found at once from either host, before its outbox has delivered it (nginx asks
        // the next host on a 404).
        for i in 0..<3 {
            let id = try #require(try await cluster.upload(image: try Scans.jpeg, fields: ["patient_id": "P-SCALE-NOW-\(i)"]).json?["id"] as? String)
            for _ in 0..<4 { #expect(try cluster.syncRequest("GET", "/api/analyses/\(id)").status == 200) }
        }
        #expect(try cluster.syncRequest("GET", "/api/analyses/no-such-record").status == 404)
    }

    @Test func aPeerThatIsNotTheBalancerIsRefused() async throws {
        let cluster = try await Cluster.start()
        defer { cluster.stop() }
        let a = cluster["a"]
        // The root namespace's address is on the same network, but only the balancer is allowed.
        for port in [9000, 9001] {
            let stranger = try FastCGIClient(host: a.address, port: port)
            #expect(throws: (any Error).self, "port \(port)") { try stranger.get("/api/health") }
        }
        try cluster.waitUntil("the refusals are logged", timeout: 30) {
            a.log.components(separatedBy: "\"connection_refused\"").count > 2
        }
        #expect(a.log.contains(cluster.lab.address("root")), "the refused peer's address is logged")
        #expect(try cluster.syncRequest("GET", "/api/ready").status == 200, "the balancer is still served")
    }

    /// UPSTREAM_INFERENCE_MAX_CONNS=1: two hosts hold two uploads; more at once are refused by nginx
    /// itself, without trying a host, as a 503 with Retry-After and a problem body.
    @Test func whenEveryHostIsSaturatedUploadsGetA503AtOnce() async throws {
        let cluster = try await Cluster.start(upstream: ["UPSTREAM_INFERENCE_MAX_CONNS": "1"])
        defer { cluster.stop() }
        let image = try Scans.jpeg
        let logStart = cluster.accessLogEntries().count
        let answers = try await withThrowingTaskGroup(of: Stack.Response.self) { group in
            for i in 0..<8 {
                group.addTask { try await cluster.upload(image: image, fields: ["patient_id": "P-SCALE-SAT-\(i)"]) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let refused = answers.filter { $0.status == 503 }
        #expect(answers.filter { $0.status == 201 }.count >= 2, "\(answers.map(\.status))")
        #expect(refused.count >= 1 && refused.count + answers.filter { $0.status == 201 }.count == 8, "\(answers.map(\.status))")
        for r in refused {
            #expect(r.header("Retry-After") == "2" && r.header("Content-Type")?.hasPrefix("application/problem+json") == true)
            #expect((r.json?["detail"] as? String)?.contains("busy") == true)
        }
        // nginx answered those without sending them anywhere: no host address, the group's name.
        let logged503 = cluster.accessLogEntries().dropFirst(logStart).filter { $0["status"] as? Int == 503 }
        #expect(logged503.count == refused.count)
        #expect(logged503.allSatisfy { $0["upstream"] as? String == "mediscope_inference" }, "\(logged503.map { $0["upstream"] ?? "" })")
        #expect(try await cluster.upload(image: image, fields: ["patient_id": "P-SCALE-SAT-after"]).status == 201)
    }

    @Test func aKilledHostLosesNoReadAndRejoinsOnRestart() async throws {
        let cluster = try await Cluster.start(upstream: ["UPSTREAM_FAIL_TIMEOUT": "5s"])
        defer { cluster.stop() }
        let fixture = try await makeFixture(cluster)
        let a = cluster["a"]
        let load = Load(cluster, paths: fixture.paths, prefix: "P-SCALE-KILL")
        load.start()
        try await Task.sleep(for: .seconds(4))
        let logAtKill = cluster.accessLogEntries().count
        a.killAll()
        try await Task.sleep(for: .seconds(12))
        let whileDead = cluster.accessLogEntries().dropFirst(logAtKill)
        try a.start()
        let logAtRestart = cluster.accessLogEntries().count
        // Back in rotation: uploads land on it again (nginx tries it again after fail_timeout).
        try cluster.waitUntil("the restarted host takes uploads again", timeout: 90) {
            cluster.accessLogEntries().dropFirst(logAtRestart).contains {
                $0["upstream"] as? String == "\(a.address):9000" && $0["status"] as? Int == 201
            }
        }
        load.stop()

        let reads = load.reads
        #expect(reads.count > 20, "the readers ran: \(reads.count)")
        #expect(reads.allSatisfy { $0.status == 200 }, "no read failed: \(reads.filter { $0.status != 200 }.prefix(5))")

        // The balancer stopped sending to the dead host: past max_fails (2) it is tried again once per
        // fail_timeout (5 s) per upstream group (3 groups), at most.
        let triedDead = whileDead.filter { ($0["upstream"] as? String)?.contains("\(a.address):") == true }.count
        #expect(whileDead.count > 15 && triedDead <= 3 * 2 * 4, "\(triedDead) of \(whileDead.count) requests tried the dead host")

        // Every 201 exists once both outboxes are delivered (the dead host's after its restart); a failed
        // upload (only those in flight on the killed host) exists whole or not at all.
        try cluster.waitForDelivery(timeout: 90)
        let uploads = load.uploads
        let failed = uploads.filter { $0.status != 201 }
        #expect(uploads.count > 5 && failed.count <= 2, "\(failed.count) of \(uploads.count) uploads failed: \(failed)")
        for upload in uploads {
            let found = try cluster.syncRequest("GET", "/api/analyses?patient_id=\(upload.patient)").json?["items"] as? [[String: Any]] ?? []
            if upload.status == 201 {
                #expect(found.count == 1, "\(upload.patient) got its 201 and is stored once")
            } else {
                #expect(found.count <= 1)
                if let id = found.first?["id"] as? String {
                    let record = try cluster.syncRequest("GET", "/api/analyses/\(id)")
                    #expect(record.status == 200)
                    let images = Self.images(in: record.json ?? [:], of: id)
                    #expect(images.count >= 2)
                    for image in images {
                        #expect(try cluster.syncRequest("GET", image).status == 200, "a failed upload that exists has every image")
                    }
                }
            }
        }
    }

    @Test func rollingReloadAndRestartFailNoRequest() async throws {
        let cluster = try await Cluster.start()
        defer { cluster.stop() }
        let fixture = try await makeFixture(cluster)
        let load = Load(cluster, paths: fixture.paths, prefix: "P-SCALE-ROLL")
        load.start()
        try await Task.sleep(for: .seconds(2))
        // Rolling reload (SIGHUP): new workers first, old ones finish their request.
        for name in ["a", "b"] {
            try cluster[name].reload()
            try await Task.sleep(for: .seconds(2))
        }
        // Rolling restart, as docs/several-hosts.md says: drain the host at the balancer, stop, start, put it back.
        for name in ["a", "b"] {
            try cluster.renderNginx(drained: [name])
            try cluster.reloadNginx()
            cluster[name].stop()
            #expect(cluster[name].isRunning == false)
            #expect(cluster[name].log.contains("\"outbox_stopped\""), "the stop says how much it leaves in the outbox")
            try cluster[name].start()
            try cluster.renderNginx(drained: [])
            try cluster.reloadNginx()
            try await Task.sleep(for: .seconds(2))
        }
        load.stop()
        let reads = load.reads, uploads = load.uploads
        #expect(reads.count > 20 && uploads.count > 5, "\(reads.count) reads, \(uploads.count) uploads")
        #expect(reads.allSatisfy { $0.status == 200 }, "\(reads.filter { $0.status != 200 }.prefix(5))")
        #expect(uploads.allSatisfy { $0.status == 201 }, "\(uploads.filter { $0.status != 201 })")
        // And both hosts took uploads.
        let upstreams = Set(cluster.accessLogEntries().filter { $0["status"] as? Int == 201 }.compactMap { $0["upstream"] as? String })
        #expect(upstreams.isSuperset(of: ["\(cluster["a"].address):9000", "\(cluster["b"].address):9000"]), "\(upstreams)")
        try cluster.waitForDelivery(timeout: 90)
        for upload in uploads.prefix(10) {
            let found = try cluster.syncRequest("GET", "/api/analyses?patient_id=\(upload.patient)").json?["items"] as? [[String: Any]] ?? []
            #expect(found.count == 1, "\(upload.patient) is stored once")
        }
    }
}

/// Steady load through the balancer on threads of its own: readers GET the fixture's paths in turn,
/// uploaders POST scans with a fresh patient id each, until `stop()`.
final class Load: @unchecked Sendable {
    struct Read: CustomStringConvertible { var path: String; var status: Int; var description: String { "\(status) \(path)" } }
    struct Upload: CustomStringConvertible { var patient: String; var status: Int; var description: String { "\(status) \(patient)" } }
    let cluster: Cluster
    let paths: [String]
    let prefix: String
    let readers: Int, uploaders: Int
    private let running = Atomic<Bool>(false)
    private let results = Mutex<([Read], [Upload])>(([], []))
    private var threads: [Thread] = []
    private let finished = DispatchGroup()

    init(_ cluster: Cluster, paths: [String], prefix: String, readers: Int = 3, uploaders: Int = 2) {
        self.cluster = cluster; self.paths = paths; self.prefix = prefix
        self.readers = readers; self.uploaders = uploaders
    }

    var reads: [Read] { results.withLock { $0.0 } }
    var uploads: [Upload] { results.withLock { $0.1 } }

    func start() {
        running.store(true, ordering: .sequentiallyConsistent)
        let image = try? Scans.jpeg
        for r in 0..<readers {
            spawn {
                var i = r
                while self.running.load(ordering: .sequentiallyConsistent) {
                    let path = self.paths[i % self.paths.count]
                    i += 1
                    let status = (try? self.cluster.syncRequest("GET", path).status) ?? -1
                    self.results.withLock { $0.0.append(Read(path: path, status: status)) }
                }
            }
        }
        for u in 0..<uploaders {
            spawn {
                var n = 0
                while self.running.load(ordering: .sequentiallyConsistent), let image {
                    let patient = "\(self.prefix)-\(u)-\(n)"
                    n += 1
                    self.cluster.remember([patient])
                    let (body, type) = Multipart.body(fields: ["patient_id": patient], files: [("image", "scan.jpg", image)])
                    let status = (try? self.cluster.syncRequest("POST", "/api/analyses", body: body, contentType: type).status) ?? -1
                    self.results.withLock { $0.1.append(Upload(patient: patient, status: status)) }
                }
            }
        }
    }

    private func spawn(_ body: @escaping @Sendable () -> Void) {
        finished.enter()
        let t = Thread { body(); self.finished.leave() }
        threads.append(t)
        t.start()
    }

    /// Stops issuing requests and waits for those in flight.
    func stop() {
        running.store(false, ordering: .sequentiallyConsistent)
        finished.wait()
    }
}

extension ScaleOutTests {
    /// Idempotency-Key across hosts (docs/several-hosts.md): a retry sent to the other host before the
    /// first host delivered (its delivery stopped) makes the same record (its id derives from the key),
    /// and delivery keeps one; a retry after delivery is answered from Firestore by any host; another
    /// request under the key is a 422 there too.
    @Test func oneIdempotencyKeyMakesOneRecordAcrossHosts() async throws {
        let cluster = try await Cluster.start()
        defer { cluster.stop() }
        let image = PoisonedRequestTests.variant(try Scans.jpeg, "two hosts one key")
        func upload(_ patient: String, key: String, image: Data = image) async throws -> Stack.Response {
            cluster.remember([patient])
            let (body, type) = Multipart.body(fields: ["patient_id": patient], files: [("image", "scan.jpg", image)])
            return try await cluster.request("POST", "/api/analyses", body: body, contentType: type, headers: ["Idempotency-Key": key])
        }
        func only(_ host: String) throws {
            try cluster.renderNginx(drained: ["a", "b"].filter { $0 != host }.reduce(into: Set<String>()) { $0.insert($1) })
            try cluster.reloadNginx()
        }
        func outbox(_ host: String) throws -> [String: Any] {
            let r = try cluster.syncRequest("GET", "/hosts/\(cluster[host].address)/api/status", auth: cluster.adminAuth)
            guard let outbox = r.json?["outbox"] as? [String: Any] else { throw StackError("status of \(host): \(r.status)") }
            return outbox
        }
        func records(_ patient: String) throws -> [String] {
            let r = try cluster.syncRequest("GET", "/api/analyses?limit=100&patient_id=\(patient)")
            return try #require(r.json?["items"] as? [[String: Any]]).compactMap { $0["id"] as? String }
        }
        // Host a slow to deliver: its background processes (outbox delivery, report jobs) stopped. They
        // are the master's children that are neither workers nor the fork server.
        try only("a")
        let status = try #require(try cluster.syncRequest("GET", "/hosts/\(cluster["a"].address)/api/status", auth: cluster.adminAuth).json)
        let pools = try #require(status["pools"] as? [String: [String: Any]])
        var pooled: Set<Int32> = []
        for pool in pools.values {
            let snapshot = pool["snapshot"] as? [String: Any]
            for worker in snapshot?["workers"] as? [[String: Any]] ?? [] { if let pid = worker["pid"] as? Int { pooled.insert(Int32(pid)) } }
            if let pid = (snapshot?["forkServer"] as? [String: Any])?["pid"] as? Int { pooled.insert(Int32(pid)) }
        }
        let background = cluster["a"].children.filter { !pooled.contains($0) }
        #expect(background.count == 2, "the outbox delivery and the report jobs: \(background)")
        for pid in background { kill(pid, SIGSTOP) }
        var stopped = true
        defer { if stopped { for pid in background { kill(pid, SIGCONT) } } }

        let key = UUID().uuidString
        let onA = try await upload("P-KEYS-1", key: key)
        #expect(onA.status == 201, "\(String(decoding: onA.body, as: UTF8.self))")
        let id = try #require(onA.json?["id"] as? String)
        #expect(try outbox("a")["depth"] as? Int ?? 0 >= 1, "a holds it undelivered")

        // The client retries on the other host, which has not seen the record: it runs it again, under
        // the same id.
        try only("b")
        let onB = try await upload("P-KEYS-1", key: key)
        #expect(onB.status == 201 && onB.json?["id"] as? String == id, "\(String(decoding: onB.body, as: UTF8.self))")
        #expect(onB.header("Idempotent-Replayed") == nil, "b made it: a had not delivered its copy")
        // b remembers the key now: another request under it is refused, its answer repeated.
        #expect(try await upload("P-KEYS-1-OTHER", key: key).status == 422)
        let repeated = try await upload("P-KEYS-1", key: key)
        #expect(repeated.status == 201 && repeated.json?["id"] as? String == id && repeated.header("Idempotent-Replayed") == "true")

        // a delivers again: both copies are delivered as one record, nothing parked.
        for pid in background { kill(pid, SIGCONT) }
        stopped = false
        try cluster.renderNginx(drained: [])
        try cluster.reloadNginx()
        try cluster.waitUntil("both outboxes are delivered", timeout: 90) {
            (try? outbox("a"))?["depth"] as? Int == 0 && (try? outbox("b"))?["depth"] as? Int == 0
        }
        #expect(try outbox("a")["parked"] as? Int == 0 && outbox("b")["parked"] as? Int == 0)
        #expect(try records("P-KEYS-1") == [id])
        #expect(try records("P-KEYS-1-OTHER").isEmpty)

        // A key first used on b, delivered, then retried on a (which never saw it): answered from the
        // record Firestore holds; a remembers the key from then on and refuses another request under it.
        try only("b")
        let second = UUID().uuidString
        let first = try await upload("P-KEYS-2", key: second)
        let secondId = try #require(first.json?["id"] as? String)
        try cluster.waitUntil("b delivered", timeout: 60) { (try? outbox("b"))?["depth"] as? Int == 0 }
        try only("a")
        let onOther = try await upload("P-KEYS-2", key: second)
        #expect(onOther.status == 201 && onOther.json?["id"] as? String == secondId && onOther.header("Idempotent-Replayed") == "true")
        #expect(try await upload("P-KEYS-2", key: second, image: PoisonedRequestTests.variant(image, "other")).status == 422)
        try cluster.renderNginx(drained: [])
        try cluster.reloadNginx()
        #expect(try records("P-KEYS-2") == [secondId])
    }
}
