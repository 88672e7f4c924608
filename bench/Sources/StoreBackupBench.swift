// `mediscope-bench store-backup`: what `mediscope store backup` costs on stores of growing size, and
// what an upload's store step waits meanwhile. Prints the "Store backup" section of bench/RESULTS.md.
import Foundation
import MediscopeBackup
import MediscopeStore

enum StoreBackupBench {
    /// Sizes of a display-size scan (JPEG) and of each of two overlays (WebP) as the server stores them.
    static let scanBytes = 40_000, overlayBytes = 18_000

    static func randomBytes(_ n: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(n + 8)
        while bytes.count < n { withUnsafeBytes(of: generator.next() as UInt64) { bytes.append(contentsOf: $0) } }
        return Array(bytes.prefix(n))
    }

    static func analysis(_ i: Int) -> NewAnalysis {
        let scan = ImageBlob.make(bytes: randomBytes(scanBytes), contentType: "image/jpeg", width: 512, height: 512)
        let heat = (0..<2).map { _ in ImageBlob.make(bytes: randomBytes(overlayBytes), contentType: "image/webp", width: 512, height: 512) }
        let results = heat.enumerated().map { k, blob in
            StoredResult(id: "model-\(k)", model: "resnet-\(k)", title: "Model \(k)", task: "binary",
                         probabilities: [StoredProbability(label: "yes", probability: 0.75), StoredProbability(label: "no", probability: 0.25)],
                         prediction: "yes", confidence: 0.75, explainedLabel: "yes", heatmap: blob.ref)
        }
        return NewAnalysis(organizationId: "org-bench", createdBy: "user-bench",
                           patient: PatientInfo(patientId: "BENCH-\(i % 500)", name: "Bench Patient", age: 50, sex: "other",
                                                modality: "MRI", bodyPart: "brain", note: "synthetic"),
                           imageWidth: 512, imageHeight: 512, scan: scan.ref, results: results,
                           timingsMs: ["decode": 10], images: [scan] + heat)
    }

    /// What the writer thread shares with the caller.
    final class Samples: @unchecked Sendable {
        let lock = NSLock()
        var latencies: [Double] = []
        var running = true
    }

    /// Store-step latencies (ms) of creates made back to back on another thread while `body` runs.
    static func createsDuring(_ store: SQLiteAnalysisStore, _ body: () throws -> Void) rethrows -> [Double] {
        let shared = Samples()
        let writer = Thread {
            var i = 0
            while shared.lock.withLock({ shared.running }) {
                let next = analysis(1_000_000 + i)   // new images every time, as uploads bring
                let start = ContinuousClock.now
                _ = try? store.create(next)
                let took = ms(since: start)
                shared.lock.withLock { shared.latencies.append(took) }
                i += 1
            }
        }
        writer.start()
        Thread.sleep(forTimeInterval: 0.2)   // the writer is going before the work starts
        defer { shared.lock.withLock { shared.running = false }; Thread.sleep(forTimeInterval: 0.3) }
        let before = shared.lock.withLock { shared.latencies.count }
        try body()
        return shared.lock.withLock { Array(shared.latencies[before...]) }
    }

    static func folderBytes(_ path: String) -> Int {
        var total = 0
        let walker = FileManager.default.enumerator(atPath: path)
        while let relative = walker?.nextObject() as? String {
            let attributes = try? FileManager.default.attributesOfItem(atPath: path + "/" + relative)
            if attributes?[.type] as? FileAttributeType == .typeRegular { total += (attributes?[.size] as? Int) ?? 0 }
        }
        return total
    }

    static func markdown(sizes: [Int]) throws -> String {
        func f(_ x: Double) -> String { x >= 1000 ? String(format: "%.2f s", x / 1000) : String(format: "%.1f ms", x) }
        var rows: [String] = []
        for n in sizes {
            let root = FileManager.default.temporaryDirectory.appendingPathComponent("mediscope-bench-backup-\(UUID().uuidString.prefix(8))")
            let other = URL(fileURLWithPath: "/dev/shm/mediscope-bench-backup-\(UUID().uuidString.prefix(8))")
            defer { try? FileManager.default.removeItem(at: root); try? FileManager.default.removeItem(at: other) }
            let storeURL = root.appendingPathComponent("var/store")
            let store = try SQLiteAnalysisStore(directory: storeURL)
            for i in 0..<n { _ = try store.create(analysis(i)) }
            let size = folderBytes(storeURL.path)
            let alone = createsDuring(store) { Thread.sleep(forTimeInterval: 2) }

            let backup = DeploymentBackup(storeDirectory: storeURL)
            var linkedMs = 0.0
            var manifest: BackupManifest?
            let during = try createsDuring(store) {
                let start = ContinuousClock.now
                manifest = try backup.create(at: root.appendingPathComponent("backup-links"), host: "bench")
                linkedMs = ms(since: start)
            }
            var copiedMs = 0.0
            let duringCopy = try createsDuring(store) {
                let start = ContinuousClock.now
                _ = try backup.create(at: other, host: "bench")
                copiedMs = ms(since: start)
            }
            var start = ContinuousClock.now
            _ = try backup.verify(other)
            let verifyMs = ms(since: start)
            start = ContinuousClock.now
            _ = try DeploymentBackup(storeDirectory: root.appendingPathComponent("restored/store"))
                .restore(from: other, key: BackupKey.load(from: backup.keyFile))   // another machine: the key goes along
            let restoreMs = ms(since: start)

            let images = manifest?.images ?? 0
            rows.append("| \(n) | \(manifest?.analyses ?? 0) | \(images) | \(size / 1_048_576) MiB "
                        + "| \(f(median(alone))) / \(f(alone.max() ?? .nan)) (\(alone.count)) "
                        + "| \(f(linkedMs)) | \(f(median(during))) / \(f(during.max() ?? .nan)) (\(during.count)) "
                        + "| \(f(copiedMs)) | \(f(median(duringCopy))) / \(f(duringCopy.max() ?? .nan)) (\(duringCopy.count)) "
                        + "| \(f(verifyMs)) | \(f(restoreMs)) |")
        }
        return """
        <!-- begin store-backup -->
        ## Store backup

        Written by `bench/store-backup.sh` (`make bench-store-backup`): one run of `mediscope-bench store-backup`. Synthetic
        records with a \(scanBytes / 1000) kB scan and two \(overlayBytes / 1000) kB overlays each (random bytes, so every
        image is its own file). "Store step" is `SQLiteAnalysisStore.create` (images fsync'd, record committed) run back to
        back on another thread, each with new images: median / max (count), alone for 2 s, then while each backup runs
        (so the store grows by what that thread adds: "in the backup" counts what the first backup held). "Links": the backup
        on the store's file system (images hard-linked); "copy": to another file system (`/dev/shm`, every file copied
        and fsync'd). Verify and restore read the copy.

        | records made | in the backup | images | store | store step alone | backup, links | store step meanwhile | backup, copy | store step meanwhile | verify | restore |
        |---|---|---|---|---|---|---|---|---|---|---|
        \(rows.joined(separator: "\n"))

        <!-- end store-backup -->
        """
    }
}
