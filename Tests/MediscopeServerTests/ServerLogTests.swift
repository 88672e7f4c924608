import Foundation
import Logging
import Testing
import TestSupport
@testable import MediscopeServer

@Suite struct ServerLogTests {
    func withLogFile(_ body: (String) throws -> Void) throws -> String {
        let folder = TemporaryFolder("mediscope-log")
        let path = folder.appending("log.jsonl").path
        try body(path)
        return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }

    @Test func fieldsAreTypedAndTokensFiltered() throws {
        let text = try withLogFile { path in
            ServerLog(path: path).info("analysis_created", ["n": .int(3), "id": .token(.init("01ABC<script>\"x"))])
        }
        let line = try #require(text.split(separator: "\n").first)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(json["event"] as? String == "analysis_created" && json["n"] as? Int == 3)
        #expect(json["id"] as? String == "01ABC?script??x")
        #expect(json["level"] as? String == "info")
    }

    /// Anything that reaches the handler without going through LogField is redacted, message included.
    @Test func rawSwiftLogUseIsRedacted() throws {
        let text = try withLogFile { path in
            let sink = LogSink(path: path)
            let logger = Logger(label: "other") { _ in JSONLinesLogHandler(sink: sink) }
            logger.info("patient Jane Doe, P-777", metadata: ["patient_id": "P-777", "name": .string("Jane Doe")])
        }
        #expect(!text.contains("Jane") && !text.contains("P-777"))
        #expect(text.contains("[redacted]"))
        #expect((try? JSONSerialization.jsonObject(with: Data(text.utf8))) != nil, "still one valid JSON object")
    }
}
