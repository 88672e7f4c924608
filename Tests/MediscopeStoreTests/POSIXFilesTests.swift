import Foundation
import Testing
import TestSupport
@testable import MediscopeStore

/// `POSIXFiles.readFile`, which reads received DICOM instances and stored images in one buffer.
@Suite struct POSIXFilesTests {
    @Test func readsAWholeFileAnEmptyOneAndNothingForAMissingOne() throws {
        let folder = TemporaryFolder("mediscope-posix")
        // Larger than a pipe or page buffer, so read(2) may return it in parts.
        let bytes = (0..<3_000_001).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        #expect(try POSIXFiles.readFile(folder.file("big", bytes).path, what: "test") == bytes)
        #expect(try POSIXFiles.readFile(folder.file("empty", [UInt8]()).path, what: "test") == [])
        #expect(try POSIXFiles.readFile(folder.url.appendingPathComponent("missing").path, what: "test") == nil)
    }

    @Test func aFolderIsAnErrorThatNamesWhatWasRead() throws {
        let folder = TemporaryFolder("mediscope-posix")
        let error = #expect(throws: POSIXFailure.self) { try POSIXFiles.readFile(folder.url.path, what: "instance") }
        #expect(error?.what == "read instance" && error?.code == EISDIR)
    }
}
