import Foundation
import MediscopeNet

/// Where and how to reach an OpenAI-compatible chat completions API (Groq, llama.cpp's server, vLLM,
/// Ollama's `/v1`): `POST {baseURL}/chat/completions`.
package struct LLMSettings: Sendable, Equatable {
    /// e.g. `https://api.groq.com/openai/v1` (no trailing `/chat/completions`).
    package var baseURL: URL
    /// The model id the server knows, e.g. `llama-3.1-8b-instant`.
    package var model: String
    /// Sent as `Authorization: Bearer <key>`; nil for a local server without keys. Never logged.
    package var apiKey: String?
    /// Whole-call timeout, seconds.
    package var timeout: Double = 30
    /// Connect timeout, seconds.
    package var connectTimeout: Double = 5
    /// Largest response body accepted, bytes (a longer reply is an error, never read whole).
    package var maxResponseBytes: Int = 1 << 20
    /// Sampling temperature (0...2); low: a report should not be creative.
    package var temperature: Double = 0.2
    /// Upper bound on the reply's tokens.
    package var maxTokens: Int = 700

    package init(baseURL: URL, model: String, apiKey: String? = nil) {
        self.baseURL = baseURL; self.model = model; self.apiKey = apiKey
    }
}

/// One message of a chat: `system`, `user` or `assistant`.
package struct ChatMessage: Sendable, Equatable, Codable {
    package var role: String
    package var content: String
    package init(role: String, content: String) { self.role = role; self.content = content }
}

/// What came back: the first choice's text, the model that wrote it and the token counts.
package struct ChatCompletion: Sendable, Equatable {
    /// `choices[0].message.content`, as text (never interpreted as markup by us).
    package var text: String
    /// The `model` the server reports (falls back to the requested one).
    package var model: String
    /// `usage.prompt_tokens`, `usage.completion_tokens` (0 when the server sends none).
    package var promptTokens: Int
    package var completionTokens: Int
    /// `choices[0].finish_reason` (`stop` for a complete reply; nil when the server sends none).
    package var finishReason: String? = nil
}

/// Why a chat completion failed; decides whether another attempt makes sense.
package struct LLMError: Error, Sendable, Equatable, CustomStringConvertible {
    package enum Kind: String, Sendable {
        /// No answer in time (the whole-call or connect timeout).
        case timeout
        /// No connection, or it broke.
        case unreachable
        /// 429: too many requests; `retryAfter` when the server said how long to wait.
        case rateLimited
        /// 5xx.
        case serverError
        /// 4xx other than 429 (bad key, unknown model, bad request): another attempt fails the same way.
        case refused
        /// A 2xx whose body is not a chat completion (malformed JSON, no choices, empty text).
        case badResponse
        /// A reply larger than `LLMSettings.maxResponseBytes`.
        case tooLarge
        /// A reply cut off before its end (`finish_reason` `length`: `max_tokens` reached): the same
        /// request would be cut the same way.
        case truncated
        /// A reply the server's content filter withheld or cut (`finish_reason` `content_filter`).
        case filtered
        /// A complete reply that cannot be a draft of the facts it was given (a refusal, a reply that
        /// names none of the results, one that ends mid-sentence); see `ReportWriting.problem(with:for:)`.
        case unusable
    }

    package var kind: Kind
    /// The HTTP status, 0 when none came.
    package var status: Int
    /// Seconds to wait before the next attempt, from `Retry-After` (seconds form) or the error body.
    package var retryAfter: Double?
    /// The error body's `error.message`/`type`/`code`, or the transport's words; holds no prompt text.
    package var message: String
    /// For `truncated`, `filtered` and `unusable`: the text that came back, for the operator's log only
    /// (it is never a report). It holds no identifier: the prompt it answers holds none.
    package var received: String?

    package init(_ kind: Kind, status: Int = 0, retryAfter: Double? = nil, _ message: String, received: String? = nil) {
        self.kind = kind; self.status = status; self.retryAfter = retryAfter; self.message = message; self.received = received
    }

    /// Worth another attempt (after `retryAfter` or a back-off): timeouts, lost connections, 429, 5xx.
    package var isRetryable: Bool { [.timeout, .unreachable, .rateLimited, .serverError].contains(kind) }

    package var description: String { "\(kind.rawValue) (HTTP \(status)): \(message)" }
}

