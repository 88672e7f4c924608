import Foundation
import ImageTestKit
import MediscopeImaging
import Testing
import TestSupport

/// `mediscope analyze`, run as a user would: the built executable in a child process.
@Suite struct AnalyzeCommandTests {
    let dir = TemporaryFolder()

    func analyze(_ args: [String]) async throws -> ProcessResult {
        try await runProcess(Repository.executable, ["analyze", "--manifest", Repository.tinyManifest.path, "--threads", "1"] + args)
    }

    @Test func jsonCarriesProbabilitiesGradCAMAndTimings() async throws {
        let image = dir.file("scan one.png", try ImageEncoder.png(syntheticScan(width: 70, height: 50)))
        let out = dir.appending("out")
        let run = try await analyze(["--json", "--out", out.path, image.path])
        #expect(run.status == 0, "\(run.stderr)")

        let json = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
        let images = try #require(json["images"] as? [[String: Any]])
        #expect(images.count == 1)
        let results = try #require(images[0]["results"] as? [[String: Any]])
        #expect(results.map { $0["id"] as? String } == ["tiny", "not-beta", "tiny-gray"])
        for result in results {
            let probabilities = try #require(result["probabilities"] as? [[String: Any]])
            let total = probabilities.compactMap { $0["probability"] as? Double }.reduce(0, +)
            #expect(abs(total - 1) < 1e-6)
            let cam = try #require(result["gradCAM"] as? [String: Any])
            #expect(cam["width"] as? Int == 8 && cam["height"] as? Int == 8)
            #expect((cam["values"] as? [Double])?.count == 64)
            #expect(result["prediction"] is String && result["confidence"] is Double)
        }
        let timings = try #require(images[0]["timings"] as? [String: Any])
        for stage in ["decode", "preprocess", "forward", "gradCAM", "encode"] {
            #expect((timings[stage] as? Double ?? -1) >= 0, "stage \(stage)")
        }
        // The scan and one overlay per result, decodable, at the scan's display size.
        let files = try #require(images[0]["files"] as? [String])
        #expect(files.count == 1 + results.count)
        for file in files {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
            #expect(file.hasPrefix(out.path))
            if ImageDecoder.sniff(bytes) != .webp {
                let decoded = try ImageDecoder.decode(bytes)
                #expect((decoded.width, decoded.height) == (70, 50))
            }
        }
    }

