import Foundation
import MediscopeEncoding
import Testing

@Suite struct HexTests {
    @Test func lowercaseTwoDigitsPerByte() {
        #expect(Hex.encode([UInt8]()) == "")
        #expect(Hex.encode([0x00, 0x0f, 0xa5, 0xff]) == "000fa5ff")
        #expect(Hex.encode(0...255 as ClosedRange<UInt8>).count == 512)
    }
}

@Suite struct Base64URLTests {
    @Test func encodesWithoutPadding() {
        #expect(Base64URL.encode(Array("".utf8)) == "")
        #expect(Base64URL.encode(Array("a".utf8)) == "YQ")
        #expect(Base64URL.encode(Array("ab".utf8)) == "YWI")
        #expect(Base64URL.encode(Array("abc".utf8)) == "YWJj")
        #expect(Base64URL.encode([0xFB, 0xFF]) == "-_8")
    }

    @Test func agreesWithFoundationAndRoundTrips() {
        var rng = SystemRandomNumberGenerator()
        for length in 0..<70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let foundation = Data(bytes).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
                .replacingOccurrences(of: "=", with: "")
            let encoded = Base64URL.encode(bytes)
            #expect(encoded == foundation)
            #expect(Base64URL.decode(encoded) == bytes)
        }
    }

    /// Moved from the Firebase token tests: JWS segments are decoded with this codec.
    @Test func decodingIsStrict() {
        func decode(_ s: String) -> [UInt8]? { Base64URL.decode(Array(s.utf8)) }
        #expect(decode("") == [])
        #expect(decode("YQ") == Array("a".utf8))
        #expect(decode("YWI") == Array("ab".utf8))
        #expect(decode("YWJj") == Array("abc".utf8))
        #expect(decode("-_8") == [0xFB, 0xFF])
        #expect(decode("YR") == nil)    // non-zero trailing bits ("YQ" is the canonical form)
        #expect(decode("YWJ") == nil)   // ditto for "YWI"
        #expect(decode("Y") == nil)     // 6 bits cannot form a byte
        #expect(decode("YQ==") == nil)
        #expect(decode("+/8") == nil)
        #expect(decode("YW Jj") == nil)
    }
}

@Suite struct EpochMillisecondsTests {
    @Test func roundsToTheNearestMillisecond() {
        #expect(Date(timeIntervalSince1970: 1.0004).millisecondsSince1970 == 1000)
        #expect(Date(timeIntervalSince1970: 1.0006).millisecondsSince1970 == 1001)
        #expect(Date(millisecondsSince1970: 1_750_000_000_123).timeIntervalSince1970 == 1_750_000_000.123)
        let date = Date(timeIntervalSince1970: 1_700_000_000.1234567)
        #expect(Date(millisecondsSince1970: date.millisecondsSince1970) == date.roundedToMilliseconds)
        #expect(date.roundedToMilliseconds.roundedToMilliseconds == date.roundedToMilliseconds)
        #expect(TimeInterval(900).wholeMilliseconds == 900_000)
    }
}
