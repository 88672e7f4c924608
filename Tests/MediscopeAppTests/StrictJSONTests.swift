import Foundation
import MediscopeServer
import Testing
@testable import MediscopeApp

/// Issue 21: request JSON with a key given twice was decoded silently (the decoder kept one of the
/// values). The check every JSON route runs: a key once per object, well-formed, bounded depth.
@Suite struct StrictJSONTests {
    func problem(_ json: String) -> Problem? {
        do { try StrictJSON.check(Array(json.utf8)); return nil } catch { return error }
    }

    func decode(_ json: String, contentType: String = "application/json") -> Problem? {
        struct Body: Decodable { var text: String; var baseVersion: Int }
        let request = HTTPRequest(method: "PUT", path: "/x", headers: ["content-type": contentType], body: Array(json.utf8))
        do { let _: Body = try AccountAPI.decodeJSON(request); return nil } catch { return error }
    }

    @Test(arguments: [
        #"{"text": "FIRST", "baseVersion": 1, "text": "SECOND"}"#,
        #"{"text": "FIRST", "baseVersion": 1, "\u0074ext": "SECOND"}"#,        // the same key, escaped
        #"{"a": {"b": 1, "b": 2}}"#,                                           // in a nested object
        #"[{"a": 1}, {"b": [{"c": 1, "c": 1}]}]"#,                             // in an array, even with equal values
        "{\"caf\u{E9}\": 1, \"cafe\u{301}\": 2}",                              // canonically equivalent spellings
    ])
    func aKeyGivenTwiceIsRefused(_ json: String) {
        let p = problem(json)
        #expect(p?.status == 400 && p?.detail.contains("more than once in one object") == true, "\(String(describing: p))")
    }

    @Test func theRefusalNamesAPlainKeyOnly() {
        #expect(problem(#"{"text": 1, "text": 2}"#)?.detail.contains("the key `text`") == true)
        #expect(problem(#"{"<\u0000>": 1, "<\u0000>": 2}"#)?.detail.contains("a key") == true)
    }

    @Test(arguments: [
        #"{"text": "a", "baseVersion": 1}"#, #"{"a": {"b": 1}, "b": {"a": 2}}"#, #"[1, -0.5e+3, true, false, null, "x\n\u00e9\ud83d\ude00"]"#,
        " { } ", "[]", "\"text\"", "0", #"{"a": "a", "A": "A"}"#,
    ])
    func wellFormedBodiesPass(_ json: String) {
        #expect(problem(json) == nil)
    }

    @Test(arguments: ["", "{", #"{"a" 1}"#, #"{"a": 1,}"#, "[1 2]", "01", "1.", "-", "tru", #"{"a": "\x"}"#, "{\"a\": \"\u{1}\"}",
                      #"{"a": 1} {"b": 2}"#, #"{"a": "\u12"}"#])
    func malformedBodiesAreRefusedWithWhere(_ json: String) {
        #expect(problem(json)?.detail.contains("is not valid JSON (at byte") == true)
    }

    @Test func nestingIsBounded() {
        let ok = String(repeating: "[", count: StrictJSON.maxDepth) + String(repeating: "]", count: StrictJSON.maxDepth)
        #expect(problem(ok) == nil)
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(problem(deep)?.detail.contains("nested deeper than \(StrictJSON.maxDepth)") == true)
    }

    /// The helper every JSON route decodes with runs the check: the duplicate is a 400, the rest as before.
    @Test func decodeJSONRefusesDuplicatesAndStillDecodes() {
        #expect(decode(#"{"text": "FIRST", "baseVersion": 1, "text": "SECOND"}"#)?.status == 400)
        #expect(decode(#"{"text": "ONE", "baseVersion": 1}"#) == nil)
        #expect(decode(#"{"text": "ONE", "baseVersion": 1}"#, contentType: "text/plain")?.status == 415)
    }
}
