import Foundation
import MediscopeImaging
import MediscopeStore
import Testing
@testable import MediscopeLLM

/// Issue 22: a draft of an out-of-scope image says so. The LLM is told as a fact (the verdict and its
/// reason codes, never the measured messages), the fallback leads with the warning, and an LLM draft that
/// left it out gets it, so a draft signed as it is keeps it.
@Suite struct OutOfScopeDraftTests {
    static let check = InputCheck(verdict: .outOfScope, reasons: [
        InputCheck.Reason(code: InputCheck.Code.colour, message: "62% of the image is in colour; measured-value-QX"),
        InputCheck.Reason(code: InputCheck.Code.unfamiliar, message: "features at distance 131.2"),
    ], score: 131.2, threshold: 74.5, method: "image-checks+mahalanobis-sqrt")

    static func record(_ check: InputCheck) -> AnalysisRecord {
        var record = ReportWritingTests.record(age: 54)
        record.inputCheck = check
        return record
    }

    @Test func theLLMIsToldTheVerdictAndCodesAndNoIdentifier() throws {
        let writing = try ReportWriting(directory: ReportWritingTests.templates)
        let messages = writing.messages(ReportFacts(Self.record(Self.check)))
        let sent = String(decoding: ChatCompletionsClient(settings: LLMSettings(baseURL: URL(string: "http://x")!, model: "m"))
            .requestBody(messages), as: UTF8.self)
        for secret in ReportWritingTests.secrets + ["measured-value-QX", "131.2"] {
            #expect(!sent.contains(secret), "the prompt holds \(secret)")
        }
        let prompt = messages[1].content
        let start = try #require(prompt.range(of: "<facts>\n")), end = try #require(prompt.range(of: "\n</facts>"))
        let facts = try #require(try JSONSerialization.jsonObject(with: Data(prompt[start.upperBound..<end.lowerBound].utf8)) as? [String: Any])
        #expect(facts["inputCheck"] as? String == "out_of_scope")
        #expect(facts["inputCheckReasons"] as? [String] == ["colour", "unfamiliar"])
        #expect(prompt.contains("\"out_of_scope\"") && prompt.contains("not meaningful"), "the prompt says what the fact means")

        let inScope = writing.messages(ReportFacts(Self.record(InputCheck(verdict: .inScope, score: 40, threshold: 74.5))))[1].content
        #expect(inScope.contains("\"inputCheck\":\"in_scope\"") && inScope.contains("\"inputCheckReasons\":[]"))
    }

    @Test func theFallbackLeadsWithTheWarning() throws {
        let writing = try ReportWriting(directory: ReportWritingTests.templates)
        let text = writing.fallback(ReportFacts(Self.record(Self.check)))
        #expect(text.hasPrefix("WARNING: \(InputCheck.warning)\n\n"), "\(text.prefix(200))")
        #expect(text.contains("Brain tumour: the model's prediction is"), "the numbers are still there, after it")
        let plain = writing.fallback(ReportFacts(Self.record(InputCheck(verdict: .inScope))))
        #expect(!plain.contains(InputCheck.warning) && !plain.contains("WARNING"))
    }

    @Test func anLLMDraftKeepsTheWarning() {
        let facts = ReportFacts(Self.record(Self.check))
        let draft = "Brain tumour: the model predicted glioma with 71% confidence."
        #expect(ReportWriting.keepingWarning(draft, for: facts) == "WARNING: \(InputCheck.warning)\n\n" + draft)
        let already = "Note. \(InputCheck.warning) " + draft
        #expect(ReportWriting.keepingWarning(already, for: facts) == already, "not twice")
        #expect(ReportWriting.keepingWarning(draft, for: ReportFacts(Self.record(.notRecorded))) == draft)
    }
}
