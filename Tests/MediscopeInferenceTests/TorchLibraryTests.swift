import Foundation
import Testing
import TestSupport
@testable import MediscopeInference

/// Finding and opening the libtorch shim (libMediscopeTorch.so), which only processes that run models open.
@Suite struct TorchLibraryTests {
    @Test func theEnvironmentNamesTheShimElseItIsBesideTheExecutableOrInTheInstalledLayout() {
        #expect(TorchLibrary.candidatePaths(environment: ["MEDISCOPE_TORCH_LIBRARY": "/opt/shim.so"]) == ["/opt/shim.so"])
        let paths = TorchLibrary.candidatePaths(environment: [:])
        #expect(paths.count == 2)
        #expect(paths.allSatisfy { $0.hasSuffix("/" + TorchLibrary.fileName) })
        #expect(paths[1].hasSuffix("/lib/mediscope/" + TorchLibrary.fileName))
        // The build puts the shim beside the test binary, as beside `mediscope`.
        #expect(FileManager.default.fileExists(atPath: paths[0]), "\(paths[0])")
    }

    @Test func aMissingFileOrAnotherLibraryIsRefusedWithItsReason() {
        #expect(throws: ModelError.self) { try TorchLibrary.open("/nonexistent/libMediscopeTorch.so") }
        do {
            _ = try TorchLibrary.open("/nonexistent/libMediscopeTorch.so")
        } catch {
            #expect(error.kind == .corrupt && error.message.contains("cannot open /nonexistent/libMediscopeTorch.so"))
        }
        // A real shared object that is not the shim (libz, mapped by every Swift process here).
        do {
            _ = try TorchLibrary.open("/lib/x86_64-linux-gnu/libz.so.1")
            Issue.record("libz was accepted as the shim")
        } catch {
            #expect(error.message.contains("no ctorch_api_get"), "\(error.message)")
        }
    }

    @Test func theShimOpensWithThisBuildsAPIVersionAndLoadsAModel() throws {
        let library = try TorchLibrary.shared()
        #expect(library.api.pointee.version == 1)
        #expect(TorchLibrary.isOpen && TorchLibrary.libtorchMapped)
        #expect(try TorchLibrary.shared() === library, "opened once per process")
    }

    @Test func aProcessThatRunsModelsKeepsActivationSizedBlocksInItsHeap() throws {
        _ = try TorchLibrary.shared()
        // glibc marks a block that has a mapping of its own in its chunk header (IS_MMAPPED, bit 1 of the
        // size word just before it): read per block, so other tests allocating meanwhile cannot disturb it.
        func mapped(_ bytes: Int) -> Bool {
            guard let block = malloc(bytes) else { return false }
            defer { free(block) }
            return block.load(fromByteOffset: -MemoryLayout<UInt>.size, as: UInt.self) & 2 != 0
        }
        // An int8 activation (240 x 240 x 64 bytes) would get a mapping of its own with glibc's defaults.
        #expect(!mapped(240 * 240 * 64), "an int8 activation is served from the heap")
        #expect(!mapped(Int(TorchLibrary.mmapThreshold) - 4096))
        // Whether a larger block gets a mapping is not asserted: in a process that has run other tests a free
        // chunk left in the heap may serve it, whatever the threshold.
    }
}
