import MediscopeAuth
import MediscopeFirestore
import MediscopeImaging
import MediscopeInference
import MediscopeReport
import MediscopeServer
import MediscopeStore

extension Services {
    /// The problem for any error a handler meets; an unknown error type is a logged 500.
    func problem(_ error: any Error) -> Problem {
        if let problem = error as? Problem { return problem }
        if let convertible = error as? ProblemConvertible { return convertible.problem(log: server.log) }
        server.log.error("unexpected_error", ["type": .token(.init(String(describing: type(of: error))))])
        return Problem(status: 500, detail: "an unexpected error occurred")
    }
}
