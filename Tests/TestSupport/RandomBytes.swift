/// `count` random bytes: file contents no two calls share (images stored by their digest get keys of
/// their own).
package func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    var bytes = [UInt8](repeating: 0, count: count)
    var i = 0
    while i < count {
        var word = generator.next() as UInt64
        for _ in 0..<8 where i < count {
            bytes[i] = UInt8(truncatingIfNeeded: word); word >>= 8; i += 1
        }
    }
    return bytes
}
