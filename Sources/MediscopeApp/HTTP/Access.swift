import Foundation
import MediscopeAuth
import MediscopeServer

/// Who may call a route.
package enum Access: String, Sendable, CaseIterable {
    /// Anyone (health, readiness, sign-in).
    case everyone
    /// Any signed-in user (their own session, tokens, the model list).
    case signedIn
    /// Patient data: clinicians only. Admins manage accounts and read the audit log but see no patients.
    case clinical
    /// Account management and the audit log.
    case admin
    /// Pool status and metrics: loopback clients, or an admin.
    case operatorOrAdmin
}
extension Access {
    /// Whether a route of this kind always has a signed-in caller.
    var needsCaller: Bool { self == .signedIn || self == .clinical || self == .admin }
}
