import CTorchLoader
import Foundation

/// The libtorch shim (libMediscopeTorch.so), opened on first use by the process that runs a model.
///
/// Only inference workers, the CLI's `analyze` and the tests that run models ever open it: a process
/// that never loads a model never maps libtorch nor runs its static initialisers (tens of MiB each).
package final class TorchLibrary: @unchecked Sendable {
    /// The shim's entry points; valid for the life of the process (it is never closed).
    let api: UnsafePointer<ctorch_api>
    /// Where it was opened from.
    package let path: String

    private init(api: UnsafePointer<ctorch_api>, path: String) {
        self.api = api
        self.path = path
    }

    private static let state = NSLock()
    nonisolated(unsafe) private static var opened: TorchLibrary?
    nonisolated(unsafe) private static var pendingThreads: Int?

    /// The file name the build gives the shim (SwiftPM's dynamic library product `MediscopeTorch`).
    package static let fileName = "libMediscopeTorch.so"

    /// Where the shim is looked for, in order: `MEDISCOPE_TORCH_LIBRARY`, beside the executable
    /// (`swift build` puts both in one folder), and `../lib/mediscope/` from it (the installed layout).
    package static func candidatePaths(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        if let path = environment["MEDISCOPE_TORCH_LIBRARY"], !path.isEmpty { return [path] }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments.first ?? ""
        let folder = URL(fileURLWithPath: executable).deletingLastPathComponent()
        return [folder.appendingPathComponent(fileName).path,
                folder.deletingLastPathComponent().appendingPathComponent("lib/mediscope/\(fileName)").path]
    }

    /// The shim, opened now when this process has not yet; throws `.missing` when no candidate exists
    /// and `.corrupt` when one does but cannot be opened (a missing libtorch, another API version).
    package static func shared() throws(ModelError) -> TorchLibrary {
        state.lock()
        defer { state.unlock() }
        if let opened { return opened }
        let candidates = candidatePaths()
        guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw ModelError(.missing, "the libtorch shim \(fileName) is in none of \(candidates.joined(separator: ", ")) "
                                       + "(build it with `make build`, or set MEDISCOPE_TORCH_LIBRARY)")
        }
        let library = TorchLibrary(api: try open(path), path: path)
        if let threads = pendingThreads { _ = library.api.pointee.set_num_threads(Int32(clamping: threads)) }
        keepForwardsInHeap()
        opened = library
        return library
    }

    /// Largest block served from the heap rather than a mapping of its own, and free memory kept at the heap's top.
    package static let mmapThreshold: Int32 = 8 << 20
    package static let trimThreshold: Int32 = 16 << 20

    /// A forward allocates its activations anew each time. With glibc's defaults many of them got mappings of
    /// their own, unmapped on free, or a heap top trimmed after each forward, so every int8 forward faulted in
    /// about 1,100 fresh zeroed pages, some 7% of its time (mediscope-bench: 74k faults in a run, 36k with these).
    /// Fixed thresholds keep blocks up to 8 MiB (int8 activations, oneDNN's scratch) in the heap for the next
    /// forward, at the cost of what the heap keeps between analyses: about 10 MiB more per inference worker
    /// (bench/processes.sh). Larger blocks (the fp32 model's 14 MiB activations) keep their own mappings: in the
    /// heap they fragmented it and held 50 MiB more per worker for no speed-up. A smaller trim threshold (4 MiB)
    /// gave the faults back.
    private static func keepForwardsInHeap() {
        _ = ctorch_malloc_thresholds(mmapThreshold, trimThreshold)
    }

    /// The entry points of the shim at `path`; `.corrupt` when it is no shim of this build's API version
    /// or cannot be loaded (a missing libtorch). A shim opened stays loaded.
    static func open(_ path: String) throws(ModelError) -> UnsafePointer<ctorch_api> {
        var err = ctorch_error()
        guard let api = ctorch_open(path, &err) else {
            throw ModelError(.corrupt, "cannot open the libtorch shim: \(TorchLibrary.message(err))")
        }
        return api
    }

    /// Whether this process has opened the shim.
    package static var isOpen: Bool { state.withLock { opened != nil } }

    /// Whether libtorch is mapped into this process at all (read from /proc/self/maps).
    package static var libtorchMapped: Bool { ctorch_libtorch_mapped() != 0 }

    /// Sets libtorch's intra-op threads: now when the shim is open, else when it opens, so that
    /// choosing a thread count never loads libtorch by itself. Returns the count in force (or to be).
    static func setThreads(_ threads: Int) -> Int {
        state.lock()
        defer { state.unlock() }
        guard let opened else {
            if threads > 0 { pendingThreads = threads }
            return pendingThreads ?? threads
        }
        return Int(opened.api.pointee.set_num_threads(Int32(clamping: threads)))
    }

    /// libtorch's intra-op threads in force, or those it will start with; nil when neither is known.
    static var threads: Int? {
        state.withLock { opened.map { Int($0.api.pointee.get_num_threads()) } ?? pendingThreads }
    }

    /// The message a shim call left in `err`.
    static func message(_ err: ctorch_error) -> String {
        withUnsafeBytes(of: err.message) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }
}
