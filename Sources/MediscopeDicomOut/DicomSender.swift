/// What became of one object sent to a destination.
package enum SentObject: Sendable, Equatable {
    /// The destination has it (a warning status counts: it stored the object, perhaps coerced).
    case stored
    /// The destination refused this object (its reason, no patient data): tried again, then parked.
    case refused(String)
    /// Not taken now for a reason that is not the object's (out of resources, the connection broke before
    /// it was sent): the destination backs off and the object waits its turn.
    case later(String)
}

/// A destination that could not be reached or would not talk (connection, association, time-out,
/// authorisation, 5xx): nothing was stored; the destination backs off.
package struct DestinationUnreachable: Error, Sendable, Equatable, CustomStringConvertible {
    /// Why, in words that hold no patient data.
    package let message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}

/// Sends PS3.10 objects to one destination, in order, in one exchange (an association, a request).
package protocol DicomSender {
    /// One `SentObject` per object, in the same order; throws when nothing could be sent.
    func send(_ objects: [DicomObject]) throws(DestinationUnreachable) -> [SentObject]
}

/// A PS3.10 file to send and the SOP Instance UID it holds.
package struct DicomObject: Sendable, Equatable {
    package var bytes: [UInt8]
    package var sopInstanceUID: String

    package init(bytes: [UInt8], sopInstanceUID: String) {
        self.bytes = bytes
        self.sopInstanceUID = sopInstanceUID
    }
}
