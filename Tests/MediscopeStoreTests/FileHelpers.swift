import Foundation

// What the store tests look at in a store's folder, from outside the store.

/// Sets a file's modification time (the garbage collector goes by it).
func setModificationDate(_ path: String, _ date: Date) throws {
    try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: path)
}

/// Whether anything is at `path`.
func fileExists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

/// Every regular file below `root`, as paths relative to it.
func filesBelow(_ root: String) -> [String] {
    guard let enumerator = FileManager.default.enumerator(atPath: root) else { return [] }
    var files: [String] = []
    while let item = enumerator.nextObject() as? String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: root + "/" + item, isDirectory: &isDir), !isDir.boolValue {
            files.append(item)
        }
    }
    return files.sorted()
}
