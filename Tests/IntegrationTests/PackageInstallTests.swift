import Foundation
import Testing
import TestSupport

/// Issue 27: the Debian package `make deb` builds (deploy/debian/), installed the way a hospital's IT
/// installs everything. In a clean Debian 12 made with debootstrap (cached in Tests/Package/cache/,
/// Tests/Package/chroot.sh) it installs with `apt-get install ./mediscope_*.deb`, which pulls its
/// dependencies from Debian's archive; the installed program serves behind the installed nginx site
/// (started as mediscope.service says, since systemd cannot boot in a chroot), a clinician made with the
/// installed command uploads a scan and gets the model's numbers; logrotate, the swap file, an upgrade
/// to a newer build, removal and purge are each checked in it. lintian and `systemd-analyze verify`
/// check the package and its installed units.
@Suite(.serialized, .enabled(if: getuid() == 0, "debootstrap, chroot and mount need root"))
struct PackageInstallTests {
    static let chrootScript = Repository.root.appendingPathComponent("Tests/Package/chroot.sh")

    /// The version deploy/debian/changelog gives (its first line: `mediscope (VERSION) ...`).
    static func version() throws -> String {
        let changelog = try String(contentsOf: Repository.root.appendingPathComponent("deploy/debian/changelog"), encoding: .utf8)
        let first = changelog.prefix { $0 != "\n" }
        guard let open = first.firstIndex(of: "("), let close = first.firstIndex(of: ")"), open < close else {
            throw StackError("deploy/debian/changelog does not start with 'mediscope (VERSION)'")
        }
        return String(first[first.index(after: open)..<close])
    }

    /// The package `make deb` left in the repository's root for this version.
    static func builtPackage() throws -> URL {
        let deb = Repository.root.appendingPathComponent("mediscope_\(try version())_amd64.deb")
        guard FileManager.default.fileExists(atPath: deb.path) else {
            throw StackError("no \(deb.lastPathComponent): run `make deb` (`make test` does) before this test")
        }
        return deb
    }

    static func run(_ executable: String, _ arguments: [String], input: String? = nil, timeout: Double = 120,
                    environment: [String: String]? = nil) throws -> ProcessResult {
        try runProcess(URL(fileURLWithPath: executable), arguments, environment: environment, input: input, timeout: timeout)
    }