/// A client for the OpenAI-compatible `POST /chat/completions` over libcurl (MediscopeNet). One call,
/// one attempt: the report jobs decide about retries, so a hung server holds a job, never a worker.
package struct ChatCompletionsClient: Sendable {
    package let settings: LLMSettings

    package init(settings: LLMSettings) { self.settings = settings }

    /// The request's JSON body, exactly as sent (tests read it back to check what left the building).
    package func requestBody(_ messages: [ChatMessage]) -> [UInt8] {
        struct Body: Encodable {
            var model: String; var messages: [ChatMessage]; var temperature: Double; var max_tokens: Int; var stream = false
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = Body(model: settings.model, messages: messages, temperature: settings.temperature, max_tokens: settings.maxTokens)
        return (try? Array(encoder.encode(body))) ?? []
    }

    /// Asks for a completion of `messages`. Throws `LLMError`.
    package func complete(_ messages: [ChatMessage]) throws(LLMError) -> ChatCompletion {
        var headers = [("Content-Type", "application/json"), ("Accept", "application/json")]
        if let key = settings.apiKey, !key.isEmpty { headers.append(("Authorization", "Bearer \(key)")) }
        let url = settings.baseURL.appendingPathComponent("chat/completions")
        let request = HTTPClientRequest(method: "POST", url: url, headers: headers, body: requestBody(messages),
                                        timeout: settings.timeout, connectTimeout: settings.connectTimeout,
                                        maxResponseBytes: settings.maxResponseBytes)
        let response: HTTPClientResponse
        do { response = try CurlHTTP.perform(request) } catch {
            if error.isTooLarge { throw LLMError(.tooLarge, "the reply is larger than \(settings.maxResponseBytes) bytes") }
            let timedOut = error.message.lowercased().contains("timed out") || error.message.lowercased().contains("timeout")
            throw LLMError(timedOut ? .timeout : .unreachable, error.message)
        }
        guard (200..<300).contains(response.status) else { throw Self.error(from: response) }
        return try Self.completion(from: response.body, requestedModel: settings.model)
    }

    /// Reads a 2xx body: `choices[0].message.content`, `finish_reason`, `model`, `usage`. A reply that did
    /// not finish (`length`: cut at `max_tokens`; `content_filter`) is an error that carries what came.
    static func completion(from body: [UInt8], requestedModel: String) throws(LLMError) -> ChatCompletion {
        struct Reply: Decodable {
            struct Choice: Decodable {
                struct Message: Decodable { var content: String? }
                var message: Message?
                var finish_reason: String?
            }
            struct Usage: Decodable { var prompt_tokens: Int?; var completion_tokens: Int? }
            var model: String?; var choices: [Choice]?; var usage: Usage?
        }
        let reply: Reply
        do { reply = try JSONDecoder().decode(Reply.self, from: Data(body)) } catch {
            throw LLMError(.badResponse, status: 200, "the reply is not a chat completion (malformed JSON)")
        }
        let choice = reply.choices?.first
        let text = choice?.message?.content?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        switch choice?.finish_reason {
        case "length":
            throw LLMError(.truncated, status: 200, "the reply was cut off at llm.max_tokens (finish_reason length)", received: text)
        case "content_filter":
            throw LLMError(.filtered, status: 200, "the server's content filter stopped the reply (finish_reason content_filter)",
                           received: text)
        default:
            break
        }
        guard !text.isEmpty else {
            throw LLMError(.badResponse, status: 200, "the reply has no text (empty choices)")
        }
        return ChatCompletion(text: text, model: reply.model ?? requestedModel,
                              promptTokens: reply.usage?.prompt_tokens ?? 0, completionTokens: reply.usage?.completion_tokens ?? 0,
                              finishReason: choice?.finish_reason)
    }

    /// A non-2xx answer as an error: `{"error": {"message", "type", "code"}}` when present.
    static func error(from response: HTTPClientResponse) -> LLMError {
        struct Body: Decodable {
            struct Detail: Decodable {
                var message: String?; var type: String?; var code: CodeValue?
            }
            var error: Detail?
        }
        let detail = (try? JSONDecoder().decode(Body.self, from: Data(response.body)))?.error
        let words = [detail?.type, detail?.code?.text, detail?.message].compactMap { $0 }.joined(separator: ": ")
        let message = String((words.isEmpty ? "HTTP \(response.status)" : words).prefix(300))
        let retryAfter = response.retryAfter.flatMap { Double($0.trimmingCharacters(in: .whitespaces)) }.map { min(max($0, 0), 3600) }
        switch response.status {
        case 429: return LLMError(.rateLimited, status: 429, retryAfter: retryAfter, message)
        case 500...: return LLMError(.serverError, status: response.status, retryAfter: retryAfter, message)
        default: return LLMError(.refused, status: response.status, message)
        }
    }
}

/// `error.code` is a string at OpenAI and Groq, a number at some local servers.
struct CodeValue: Decodable {
    var text: String
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) { text = s } else { text = String(try c.decode(Int.self)) }
    }
}
