import Foundation
import Testing
import MediscopeEncoding

/// SHA-256 (swift-crypto) as hex, against the NIST vectors and Python's hashlib.
@Suite struct SHA256HexTests {
    @Test func emptyInput() {
        #expect(SHA256Hex.digest([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func abc() {
        #expect(SHA256Hex.digest(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func nist448BitMessage() {
        let message = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
        #expect(SHA256Hex.digest(Array(message.utf8)) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func nist896BitMessage() {
        let message = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
        #expect(SHA256Hex.digest(Array(message.utf8)) == "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
    }

    @Test func oneMillionA() {
        // The NIST long-message vector: 1,000,000 × "a".
        #expect(SHA256Hex.digest([UInt8](repeating: 0x61, count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func oneMebibyteOfPatternedBytes() {
        // 1 MiB of i % 251, checked against Python's hashlib (sha256(bytes(i % 251 for i in range(1 << 20)))).
        let bytes = (0..<(1 << 20)).map { UInt8($0 % 251) }
        #expect(SHA256Hex.digest(bytes) == "631b84027d6b9e52b539c4e8373622d23032dfadc64d60af87339c9037e4f769")
    }

    @Test(arguments: [55, 56, 63, 64, 65, 119, 120, 128])
    func paddingBoundaries(length: Int) throws {
        // Lengths around the 56-byte padding boundary, checked against Python's hashlib.
        let expected = try #require(Self.boundaryVectors[length])
        #expect(SHA256Hex.digest([UInt8](repeating: 0x78, count: length)) == expected)
    }

    static let boundaryVectors: [Int: String] = [
        55: "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072",
        56: "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e",
        63: "75220b47218278e656f2013bb8f0c455a25eaf01e86c64924e9d48d89776d6f2",
        64: "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c",
        65: "9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9",
        119: "000b48d4edf0fa7bee3c6236ecd2785baa5db4eeb8bb54341b029e0d9fa5fb0c",
        120: "13f05a0b594787f5ecd315edc96141bd3243203d1b7d4f0836f37308b276ba98",
        128: "24da1b81d0b16df6428eee73c69fcb2a93c76bc6df706f0c6670fe6bfe800464",
    ]
}