    /// One answer of the installed nginx (curl on the host: the chroot shares its network).
    struct Reply {
        let status: Int
        let body: Data
        let headers: String
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any]? { try? JSONSerialization.jsonObject(with: body) as? [String: Any] }
        func header(_ name: String) -> String? {
            headers.split(separator: "\r\n").first { $0.lowercased().hasPrefix(name.lowercased() + ":") }
                .map { String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces) }
        }
    }

    static func curl(_ arguments: [String]) throws -> Reply {
        let folder = TemporaryFolder("mediscope-curl")
        let body = folder.appending("body"), head = folder.appending("head")
        // -k: the site serves Debian's self-signed snakeoil certificate until an admin sets one.
        let r = try run("/usr/bin/curl", ["-sS", "-k", "--max-time", "90", "-o", body.path, "-D", head.path, "-w", "%{http_code}"] + arguments,
                        timeout: 120)
        return Reply(status: Int(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0,
                     body: (try? Data(contentsOf: body)) ?? Data(), headers: (try? String(contentsOf: head, encoding: .utf8)) ?? "")
    }

    /// A TCP port on 127.0.0.1 that nothing listens on now (the chroot's nginx takes it next).
    static func freePort() throws -> Int { try Stack.freePort() }

    /// The Debian 12 root of one run (Tests/Package/work/<id>/root); `cleanup` unmounts and removes it.
    final class Chroot {
        let work: URL
        var root: URL { work.appendingPathComponent("root") }

        init() {
            work = Repository.root.appendingPathComponent("Tests/Package/work/\(UUID().uuidString.prefix(8).lowercased())")
        }

        func script(_ arguments: [String], input: String? = nil, timeout: Double = 300) throws -> ProcessResult {
            try PackageInstallTests.run("/bin/bash", [PackageInstallTests.chrootScript.path] + arguments, input: input, timeout: timeout)
        }

        /// `command` run inside the root as root.
        func run(_ command: [String], input: String? = nil, timeout: Double = 300) throws -> ProcessResult {
            try script(["run", work.path] + command, input: input, timeout: timeout)
        }

        /// A shell command line run inside the root as root.
        func sh(_ line: String, timeout: Double = 300) throws -> ProcessResult { try run(["/bin/sh", "-c", line], timeout: timeout) }

        /// The host's path of `path` inside the root.
        func path(_ path: String) -> String { root.path + path }
        /// Whether `path` exists inside the root (a link itself, not what it points to: links there are the root's).
        func exists(_ path: String) -> Bool { (try? FileManager.default.attributesOfItem(atPath: self.path(path))) != nil }
        func read(_ path: String) -> String { (try? String(contentsOfFile: self.path(path), encoding: .utf8)) ?? "" }
        /// Rewrites a file the way an editor does (the same inode, owner and mode).
        func edit(_ path: String, _ change: (String) -> String) throws {
            let text = read(path)
            let changed = change(text)
            guard changed != text else { throw StackError("editing \(path) changed nothing") }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: self.path(path)))
            defer { try? handle.close() }
            try handle.truncate(atOffset: 0)
            try handle.write(contentsOf: Data(changed.utf8))
        }

        /// Installs `deb` (copied into the root's /tmp) with apt-get, keeping edited conffiles.
        func aptInstall(_ deb: URL, timeout: Double = 1500) throws -> ProcessResult {
            let inside = "/tmp/\(deb.lastPathComponent)"
            try? FileManager.default.removeItem(atPath: path(inside))
            try FileManager.default.copyItem(atPath: deb.path, toPath: path(inside))
            return try run(["apt-get", "install", "-y", "-q", "-o", "Dpkg::Options::=--force-confdef",
                            "-o", "Dpkg::Options::=--force-confold", inside], timeout: timeout)
        }

        /// The master's pid (its pid file in the root's /run) and its children (pools, fork server, background).
        var masterPID: Int32? { Int32(read("/run/mediscope/mediscope.pid").trimmingCharacters(in: .whitespacesAndNewlines)) }
        func children(of pid: Int32) -> Set<Int32> {
            Set(((try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? "")
                .split(separator: " ").compactMap { Int32($0) })
        }

        func cleanup() {
            _ = try? script(["cleanup", work.path], timeout: 180)
        }
    }

    /// The digests `deb` records of the program's files (the binary, the libtorch shim, the Swift runtime).
    static func programDigests(_ deb: URL) throws -> [String] {
        let md5sums = try run("/bin/sh", ["-c", "dpkg-deb --ctrl-tarfile '\(deb.path)' | tar -xOf - ./md5sums"])
        return md5sums.stdout.split(separator: "\n").filter {
            $0.hasSuffix(" usr/lib/mediscope/mediscope") || ($0.contains(" usr/lib/mediscope/") && $0.hasSuffix(".so"))
        }.map(String.init).sorted()
    }

    /// The reference numbers of the default model for one test scan (onnxruntime on the original ONNX
    /// model, written by `make reference`): label -> probability, and the prediction.
    static func referenceResult(scan: String) throws -> (probabilities: [String: Double], prediction: String) {
        let file = Repository.root.appendingPathComponent("Tests/Artifacts/reference/default.json")
        let data = try Data(contentsOf: file)
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "run `make reference`")
        let images = try #require(json["images"] as? [[String: Any]])
        let image = try #require(images.first { ($0["path"] as? String)?.hasSuffix("/" + scan) == true })
        let result = try #require((image["results"] as? [[String: Any]])?.first { $0["id"] as? String == "brain-tumor-vgg16" })
        return (try #require(result["probabilities"] as? [String: Double]), try #require(result["prediction"] as? String))
    }

    // MARK: - the package file

    @Test func theControlFileDependsOnDebiansLibrariesByNameAndNginx() throws {
        let deb = try Self.builtPackage()
        let depends = try Self.run("/usr/bin/dpkg-deb", ["-f", deb.path, "Depends"])
        #expect(depends.status == 0, "\(depends.stderr)")
        let names = Set(depends.stdout.split(separator: ",").map { $0.trimmingCharacters(in: .whitespacesAndNewlines).prefix { $0 != " " } }.map(String.init))
        for package in ["libtorch1.13", "libdcmtk17", "libjpeg62-turbo", "libpng16-16", "libwebp7", "libfcgi0ldbl", "libcurl4",
                        "libargon2-1", "libsqlite3-0", "nginx", "adduser", "logrotate", "ssl-cert"] {
            #expect(names.contains(package), "Depends: \(depends.stdout)")
        }
        let conffiles = try Self.run("/bin/sh", ["-c", "dpkg-deb --ctrl-tarfile '\(deb.path)' | tar -xOf - ./conffiles"])
        for file in ["/etc/mediscope/mediscope.json", "/etc/default/mediscope", "/etc/logrotate.d/mediscope",
                     "/etc/nginx/sites-available/mediscope", "/etc/nginx/snippets/mediscope/mediscope-locations.conf"] {
            #expect(conffiles.stdout.split(separator: "\n").contains { $0 == file }, "conffiles: \(conffiles.stdout)")
        }
    }

    @Test func lintianReportsNoErrorsOrWarningsAndEveryOverrideIsUsed() throws {
        let deb = try Self.builtPackage()
        // -I: info tags too, so that an override that no longer matches anything ("unused-override") shows.
        let lintian = try Self.run("/usr/bin/lintian", ["-I", "--fail-on", "error,warning", deb.path], timeout: 600)
        let tags = lintian.stdout.split(separator: "\n").filter { $0.hasPrefix("E:") || $0.hasPrefix("W:") || $0.contains("unused-override") || $0.contains("mismatched-override") }
        #expect(lintian.status == 0 && tags.isEmpty, "\(lintian.stdout)\n\(lintian.stderr)")
        let overrides = try String(contentsOf: Repository.root.appendingPathComponent("deploy/debian/mediscope.lintian-overrides"), encoding: .utf8)
        // Each override says why, in a comment right above it (or above the group of tags it belongs to).
        var reasoned = false
        for line in overrides.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("#") { reasoned = true } else if line.isEmpty { reasoned = false } else {
                #expect(reasoned, "lintian override without a reason above it: \(line)")
            }
        }
    }

    // MARK: - installed in a clean Debian 12

    @Test(.timeLimit(.minutes(40)))
    func installServeUpgradeRemoveAndPurgeInACleanDebian12() throws {
        let deb = try Self.builtPackage()
        let version = try Self.version()
        let reference = try Self.referenceResult(scan: "scan_baseline.jpg")
        let started = Date()
        var timings: [String] = []
        func lap(_ what: String) { timings.append("\(what) \(Int(Date().timeIntervalSince(started)))s") }

        let chroot = Chroot()
        defer {
            chroot.cleanup()
            print("PackageInstallTests: \(timings.joined(separator: ", "))")
        }
        let prepared = try chroot.script(["prepare", chroot.work.path], timeout: 1200)
        try #require(prepared.status == 0, "a clean Debian 12 root: \(prepared.stderr)")
        lap("root ready")

        // ---------------------------------------------------------------- install
        let install = try chroot.aptInstall(deb)
        try #require(install.status == 0, "apt-get install ./\(deb.lastPathComponent):\n\(install.stdout.suffix(3000))\n\(install.stderr)")
        lap("installed")
        #expect(try chroot.run(["dpkg-query", "-W", "-f=${Status} ${Version}", "mediscope"]).stdout == "install ok installed \(version)")
        // Debian's own nginx site is enabled, so the package leaves its own for the admin to enable, and says how.
        #expect(!chroot.exists("/etc/nginx/sites-enabled/mediscope") && install.stdout.contains("ln -s ../sites-available/mediscope /etc/nginx/sites-enabled/"))

        // The program finds every library: Debian's, or the Swift runtime beside it; nothing from /opt.
        let runtime = try chroot.run(["ldd", "/usr/lib/mediscope/mediscope"])
        #expect(runtime.stdout.contains("libswiftCore.so => /usr/lib/mediscope/libswiftCore.so"), "\(runtime.stdout)")
        for binary in ["/usr/lib/mediscope/mediscope", "/usr/lib/mediscope/libMediscopeTorch.so"] {
            let ldd = try chroot.run(["ldd", binary])
            let libraries = ldd.stdout.split(separator: "\n").compactMap { line -> String? in
                let parts = line.split(separator: " ")
                return parts.count >= 3 && parts[1] == "=>" ? String(parts[2]) : nil
            }
            #expect(ldd.status == 0 && !ldd.stdout.contains("not found") && !libraries.isEmpty, "\(binary): \(ldd.stdout)")
            for library in libraries {
                #expect(["/lib/", "/lib64/", "/usr/lib/"].contains { library.hasPrefix($0) }, "\(binary) loads \(library)")
            }
        }

        // The user, nginx's membership, the folders and the conffile's mode.
        #expect(try chroot.run(["id", "-nG", "www-data"]).stdout.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.contains("mediscope"))
        let modes = try chroot.run(["stat", "-c", "%n %U:%G %a", "/var/lib/mediscope", "/var/log/mediscope", "/etc/mediscope/mediscope.json"])
        #expect(modes.stdout == "/var/lib/mediscope mediscope:mediscope 750\n/var/log/mediscope mediscope:mediscope 750\n/etc/mediscope/mediscope.json root:mediscope 640\n",
                "\(modes.stdout)")

        // The installed units, as systemd reads them (the host's systemd-analyze on the root's files).
        for unit in ["mediscope.service", "mediscope-inference.socket", "mediscope-io.socket", "mediscope-backup.service",
                     "mediscope-backup.timer", "mediscope-swap.service"] {
            let verify = try Self.run("/usr/bin/systemd-analyze", ["verify", "--root=\(chroot.root.path)", unit])
            #expect(verify.status == 0 && verify.stderr.isEmpty && verify.stdout.isEmpty, "systemd-analyze verify \(unit): \(verify.stdout)\(verify.stderr)")
        }
        #expect(chroot.exists("/etc/systemd/system/multi-user.target.wants/mediscope.service")
                && chroot.exists("/etc/systemd/system/sockets.target.wants/mediscope-inference.socket")
                && chroot.exists("/etc/systemd/system/sockets.target.wants/mediscope-io.socket")
                && chroot.exists("/etc/systemd/system/timers.target.wants/mediscope-backup.timer")
                && chroot.exists("/etc/systemd/system/multi-user.target.wants/mediscope-swap.service"), "units enabled by the package")

        // ---------------------------------------------------------------- the admin's steps
        // The documented step (docs/install.md) to serve the site, on free loopback ports: the root shares
        // the host's network, so the site's listen lines are edited (a conffile: upgrades keep them).
        let http = try Self.freePort()
        var https = try Self.freePort()
        while https == http { https = try Self.freePort() }
        #expect(try chroot.run(["rm", "/etc/nginx/sites-enabled/default"]).status == 0)
        #expect(try chroot.run(["ln", "-s", "../sites-available/mediscope", "/etc/nginx/sites-enabled/"]).status == 0)
        try chroot.edit("/etc/nginx/sites-available/mediscope") { site in
            site.split(separator: "\n", omittingEmptySubsequences: false).compactMap { line -> String? in
                switch line.trimmingCharacters(in: .whitespaces) {
                case "listen 80;": return "    listen 127.0.0.1:\(http);"
                case "listen 443 ssl http2;": return "    listen 127.0.0.1:\(https) ssl http2;"
                case "listen [::]:80;", "listen [::]:443 ssl http2;": return nil
                default: return String(line)
                }
            }.joined(separator: "\n")
        }
        let institution = "St Package Hospital \(UUID().uuidString.prefix(6))"
        try chroot.edit("/etc/mediscope/mediscope.json") { $0.replacingOccurrences(of: #""institution": """#, with: #""institution": "\#(institution)""#) }

        let start = try chroot.script(["start", chroot.work.path], timeout: 180)
        try #require(start.status == 0, "mediscope and nginx as their units start them: \(start.stderr)")
        let base = "https://127.0.0.1:\(https)"
        var ready = Reply(status: 0, body: Data(), headers: "")
        let readyBy = Date().addingTimeInterval(180)
        repeat {
            ready = try Self.curl(["\(base)/api/ready"])
            if ready.status == 200 { break }
            Thread.sleep(forTimeInterval: 0.2)
        } while Date() < readyBy
        try #require(ready.status == 200, "GET /api/ready through the installed site: \(ready.status) \(ready.text)\n\(chroot.read("/var/log/mediscope/mediscope.log").suffix(2000))")
        lap("serving")
        let redirect = try Self.curl(["http://127.0.0.1:\(http)/dashboard?x=1"])
        #expect(redirect.status == 301 && redirect.header("Location") == "https://127.0.0.1/dashboard?x=1", "\(redirect.headers)")

        // The first clinician, made with the installed command as root (it runs as the service's user).
        let password = "package-test-\(UUID().uuidString.prefix(12))"
        let add = try chroot.run(["mediscope", "user", "add", "doctor", "--role", "clinician"], input: password + "\n")
        #expect(add.status == 0 && add.stdout.contains("added doctor"), "\(add.stdout)\(add.stderr)")
        #expect(try chroot.run(["stat", "-c", "%U %a", "/var/lib/mediscope/store/accounts.sqlite"]).stdout == "mediscope 600\n")

        let jarFolder = TemporaryFolder("mediscope-package-jar")
        let jar = jarFolder.appending("cookies")
        let session = try Self.curl(["-c", jar.path, "-H", "Content-Type: application/json",
                                     "--data", #"{"username":"doctor","password":"\#(password)"}"#, "\(base)/api/session"])
        let csrf = try #require(session.json?["csrfToken"] as? String, "sign-in: \(session.status) \(session.text)")
        let patient = "PKG-\(UUID().uuidString.prefix(10))"
        let scan = Repository.root.appendingPathComponent("Tests/Artifacts/reference/scans/scan_baseline.jpg")
        let upload = try Self.curl(["-b", jar.path, "-H", "X-CSRF-Token: \(csrf)", "-H", "Origin: \(base)",
                                    "-F", "image=@\(scan.path)", "-F", "patient_id=\(patient)", "-F", "modality=MRI", "\(base)/api/analyses"])
        try #require(upload.status == 201, "upload: \(upload.status) \(upload.text.prefix(600))")
        let analysis = try #require(upload.json)
        let id = try #require(analysis["id"] as? String)
        let result = try #require((analysis["results"] as? [[String: Any]])?.first { $0["id"] as? String == "brain-tumor-vgg16" })
        #expect(result["prediction"] as? String == reference.prediction)
        for p in try #require(result["probabilities"] as? [[String: Any]]) {
            let label = try #require(p["label"] as? String)
            let expected = try #require(reference.probabilities[label])
            #expect(abs((p["probability"] as? Double ?? .nan) - expected) < 1e-4, "P(\(label)) vs onnxruntime's \(expected)")
        }
        lap("analysed")

        // nginx sends the images itself (X-Accel-Redirect) through the group: files 0640, no other reader.
        let scanURL = try #require((analysis["scan"] as? [String: Any])?["url"] as? String)
        let heatmapURL = try #require((result["heatmap"] as? [String: Any])?["url"] as? String)
        for (url, type) in [(scanURL, "image/jpeg"), (heatmapURL, "image/webp")] {
            let image = try Self.curl(["-b", jar.path, base + url])
            #expect(image.status == 200 && image.header("Content-Type") == type && image.body.count > 100, "\(url): \(image.status) \(image.headers)")
        }
        #expect(try chroot.sh("find /var/lib/mediscope/store/blobs -type f -printf '%m\\n' | sort -u").stdout == "640\n")
        // The edited conffile is what the service reads.
        let report = try Self.curl(["-b", jar.path, "\(base)/analyses/\(id)/report"])
        #expect(report.status == 200 && report.text.contains(institution), "report: \(report.status)")

        // ---------------------------------------------------------------- logs and their rotation
        let rotateDebug = try chroot.run(["logrotate", "-d", "-f", "/etc/logrotate.d/mediscope"])
        let debugText = rotateDebug.stdout + rotateDebug.stderr
        for expected in ["rotating pattern: /var/log/mediscope/*.log", "considering log /var/log/mediscope/mediscope.log",
                         "rotating pattern: /var/log/nginx/mediscope/*.log", "considering log /var/log/nginx/mediscope/access.log",
                         #"kill -USR1 "$(cat /run/mediscope/mediscope.pid)""#, #"kill -USR1 "$(cat /run/nginx.pid)""#] {
            #expect(debugText.contains(expected), "logrotate -d names \(expected):\n\(debugText)")
        }
        #expect(rotateDebug.status == 0 && !debugText.contains("error:"), "\(debugText)")
        // Every configuration together (Debian's nginx rotation included): no log named twice, no error.
        let all = try chroot.run(["logrotate", "-d", "/etc/logrotate.conf"])
        #expect(all.status == 0 && !(all.stdout + all.stderr).contains("error:"), "\(all.stdout)\(all.stderr)")
        // A real rotation: both reopen their logs on the post-rotate signal and write to the new files.
        let rotate = try chroot.run(["logrotate", "-f", "/etc/logrotate.d/mediscope"])
        #expect(rotate.status == 0, "\(rotate.stdout)\(rotate.stderr)")
        let reopenedBy = Date().addingTimeInterval(30)
        var reopened = false
        repeat {
            _ = try Self.curl(["\(base)/api/health"])
            let access = (try? FileManager.default.attributesOfItem(atPath: chroot.path("/var/log/nginx/mediscope/access.log"))[.size] as? Int) ?? 0
            let log = (try? FileManager.default.attributesOfItem(atPath: chroot.path("/var/log/mediscope/mediscope.log"))[.size] as? Int) ?? 0
            reopened = access > 0 && log > 0
            if !reopened { Thread.sleep(forTimeInterval: 0.2) }
        } while !reopened && Date() < reopenedBy
        #expect(reopened && chroot.exists("/var/log/mediscope/mediscope.log.1") && chroot.exists("/var/log/nginx/mediscope/access.log.1"),
                "after logrotate -f, new requests are logged in the new files: \(chroot.read("/var/log/nginx/error.log").suffix(1000))")
        // No patient identifier in any log.
        let logs = try chroot.sh("cat /var/log/mediscope/* /var/log/nginx/mediscope/* /var/log/nginx/*.log 2>/dev/null; true").stdout
        #expect(!logs.isEmpty && !logs.contains(patient), "a log holds the patient id")

        // ---------------------------------------------------------------- the swap file
        let hostSwaps = (try? String(contentsOfFile: "/proc/swaps", encoding: .utf8))?.split(separator: "\n").dropFirst() ?? []
        let swapFile = "/var/swap.mediscope"
        try chroot.edit("/etc/default/mediscope") { $0.replacingOccurrences(of: "SWAP_SIZE=1G", with: "SWAP_SIZE=64M") }
        // As mediscope-swap.service runs it: its EnvironmentFile, then ExecStart.
        let swapStart = "set -a; . /etc/default/mediscope; set +a; exec /usr/lib/mediscope/swap.sh start"
        var madeSwap = false
        if hostSwaps.isEmpty {
            let on = try chroot.sh(swapStart)
            let table = (try? String(contentsOfFile: "/proc/swaps", encoding: .utf8)) ?? ""
            #expect(on.status == 0 && table.contains(chroot.path(swapFile)), "swap.sh start: \(on.stdout)\(on.stderr)\n\(table)")
            madeSwap = table.contains(chroot.path(swapFile))
            let again = try chroot.sh(swapStart)
            #expect(again.status == 0 && again.stdout.contains("already on"), "\(again.stdout)")
            // With swap on, another file is never made.
            let other = try chroot.sh("set -a; . /etc/default/mediscope; SWAP_FILE=/var/other.swap; exec /usr/lib/mediscope/swap.sh start")
            #expect(other.status == 0 && other.stdout.contains("leaving it alone") && !chroot.exists("/var/other.swap"), "\(other.stdout)")
        } else {
            // The host has swap of its own: it is left alone, and what start would do on a machine
            // without swap is checked by its dry run.
            let alone = try chroot.sh(swapStart)
            #expect(alone.status == 0 && alone.stdout.contains("leaving it alone") && !chroot.exists(swapFile), "\(alone.stdout)")
            let dry = try chroot.sh("set -a; . /etc/default/mediscope; SWAP_PROC_SWAPS=/dev/null; exec /usr/lib/mediscope/swap.sh start --dry-run")
            for command in ["fallocate -l 67108864 \(swapFile)", "mkswap -L mediscope \(swapFile)", "swapon \(swapFile)"] {
                #expect(dry.stdout.contains("would run: \(command)"), "\(dry.stdout)\(dry.stderr)")
            }
            #expect(!chroot.exists(swapFile))
        }
        lap("logs and swap checked")

        // ---------------------------------------------------------------- upgrade
        let newerVersion = version + "+test1"
        let newerFolder = TemporaryFolder("mediscope-package-newer")
        let built = try Self.run("/bin/bash", [Repository.root.appendingPathComponent("deploy/debian/build-deb.sh").path,
                                               "--version", newerVersion, "--out", newerFolder.path], timeout: 900)
        try #require(built.status == 0, "a newer build: \(built.stderr)")
        lap("newer build made")
        let oldMaster = try #require(chroot.masterPID)
        let newerDeb = newerFolder.appending("mediscope_\(newerVersion)_amd64.deb")
        let programDigests = try Self.programDigests(deb)
        #expect(programDigests.count > 10, "the binary, the shim and the Swift runtime in md5sums: \(programDigests)")
        let sameProgram = try programDigests == Self.programDigests(newerDeb)
        let upgrade = try chroot.aptInstall(newerDeb)
        try #require(upgrade.status == 0, "upgrade: \(upgrade.stdout.suffix(3000))\n\(upgrade.stderr)")
        lap("upgraded")
        #expect(try chroot.run(["dpkg-query", "-W", "-f=${Version}", "mediscope"]).stdout == newerVersion)
        // make test packs the same release build twice: the same program, so a reload, with no failed request,
        // is enough. (A release build made between `make deb` and this test is a new program: a restart.)
        let decision = sameProgram ? "the program is unchanged, so mediscope.service is reloaded" : "a new program, so mediscope.service is restarted"
        #expect(upgrade.stdout.contains(decision), "\(upgrade.stdout.suffix(2000))")
        #expect(chroot.read("/etc/mediscope/mediscope.json").contains(institution), "the edited mediscope.json was kept")
        #expect(chroot.read("/etc/nginx/sites-available/mediscope").contains("listen 127.0.0.1:\(https) ssl http2;"), "the edited site was kept")
        #expect(chroot.read("/etc/default/mediscope").contains("SWAP_SIZE=64M"))
        #expect(!chroot.exists("/etc/mediscope/mediscope.json.dpkg-dist") && !chroot.exists("/etc/mediscope/mediscope.json.dpkg-new"))
        #expect(chroot.masterPID == oldMaster && kill(oldMaster, 0) == 0, "the service kept running through the upgrade")

        // What `systemctl reload mediscope` does (the unit's ExecReload): a new generation of workers from
        // the upgraded files takes over while requests keep being answered.
        let before = chroot.children(of: oldMaster)
        let reload = try chroot.script(["reload", chroot.work.path])
        #expect(reload.status == 0, "\(reload.stderr)")
        var failures: [Int] = []
        var answered = 0
        let newGenerationBy = Date().addingTimeInterval(120)
        var replaced = false
        repeat {
            let health = try Self.curl(["\(base)/api/health"])
            answered += 1
            if health.status != 200 { failures.append(health.status) }
            let now = chroot.children(of: oldMaster)
            replaced = now.isDisjoint(with: before) && now.count >= before.count
        } while !replaced && Date() < newGenerationBy
        #expect(replaced && failures.isEmpty, "reload: \(answered) requests, failed: \(failures)")
        let kept = try Self.curl(["-b", jar.path, "\(base)/api/analyses/\(id)"])
        #expect(kept.status == 200 && (kept.json?["patient"] as? [String: Any])?["patientId"] as? String == patient, "the record after the upgrade: \(kept.status)")
        let list = try Self.curl(["-b", jar.path, "\(base)/api/analyses"])
        #expect((list.json?["items"] as? [Any])?.count == 1)

        // ---------------------------------------------------------------- remove, then purge
        let stop = try chroot.script(["stop", chroot.work.path], timeout: 120)
        #expect(stop.status == 0, "\(stop.stderr)")
        let remove = try chroot.run(["apt-get", "remove", "-y", "-q", "mediscope"], timeout: 600)
        #expect(remove.status == 0, "\(remove.stdout)\(remove.stderr)")
        #expect(!chroot.exists("/usr/lib/mediscope/mediscope") && !chroot.exists("/usr/bin/mediscope"))
        #expect(chroot.exists("/var/lib/mediscope/store/mediscope.sqlite") && chroot.exists("/var/lib/mediscope/store/accounts.sqlite"), "state kept on remove")
        #expect(chroot.read("/etc/mediscope/mediscope.json").contains(institution), "conffiles kept on remove")
        #expect(try chroot.run(["getent", "passwd", "mediscope"]).status == 0)
        if madeSwap {
            let table = (try? String(contentsOfFile: "/proc/swaps", encoding: .utf8)) ?? ""
            #expect(!table.contains(chroot.path(swapFile)) && !chroot.exists(swapFile), "removal turned off and deleted the package's swap file")
        }
        let purge = try chroot.run(["apt-get", "purge", "-y", "-q", "mediscope"], timeout: 600)
        #expect(purge.status == 0, "\(purge.stdout)\(purge.stderr)")
        for gone in ["/var/lib/mediscope", "/var/log/mediscope", "/var/log/nginx/mediscope", "/etc/mediscope",
                     "/etc/nginx/sites-available/mediscope", "/etc/nginx/sites-enabled/mediscope", "/etc/default/mediscope"] {
            #expect(!chroot.exists(gone) && (try? FileManager.default.destinationOfSymbolicLink(atPath: chroot.path(gone))) == nil, "\(gone) after purge")
        }
        #expect(try chroot.run(["getent", "passwd", "mediscope"]).status != 0 && (try chroot.run(["getent", "group", "mediscope"])).status != 0)
        #expect(try chroot.run(["dpkg-statoverride", "--list", "/etc/mediscope/mediscope.json"]).status != 0)
        #expect(try chroot.run(["nginx", "-t"]).status == 0, "nginx's configuration still loads after the purge")
        lap("removed and purged")

        // ---------------------------------------------------------------- a fresh install on a bare nginx
        // sites-enabled is empty now (Debian's default was taken out above): the package enables its site.
        let again = try chroot.aptInstall(newerDeb, timeout: 600)
        #expect(again.status == 0 && again.stdout.contains("enabled the nginx site"), "\(again.stdout.suffix(2000))\(again.stderr)")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: chroot.path("/etc/nginx/sites-enabled/mediscope"))) == "../sites-available/mediscope")
        #expect(try chroot.run(["nginx", "-t"]).status == 0)
        let users = try chroot.run(["mediscope", "user", "list"])
        #expect(users.status == 0 && !users.stdout.contains("doctor"), "a purge leaves no account behind: \(users.stdout)\(users.stderr)")
        lap("reinstalled")
        withExtendedLifetime((jarFolder, newerFolder)) {}
    }
}
