import Foundation

/// C copies of Swift strings and arrays that live as long as the arena: the C structs handed to
/// CDicomWrite point into it, and nothing is freed before the call returns.
final class CArena {
    private var pointers: [UnsafeMutableRawPointer] = []     // strdup's: free
    private var buffers: [UnsafeMutableRawPointer] = []      // allocate's: deallocate

    /// A NUL-terminated copy of `text` (nil stays nil).
    func string(_ text: String?) -> UnsafePointer<CChar>? {
        guard let text else { return nil }
        guard let copy = strdup(text) else { return nil }
        pointers.append(UnsafeMutableRawPointer(copy))
        return UnsafePointer(copy)
    }

    /// A copy of `values` (nil when empty).
    func array<T>(_ values: [T]) -> UnsafePointer<T>? {
        guard !values.isEmpty else { return nil }
        let buffer = UnsafeMutablePointer<T>.allocate(capacity: values.count)
        buffer.initialize(from: values, count: values.count)
        buffers.append(UnsafeMutableRawPointer(buffer))
        return UnsafePointer(buffer)
    }

    deinit {
        for pointer in pointers { free(pointer) }
        for buffer in buffers { buffer.deallocate() }   // C structs: trivial, nothing to deinitialise
    }
}