    @Test func textOutputNamesEveryResult() async throws {
        let image = dir.file("scan.jpg", try ImageEncoder.jpeg(syntheticScan(width: 40, height: 40), quality: 90))
        let run = try await analyze(["--no-images", image.path])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("scan.jpg (40x40)"))
        #expect(run.stdout.contains("confidence"))
        #expect(run.stdout.contains("forward"))
        #expect(!FileManager.default.fileExists(atPath: dir.appending("scan.scan.jpg").path))
    }

    @Test func badInputExitsTwoNamingTheFileAndStillAnalysesTheRest() async throws {
        let good = dir.file("good.png", try ImageEncoder.png(syntheticScan(width: 32, height: 32)))
        let bad = dir.file("notes.jpg", "patient notes, not an image")
        let run = try await analyze(["--no-images", bad.path, good.path])
        #expect(run.status == 2)
        #expect(run.stderr.contains("notes.jpg"))
        #expect(run.stdout.contains("good.png (32x32)"))
    }

    /// The CLI meets the same decoder budgets as the server: a scan bomb is refused, not decoded for a minute.
    @Test func scanBombAndUnsupportedJPEGsExitTwoWithTheReason() async throws {
        let bomb = dir.file("bomb.jpg", try ImageBuilders.scanBomb(width: 7071, height: 7071, scans: 10_000))
        let run = try await analyze(["--no-images", bomb.path])
        #expect(run.status == 2)
        #expect(run.stderr.contains("bomb.jpg") && run.stderr.contains("too many progressive scans"))
    }

    /// Issue 19: two files in one run, the second a frame that codes 16x16 of 512x512: it is refused with
    /// the reason, and the first's images are the first's alone (nothing of it reaches the second).
    @Test func aShortFrameAfterAScanIsRefusedAndLeaksNothing() async throws {
        let first = dir.file("A.dcm", try HostileDicom.jpegFile(width: 512, height: 512, seed: 1))
        let second = dir.file("B.dcm", try HostileDicom.shortJPEGFrame())
        let out = dir.appending("short")
        let run = try await analyze(["--out", out.path, first.path, second.path])
        #expect(run.status == 2)
        #expect(run.stderr.contains("B.dcm") && run.stderr.contains("16x16") && run.stderr.contains("512x512"), "\(run.stderr)")
        let written = try FileManager.default.contentsOfDirectory(atPath: out.path)
        #expect(!written.isEmpty && written.allSatisfy { $0.hasPrefix("A") }, "\(written)")
    }

    /// Issue 19: hostile RLE (offsets past the fragment, fragments shorter than the header) is refused by
    /// the command line too, each file named, none crashing the process.
    @Test func hostileRLEFilesExitTwoWithoutACrash() async throws {
        let files = HostileDicom.hostileRLE().enumerated().map { dir.file("rle\($0.offset).dcm", $0.element.file).path }
        let run = try await analyze(["--no-images"] + files)
        #expect(run.status == 2, "\(run.stderr)")
        for i in files.indices { #expect(run.stderr.contains("rle\(i).dcm")) }
    }

    /// Issue 19: a NaN window and a Rescale Slope of 0 are analysed as the file without them; `--json` writes
    /// valid JSON (it crashed with exit 132 on NaN).
    @Test func notANumberWindowAndSlopeZeroGiveTheControlsNumbers() async throws {
        let image = HostileDicom.pattern(width: 64, height: 64, seed: 7)
        let control = dir.file("control.dcm", HostileDicom.monochrome16(image))
        let hostile = dir.file("nan.dcm", HostileDicom.monochrome16(image, extra: [
            .text(0x0028, 0x1050, "DS", "NaN"), .text(0x0028, 0x1051, "DS", "NaN"),
            .text(0x0028, 0x1052, "DS", "0"), .text(0x0028, 0x1053, "DS", "0")]))
        func probabilities(_ file: URL) async throws -> [[String: Any]] {
            let run = try await analyze(["--no-images", "--json", file.path])
            #expect(run.status == 0, "\(run.stderr)")
            let json = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
            let images = try #require(json?["images"] as? [[String: Any]])
            return try #require(images.first?["results"] as? [[String: Any]])
        }
        let a = try await probabilities(control), b = try await probabilities(hostile)
        #expect(a.count == b.count && !a.isEmpty)
        for (x, y) in zip(a, b) {
            #expect(x["prediction"] as? String == y["prediction"] as? String)
            #expect((x["probabilities"] as? [[String: Any]])?.compactMap { $0["probability"] as? Double }
                    == (y["probabilities"] as? [[String: Any]])?.compactMap { $0["probability"] as? Double })
        }
    }

    @Test func orientedScanSaysItWasTurned() async throws {
        let sideways = syntheticScan(width: 32, height: 20).applying(.rotated90CounterClockwise)
        let file = dir.file("turned.png", ImageBuilders.png(try ImageEncoder.png(sideways),
                                                            inserting: [ImageBuilders.chunk("eXIf", ImageBuilders.tiff(orientation: 6))]))
        let run = try await analyze(["--no-images", file.path])
        #expect(run.status == 0)
        #expect(run.stdout.contains("turned.png (32x20, EXIF orientation 6: rotated 90° clockwise)"))
        let json = try await analyze(["--no-images", "--json", file.path])
        #expect(json.stdout.contains("\"exifOrientation\" : 6"))
    }

    @Test func missingImageExitsTwo() async throws {
        let run = try await analyze([dir.appending("nope.jpg").path])
        #expect(run.status == 2)
        #expect(run.stderr.contains("nope.jpg"))
    }

    @Test func modelProblemExitsThree() async throws {
        let manifest = try String(contentsOf: Repository.tinyManifest, encoding: .utf8)
        let broken = dir.file("manifest.json", manifest.replacingOccurrences(of: ".pt\"", with: ".missing.pt\""))
        let image = dir.file("scan.png", try ImageEncoder.png(syntheticScan(width: 32, height: 32)))
        let run = try await runProcess(Repository.executable, ["analyze", "--manifest", broken.path, image.path])
        #expect(run.status == 3)
        #expect(run.stderr.contains("does not exist"))
    }

    @Test func unreadableManifestExitsThree() async throws {
        let image = dir.file("scan.png", try ImageEncoder.png(syntheticScan(width: 32, height: 32)))
        let run = try await runProcess(Repository.executable, ["analyze", "--manifest", dir.file("m.json", "[]").path, image.path])
        #expect(run.status == 3)
    }

    // MARK: Issue 21

    /// Runs `mediscope analyze` (tiny models) for at most `deadline` seconds; a run still going then is
    /// killed and reported as timed out, so a hang fails the test instead of holding it forever.
    func analyzeWithin(_ deadline: Double, _ args: [String]) async throws -> ProcessResult {
        try await runProcess(Repository.executable, ["analyze", "--manifest", Repository.tinyManifest.path] + args, timeout: deadline)
    }

    /// Two files named IM000001 from two series with one --out wrote the same image names: the second's
    /// images replaced the first's, and the first's result listed them. Each now keeps its own, named
    /// after its folder, and the command says so.
    @Test func twoFilesOfOneNameFromTwoSeriesKeepTheirOwnImages() async throws {
        for folder in ["seriesA", "seriesB"] {
            try FileManager.default.createDirectory(at: dir.appending(folder), withIntermediateDirectories: true)
        }
        let a = dir.file("seriesA/IM000001", HostileDicom.monochrome16(HostileDicom.pattern(width: 64, height: 64, seed: 1)))
        let b = dir.file("seriesB/IM000001", HostileDicom.monochrome16(HostileDicom.pattern(width: 48, height: 40, seed: 5)))
        let out = dir.appending("out")
        let run = try await analyzeWithin(300, ["--threads", "1", "--json", "--out", out.path, a.path, b.path])
        #expect(run.status == 0, "\(run.stderr)")
        let images = try #require((try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])?["images"] as? [[String: Any]])
        let files = images.map { Set($0["files"] as? [String] ?? []) }
        #expect(files.count == 2 && !files[0].isEmpty && files[0].count == files[1].count && files[0].isDisjoint(with: files[1]), "\(files)")
        for (i, (folder, size)) in [("seriesA", (64, 64)), ("seriesB", (48, 40))].enumerated() where i < files.count {
            #expect(files[i].allSatisfy { URL(fileURLWithPath: $0).lastPathComponent.hasPrefix("\(folder)-IM000001.") }, "\(files[i])")
            let scan = try #require(files[i].first { $0.hasSuffix(".scan.jpg") })
            let decoded = try ImageDecoder.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: scan))))
            #expect((decoded.width, decoded.height) == size, "\(scan) is the scan of \(folder)")
        }
        #expect(run.stderr.contains("are named seriesA-IM000001.*") && run.stderr.contains("are named seriesB-IM000001.*"), "\(run.stderr)")
        // Files whose names do not clash keep their plain names.
        let plain = dir.file("plain.png", try ImageEncoder.png(syntheticScan(width: 32, height: 32)))
        let single = try await analyzeWithin(300, ["--threads", "1", "--out", out.path, plain.path])
        #expect(single.status == 0 && FileManager.default.fileExists(atPath: out.appendingPathComponent("plain.scan.jpg").path))
    }

    /// Names that stay the same even with their folders' names (two folders called "s") are refused before
    /// anything is analysed or written, naming both files.
    @Test func namesThatStayAmbiguousAreRefusedBeforeAnythingRuns() async throws {
        for folder in ["x/s", "y/s"] {
            try FileManager.default.createDirectory(at: dir.appending(folder), withIntermediateDirectories: true)
        }
        let image = try ImageEncoder.png(syntheticScan(width: 32, height: 32))
        let a = dir.file("x/s/IM1", image), b = dir.file("y/s/IM1", try ImageEncoder.png(syntheticScan(width: 40, height: 32, seed: 3)))
        let out = dir.appending("ambiguous")
        let run = try await analyzeWithin(300, ["--threads", "1", "--out", out.path, a.path, b.path])
        #expect(run.status == 2, "\(run.stderr)")
        #expect(run.stderr.contains(a.path) && run.stderr.contains(b.path) && run.stderr.contains("nothing was analysed"), "\(run.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.path), "nothing was written")
        // Without images there is nothing to clash.
        #expect(try await analyzeWithin(300, ["--threads", "1", "--no-images", a.path, b.path]).status == 0)
    }

    /// `--threads 100000` never finished starting its threads. More threads than cores are bounded by the
    /// cores, with a message.
    @Test func threadsAreBoundedByTheCores() async throws {
        let image = dir.file("threads.png", try ImageEncoder.png(syntheticScan(width: 32, height: 32)))
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let run = try await analyzeWithin(180, ["--threads", "100000", "--no-images", image.path])
        #expect(run.status == 0 && !run.timedOut, "status \(run.status), timed out: \(run.timedOut): \(run.stderr)")
        #expect(run.stderr.contains("--threads 100000 is more than this machine's \(cores) cores; using \(cores)"), "\(run.stderr)")
        #expect(run.stdout.contains("threads.png (32x32)"))
    }
}
