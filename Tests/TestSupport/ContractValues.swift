import Foundation
import MediscopeAuth
import MediscopeEncoding
import MediscopeSQLite

/// Values for the account store tests (the contracts, the caching stores, the Firestore stores): ids as
/// `Accounts` makes them, dates already rounded to milliseconds.
package enum ContractValues {
    /// The first moment of the tests' clock.
    package static let start = Date(millisecondsSince1970: 1_750_000_000_000)

    /// `seconds` after `start`, rounded to milliseconds as the stores keep times.
    package static func time(_ seconds: Double) -> Date { start.addingTimeInterval(seconds).roundedToMilliseconds }

    /// A sortable id made at `time(seconds)`, as `Accounts` makes ids.
    package static func id(_ seconds: Double = 0) -> String { SortableID.next(now: time(seconds)) }

    /// A user of `org` named `username`, made at `time(seconds)` (not stored).
    package static func user(_ username: String, org: String = "org-a", role: Role = .clinician, at seconds: Double = 0) -> User {
        User(id: id(seconds), username: username, displayName: nil, role: role, organizationId: org,
             disabled: false, createdAt: time(seconds), firebaseUID: nil)
    }

    /// A stored user (sessions and tokens belong to users of the same backend).
    package static func addUser(_ stores: AccountStores, _ username: String, org: String = "org-a") throws -> User {
        let user = user(username, org: org)
        try stores.users.insert(user, passwordHash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA")
        return user
    }

    /// A distinct lowercase hex SHA-256, as tokens are stored under.
    package static func hash(_ seed: String) -> String { SHA256Hex.digest(seed) }
}
