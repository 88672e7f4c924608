import Foundation
import Testing
import TestSupport
@testable import MediscopeStore

/// Several worker processes share one store folder (the server pre-forks; each worker opens its own store).
/// The test binary re-runs itself as the child processes: `childWriter` does the work only when the
/// environment says so, and is skipped in a normal run.
@Suite struct MultiProcessTests {
    static let dirVariable = "MEDISCOPE_STORE_CHILD_DIR"
    static let tagVariable = "MEDISCOPE_STORE_CHILD_TAG"
    static let countVariable = "MEDISCOPE_STORE_CHILD_COUNT"
    static var isChild: Bool { ProcessInfo.processInfo.environment[dirVariable] != nil }

    static var testBinary: String {
        FileManager.default.fileExists(atPath: "/proc/self/exe")
            ? (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
            : CommandLine.arguments[0]
    }

    @Test(.enabled(if: !isChild)) func twoProcessesWritingAtOnceLoseNothing() throws {
        let folder = TemporaryFolder()
        // Create the schema first so both children race on writes, not only on the first open.
        let store = try SQLiteAnalysisStore(directory: folder.url)
        let perChild = 50
        var children: [Process] = []
        for tag in ["child-a", "child-b"] {
            let child = Process()
            child.executableURL = URL(fileURLWithPath: Self.testBinary)
            child.arguments = ["--testing-library", "swift-testing", "--filter", "childWriter"]
            var environment = ProcessInfo.processInfo.environment
            environment[Self.dirVariable] = folder.path
            environment[Self.tagVariable] = tag
            environment[Self.countVariable] = "\(perChild)"
            child.environment = environment
            child.standardOutput = FileHandle.nullDevice
            child.standardError = FileHandle.nullDevice
            try child.run()
            children.append(child)
        }
        // Release both at once.
        _ = FileManager.default.createFile(atPath: folder.path + "/go", contents: Data())
        let deadline = Date().addingTimeInterval(180)
        while children.contains(where: \.isRunning) && Date() < deadline { usleep(50_000) }
        for child in children where child.isRunning { child.terminate() }
        for child in children {
            child.waitUntilExit()
            #expect(child.terminationReason == .exit && child.terminationStatus == 0,
                    "child exited with \(child.terminationStatus)")
        }

        var records: [AnalysisRecord] = []
        var cursor: String?
        repeat {
            let page = try store.list(AnalysisQuery(organizationId: "org-mp", limit: 100, cursor: cursor))
            records += page.items
            cursor = page.nextCursor
        } while cursor != nil
        #expect(records.count == 2 * perChild)
        #expect(Set(records.map(\.id)).count == 2 * perChild)
        #expect(records.filter { $0.createdBy == "child-a" }.count == perChild)
        #expect(records.filter { $0.createdBy == "child-b" }.count == perChild)
        // Every image of every record is on disk.
        for record in records {
            #expect(store.imagePath(key: record.scan.key) != nil)
            #expect(record.results.allSatisfy { store.imagePath(key: $0.heatmap.key) != nil })
        }
        // Each child saw its own ids in increasing order (newest sorts last within a process).
        let ofA = records.filter { $0.createdBy == "child-a" }.map(\.id)
        #expect(ofA == ofA.sorted(by: >))
    }

    /// Runs only inside a child process started by the test above.
    @Test(.enabled(if: isChild)) func childWriter() throws {
        let environment = ProcessInfo.processInfo.environment
        let dir = try #require(environment[Self.dirVariable])
        let tag = try #require(environment[Self.tagVariable])
        let count = Int(environment[Self.countVariable] ?? "") ?? 50
        let deadline = Date().addingTimeInterval(30)
        while !fileExists(dir + "/go") && Date() < deadline { usleep(2_000) }
        let store = try SQLiteAnalysisStore(directory: URL(fileURLWithPath: dir))
        for i in 0..<count {
            _ = try store.create(makeAnalysis(org: "org-mp", patientId: "P-\(i)", createdBy: tag, imageSize: 4096))
        }
    }
}
