import Foundation
import Glibc
import MediscopeServer

/// Why a header value's parameters could not be read (becomes a 400 naming the header).
struct HeaderValueError: Error, Sendable {
    let message: String
    init(_ message: String) { self.message = message }
}
