import Foundation

/// A failure of the process manager, described for the operator.
package struct ServerError: Error, CustomStringConvertible {
    /// What failed and why.
    package let description: String
    /// A failure described by `description`.
    package init(_ description: String) { self.description = description }
}

func errnoText() -> String { String(cString: strerror(errno)) }
