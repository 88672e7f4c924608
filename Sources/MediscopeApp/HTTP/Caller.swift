import Foundation
import MediscopeAuth
import MediscopeServer

/// The signed-in user of a request and how they proved it.
struct Caller {
    enum Method { case session(token: String, Session), token(APIToken), firebase(uid: String) }
    let user: User
    let method: Method

    var usesCookie: Bool { if case .session = method { return true } else { return false } }
}

extension Caller {
    var methodName: String {
        switch method {
        case .session: "session"
        case .token: "token"
        case .firebase: "firebase"
        }
    }
}
