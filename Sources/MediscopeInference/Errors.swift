import MediscopeImaging

/// A problem with a model or its manifest: the operator must fix the deployment.
package struct ModelError: Error, Sendable, CustomStringConvertible {
    /// `refused`: the model loads but falls short of what its manifest entry requires (fidelity).
    package enum Kind: String, Sendable { case missing, corrupt, wrongShape, invalidManifest, runtime, refused }
    package let kind: Kind
    package let message: String
    package init(_ kind: Kind, _ message: String) { self.kind = kind; self.message = message }
    package var description: String { message }
}

/// Why one analysis failed: the input was bad, or the model was.
package enum AnalysisError: Error, Sendable, CustomStringConvertible {
    case badImage(ImagingError)
    case model(ModelError)
    /// The input could not be read at all (a missing file, say).
    case unreadable(String)

    package var description: String {
        switch self {
        case .badImage(let e): return e.message
        case .model(let e): return e.message
        case .unreadable(let message): return message
        }
    }
}
