import CDicomNet

/// A DICOM sender: C-STORE of whole PS3.10 files to a PACS or another Storage SCP, and C-ECHO, on DCMTK's
/// dcmnet (CDicomNet.h). Each `send` is one association; the calls block the calling thread for at most
/// about the timeouts (a peer that keeps answering slowly is not bounded in all), so run them off Swift's
/// cooperative pool (a job worker, a thread of their own).
///
/// Messages carry no patient data: objects are named by position and SOP class, never by UID or value.
package struct StorageSCU: Sendable {
    /// Where to send and how long to wait.
    package struct Settings: Sendable, Equatable {
        /// IPv4 address or host name (DCMTK 3.6.7 takes no IPv6 literal).
        package var host: String
        /// TCP port.
        package var port: UInt16
        /// Our AE title (1...16 characters).
        package var callingAETitle: String
        /// The destination's AE title (1...16 characters).
        package var calledAETitle: String
        /// Largest PDU we receive, announced to the peer (4096...131072 bytes).
        package var maxPDU: UInt32 = 65_536
        /// Seconds for the TCP connect. DCMTK keeps this process-wide: concurrent senders in one process
        /// should use the same value.
        package var connectTimeout: UInt32 = 10
        /// Seconds to wait for the association's acceptance or rejection, for its release, and, after an abort
        /// (a missing C-STORE response), for the peer to close the connection.
        package var acseTimeout: UInt32 = 30
        /// Seconds to wait for each C-STORE/C-ECHO response, and for the peer to take each write.
        package var dimseTimeout: UInt32 = 60

        /// Settings with the default PDU size and timeouts.
        package init(host: String, port: UInt16, callingAETitle: String, calledAETitle: String) {
            self.host = host; self.port = port; self.callingAETitle = callingAETitle; self.calledAETitle = calledAETitle
        }
    }

    /// How a C-STORE response's DIMSE status reads (PS3.4 B.2.3, PS3.7 C).
    package enum StatusCategory: Sendable, Equatable {
        /// 0x0000: stored.
        case success
        /// Stored, with a remark: 0xB000 (coercion of data elements), 0xB006 (elements discarded), 0xB007 (data
        /// set does not match SOP class), and PS3.7's general warnings 0x0001, 0x0107, 0x0116.
        case warning
        /// Not stored: 0xA7xx (out of resources), 0xA9xx (data set does not match SOP class), 0xCxxx (cannot
        /// understand), 0x0122 (SOP class not supported), 0x0124 (not authorized), 0x0210-0x0212, and any
        /// other value.
        case failure

        /// The category of `status`.
        package init(_ status: UInt16) {
            if status == 0x0000 {
                self = .success
            } else if status & 0xF000 == 0xB000 || status == 0x0001 || status == 0x0107 || status == 0x0116 {
                self = .warning
            } else {
                self = .failure
            }
        }
    }

    /// Why an object was not sent.
    package enum NotSentReason: Sendable, Equatable {
        /// The peer accepted no presentation context for its SOP class.
        case sopClassNotAccepted
        /// The peer accepted its SOP class only in a transfer syntax it cannot be converted to losslessly here
        /// (compressed pixel data is sent as it is or not at all).
        case transferSyntaxNotAccepted
        /// The association ended before its turn: an earlier object got no response.
        case associationEnded
    }

    /// What became of one object.
    package enum Outcome: Sendable, Equatable, CustomStringConvertible {
        /// The peer answered the C-STORE with this DIMSE status (see `StatusCategory`).
        case responded(UInt16)
        /// It was not sent.
        case notSent(NotSentReason)
        /// It was sent, wholly or partly, but no response came (timeout, abort, closed connection): whether the
        /// peer kept it is unknown. The association was aborted there.
        case noResponse

        /// The response's status, if there was one.
        package var status: UInt16? {
            if case .responded(let status) = self { status } else { nil }
        }

        /// Whether the peer said it kept the object (Success or a warning).
        package var stored: Bool {
            status.map { StatusCategory($0) != .failure } ?? false
        }

        /// The outcome in words, e.g. "status 0x0000" or "not sent (SOP class not accepted)".
        package var description: String {
            switch self {
            case .responded(let status): "status 0x" + String(status, radix: 16, uppercase: true).leftPadded(to: 4)
            case .notSent(.sopClassNotAccepted): "not sent (SOP class not accepted)"
            case .notSent(.transferSyntaxNotAccepted): "not sent (transfer syntax not accepted)"
            case .notSent(.associationEnded): "not sent (the association ended before it)"
            case .noResponse: "no response"
            }
        }
    }

    /// The result of a `send` whose association was made.
    package struct Delivery: Sendable, Equatable {
        /// One outcome per object, in the order given.
        package let outcomes: [Outcome]
        /// The first reason an object was not sent or answered, or that the release was not confirmed; nil
        /// when every object got a response and the association was released.
        package let note: String?

        /// Whether every object was stored (Success or a warning).
        package var allStored: Bool { outcomes.allSatisfy(\.stored) }
    }

    /// Why a call made no usable association (or, for `send`, why nothing was sent).
    package struct Failure: Error, Equatable, CustomStringConvertible {
        /// What kind of failure.
        package enum Kind: Sendable, Equatable {
            /// No TCP connection: refused, timed out, unknown host, no route. Worth retrying later.
            case unreachable
            /// A-ASSOCIATE-RJ: permanent (e.g. an AE title not recognized: fix the settings) or transient
            /// (e.g. congestion: retry later); `message` names the reason.
            case rejected(permanent: Bool)
            /// An object is not a PS3.10 file that can be parsed, or lacks its SOP Class/Instance UID: nothing
            /// was sent. Retrying will not help.
            case badInput
            /// Anything else: bad settings, a peer that took the connection but never answered the association
            /// request or closed it, a C-ECHO that failed.
            case failed
        }

        /// What kind of failure.
        package let kind: Kind
        /// A sentence for the operator (no patient data).
        package let message: String
        /// The message.
        package var description: String { message }
    }

    /// Where to send and how long to wait.
    package let settings: Settings

    /// A sender with `settings`; nothing is connected until `send` or `echo`.
    package init(settings: Settings) {
        self.settings = settings
    }

    /// Sends `objects` (whole PS3.10 files: preamble, "DICM", File Meta Information, data set) in order over
    /// one association and returns what became of each. Every object is parsed first: if one cannot be,
    /// nothing is sent (`.badInput`). Values are sent as parsed, re-encoded by DCMTK in the accepted transfer
    /// syntax (explicit-length sequences, no trailing padding): a file DCMTK wrote with its defaults arrives
    /// byte for byte. Throws when no association was made; a made association returns a `Delivery` even if
    /// some objects were refused or not sent.
    package func send(_ objects: [[UInt8]]) throws(Failure) -> Delivery {
        var results = [dicom_scu_result](repeating: dicom_scu_result(outcome: 0, status: 0), count: objects.count)
        var error = [CChar](repeating: 0, count: 1024)
        let status = Self.pinned(objects[...], into: []) { pinned in
            withConfig { config in
                pinned.withUnsafeBufferPointer { buffer in
                    dicom_scu_store(&config, buffer.baseAddress, buffer.count, &results, &error, error.count)
                }
            }
        }
        let message = Self.text(error)
        guard status == Int32(DICOM_SCU_OK) else { throw Self.failure(status, message) }
        let outcomes = results.map { result -> Outcome in
            switch Int(result.outcome) {
            case Int(DICOM_SCU_RESPONDED): .responded(result.status)
            case Int(DICOM_SCU_SOP_CLASS_NOT_ACCEPTED): .notSent(.sopClassNotAccepted)
            case Int(DICOM_SCU_TRANSFER_SYNTAX_NOT_ACCEPTED): .notSent(.transferSyntaxNotAccepted)
            case Int(DICOM_SCU_NO_RESPONSE): .noResponse
            default: .notSent(.associationEnded)
            }
        }
        return Delivery(outcomes: outcomes, note: message.isEmpty ? nil : message)
    }

    /// C-ECHO over an association of its own: returns when the peer answered Success, else throws.
    package func echo() throws(Failure) {
        var error = [CChar](repeating: 0, count: 1024)
        let status = withConfig { config in dicom_scu_echo(&config, &error, error.count) }
        guard status == Int32(DICOM_SCU_OK) else { throw Self.failure(status, Self.text(error)) }
    }

    /// Runs `body` with the C configuration, its strings alive for the call.
    private func withConfig<R>(_ body: (inout dicom_scu_config) -> R) -> R {
        settings.host.withCString { host in
            settings.callingAETitle.withCString { calling in
                settings.calledAETitle.withCString { called in
                    var config = dicom_scu_config(host: host, port: settings.port, calling_ae: calling, called_ae: called,
                                                  max_pdu: settings.maxPDU, connect_timeout: settings.connectTimeout,
                                                  acse_timeout: settings.acseTimeout, dimse_timeout: settings.dimseTimeout)
                    return body(&config)
                }
            }
        }
    }

    /// Runs `body` with every object's bytes pinned at once (one nested `withUnsafeBufferPointer` each).
    private static func pinned<R>(_ objects: ArraySlice<[UInt8]>, into done: [dicom_scu_object],
                                  _ body: ([dicom_scu_object]) -> R) -> R {
        guard let first = objects.first else { return body(done) }
        return first.withUnsafeBufferPointer { bytes in
            pinned(objects.dropFirst(), into: done + [dicom_scu_object(data: bytes.baseAddress, size: bytes.count)], body)
        }
    }

    /// The failure a negative DICOM_SCU_* code stands for.
    private static func failure(_ status: Int32, _ message: String) -> Failure {
        let kind: Failure.Kind = switch Int(status) {
        case Int(DICOM_SCU_UNREACHABLE): .unreachable
        case Int(DICOM_SCU_REJECTED_PERMANENT): .rejected(permanent: true)
        case Int(DICOM_SCU_REJECTED_TRANSIENT): .rejected(permanent: false)
        case Int(DICOM_SCU_BAD_INPUT): .badInput
        default: .failed
        }
        return Failure(kind: kind, message: message.isEmpty ? "the DICOM sender failed (code \(status))" : message)
    }

    /// The C string in `buffer`.
    private static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

private extension String {
    /// The string with zeros in front up to `width` characters.
    func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
