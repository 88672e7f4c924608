import FirebaseTestKit
import Foundation
import MediscopeStore
import Testing
@testable import MediscopeLLM

/// The chat completions client against a local server speaking the wire format Groq documents
/// (OpenAI-compatible `POST /chat/completions`), since Groq itself cannot be reached from here.
@Suite struct ChatCompletionsTests {
    static func reply(_ content: String, model: String = "llama-3.1-8b-instant") -> String {
        let escaped = String(decoding: try! JSONEncoder().encode(content), as: UTF8.self)
        return #"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"\#(model)","choices":[{"index":0,"message":{"role":"assistant","content":\#(escaped)},"finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":80,"total_tokens":200}}"#
    }

    func client(_ server: ScriptedHTTPServer, timeout: Double = 5, key: String? = "gsk_test_key") -> ChatCompletionsClient {
        var settings = LLMSettings(baseURL: server.baseURL.appendingPathComponent("openai/v1"), model: "llama-3.1-8b-instant", apiKey: key)
        settings.timeout = timeout
        settings.connectTimeout = 2
        return ChatCompletionsClient(settings: settings)
    }

    let chat = [ChatMessage(role: "system", content: "be brief"), ChatMessage(role: "user", content: "hello")]

    @Test func successKeepsTheTextAsTextAndSendsTheDocumentedRequest() throws {
        let text = "<script>alert(1)</script>\n**Bold** and _markdown_ & <b>tags</b> stay text."
        let server = try ScriptedHTTPServer { _, _ in .json(200, Self.reply(text)) }
        defer { server.stop() }
        let completion = try client(server).complete(chat)
        #expect(completion.text == text.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(completion.model == "llama-3.1-8b-instant" && completion.promptTokens == 120 && completion.completionTokens == 80)
        let request = try #require(server.requests.first)
        #expect(request.method == "POST" && request.path == "/openai/v1/chat/completions")
        #expect(request.headers["authorization"] == "Bearer gsk_test_key")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any])
        #expect(body["model"] as? String == "llama-3.1-8b-instant")
        #expect((body["messages"] as? [[String: String]])?.map { $0["role"] ?? "" } == ["system", "user"])
        #expect(body["temperature"] as? Double == 0.2 && body["max_tokens"] as? Int == 700 && body["stream"] as? Bool == false)
    }

    @Test func aLocalServerWithoutKeyGetsNoAuthorization() throws {
        let server = try ScriptedHTTPServer { _, _ in .json(200, Self.reply("ok")) }
        defer { server.stop() }
        _ = try client(server, key: nil).complete(chat)
        #expect(server.requests.first?.headers["authorization"] == nil)
    }

    @Test func tooManyRequestsCarriesRetryAfter() throws {
        let server = try ScriptedHTTPServer { _, _ in
            ScriptedHTTPServer.Response(status: 429, headers: [("Content-Type", "application/json"), ("retry-after", "7")],
                                        body: Array(#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#.utf8))
        }
        defer { server.stop() }
        #expect {
            try client(server).complete(chat)
        } throws: { error in
            guard let e = error as? LLMError else { return false }
            return e.kind == .rateLimited && e.retryAfter == 7 && e.isRetryable && e.message.contains("rate_limit_exceeded")
        }
    }

    @Test func serverErrorsRetryAndRefusalsDoNot() throws {
        let server = try ScriptedHTTPServer { _, i in
            i == 0 ? .json(500, #"{"error":{"message":"internal","type":"server_error"}}"#)
                : .json(401, #"{"error":{"message":"Invalid API Key","type":"invalid_request_error","code":"invalid_api_key"}}"#)
        }
        defer { server.stop() }
        let c = client(server)
        #expect { try c.complete(chat) } throws: { ($0 as? LLMError).map { $0.kind == .serverError && $0.isRetryable } ?? false }
        #expect { try c.complete(chat) } throws: { error in
            guard let e = error as? LLMError else { return false }
            return e.kind == .refused && !e.isRetryable && e.message.contains("invalid_api_key") && !e.message.contains("gsk_test_key")
        }
    }

    @Test func aHungServerTimesOut() throws {
        let server = try ScriptedHTTPServer { _, _ in
            Thread.sleep(forTimeInterval: 8)
            return .json(200, Self.reply("too late"))
        }
        defer { server.stop() }
        // A timeout, not the late reply: the client gave up before the server answered (no timing assert:
        // a late reply would be a success or a bad response, never `.timeout`).
        #expect { try client(server, timeout: 1).complete(chat) } throws: { ($0 as? LLMError)?.kind == .timeout }
    }

    @Test(arguments: ["{not json", #"{"choices":[]}"#, #"{"choices":[{"message":{"content":"   "}}]}"#, #"{"model":"m"}"#])
    func malformedOrEmptyRepliesAreBadResponses(_ body: String) throws {
        let server = try ScriptedHTTPServer { _, _ in .json(200, body) }
        defer { server.stop() }
        #expect { try client(server).complete(chat) } throws: { ($0 as? LLMError)?.kind == .badResponse }
    }

    /// Issue 21: a reply cut at max_tokens ("...confidence of 9") or stopped by a content filter is never a
    /// completion: an error that says why, not worth another attempt, carrying what came for the log.
    @Test(arguments: [("length", LLMError.Kind.truncated), ("content_filter", LLMError.Kind.filtered)])
    func unfinishedRepliesAreErrorsThatCarryWhatCame(_ reason: String, _ kind: LLMError.Kind) throws {
        let partial = "The Tumour type model predicted Glioma with a confidence of 9"
        let body = Self.reply(partial).replacingOccurrences(of: #""finish_reason":"stop""#, with: #""finish_reason":"\#(reason)""#)
        #expect(body.contains(reason))
        let server = try ScriptedHTTPServer { _, _ in .json(200, body) }
        defer { server.stop() }
        #expect { try client(server).complete(chat) } throws: { error in
            guard let e = error as? LLMError else { return false }
            return e.kind == kind && !e.isRetryable && e.received == partial && e.message.contains(reason)
        }
    }

    @Test func aFinishedReplyKeepsItsFinishReason() throws {
        let server = try ScriptedHTTPServer { _, _ in .json(200, Self.reply("Done.")) }
        defer { server.stop() }
        #expect(try client(server).complete(chat).finishReason == "stop")
    }

    @Test func aFiveMegabyteReplyIsRefusedUnread() throws {
        let huge = Self.reply(String(repeating: "x", count: 5 << 20))
        let server = try ScriptedHTTPServer { _, _ in .json(200, huge) }
        defer { server.stop() }
        #expect { try client(server).complete(chat) } throws: { ($0 as? LLMError)?.kind == .tooLarge }
    }
}
