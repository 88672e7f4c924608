import Crypto
import Foundation
import Testing
@testable import MediscopeStore

/// Image keys are swift-crypto's SHA-256 of the bytes, as lowercase hex (the file names on disk).
@Suite struct ImageKeyTests {
    @Test(arguments: [0, 1, 55, 64, 1000, 65_537])
    func keyIsSwiftCryptoDigestHex(length: Int) {
        let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let blob = ImageBlob.make(bytes: bytes, contentType: "image/jpeg", width: 1, height: 1)
        let expected = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
        #expect(blob.ref.key == expected)
        #expect(BlobFolder.isValidKey(blob.ref.key))
    }
}
