import CArgon2
import Foundation

/// argon2id password hashes through Debian's libargon2, in the PHC string format
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), so every stored hash carries its own parameters
/// and old hashes keep verifying after the defaults change.
package struct PasswordHasher: Sendable {
    /// Iterations (t).
    package let timeCost: UInt32
    /// Memory in KiB (m).
    package let memoryKiB: UInt32
    /// Lanes (p).
    package let parallelism: UInt32
    package static let saltLength = 16
    package static let hashLength = 32
    /// Longer passwords are refused before hashing (argon2 itself would accept them; this bounds the work).
    package static let maximumPasswordBytes = 1024

    /// OWASP's argon2id recommendation: m = 19 MiB, t = 2, p = 1.
    package static let owasp = PasswordHasher(timeCost: 2, memoryKiB: 19456, parallelism: 1,
                                             dummyHash: owaspDummyHash)

    /// A hash (with the OWASP parameters) of a random password nobody knows. Verifying against it costs
    /// what verifying a real user's password costs, so a sign-in for an unknown username takes as long
    /// as one for a known username.
    static let owaspDummyHash =
        "$argon2id$v=19$m=19456,t=2,p=1$i5ZxaZ/wlVmw+hE94WWA/w$cmn58HpRsnZ9FLMZvqDNWfb9P1UDr1DKaN4D4fzy8i0"

    /// Hash verified for unknown usernames; made with this hasher's parameters.
    let dummyHash: String

    /// Custom parameters (tests use cheap ones). Computes its own dummy hash, which costs one hash.
    package init(timeCost: UInt32, memoryKiB: UInt32, parallelism: UInt32) throws(AuthError) {
        let dummy = try Self.encode(Tokens.newSecret(), timeCost: timeCost, memoryKiB: memoryKiB,
                                    parallelism: parallelism)
        self.init(timeCost: timeCost, memoryKiB: memoryKiB, parallelism: parallelism, dummyHash: dummy)
    }

    private init(timeCost: UInt32, memoryKiB: UInt32, parallelism: UInt32, dummyHash: String) {
        self.timeCost = timeCost
        self.memoryKiB = memoryKiB
        self.parallelism = parallelism
        self.dummyHash = dummyHash
    }

    /// The PHC prefix every hash made with these parameters starts with.
    package var prefix: String { "$argon2id$v=19$m=\(memoryKiB),t=\(timeCost),p=\(parallelism)$" }

    /// A new encoded hash of `password` with a fresh random 16-byte salt.
    package func hash(_ password: String) throws(AuthError) -> String {
        try Self.encode(password, timeCost: timeCost, memoryKiB: memoryKiB, parallelism: parallelism)
    }

    private static func encode(_ password: String, timeCost: UInt32, memoryKiB: UInt32,
                               parallelism: UInt32) throws(AuthError) -> String {
        let pwd = Array(password.utf8)
        guard pwd.count <= Self.maximumPasswordBytes else {
            throw AuthError(.invalid, "password is longer than \(Self.maximumPasswordBytes) bytes")
        }
        let salt = Tokens.randomBytes(Self.saltLength)
        let length = argon2_encodedlen(timeCost, memoryKiB, parallelism, UInt32(Self.saltLength),
                                       UInt32(Self.hashLength), Argon2_id)
        var encoded = [CChar](repeating: 0, count: length + 1)
        let rc = argon2id_hash_encoded(timeCost, memoryKiB, parallelism, pwd, pwd.count, salt, salt.count,
                                       Self.hashLength, &encoded, encoded.count)
        guard rc == ARGON2_OK.rawValue else {
            let reason = argon2_error_message(rc).map { String(cString: $0) } ?? "code \(rc)"
            throw AuthError(.unavailable, "argon2id hashing failed: \(reason)")
        }
        return String(decoding: encoded.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// True when `password` matches `encoded` (any argon2id parameters). False for a mismatch, a
    /// malformed hash or an over-long password. libargon2 compares the digests in constant time.
    package func verify(_ password: String, encoded: String) -> Bool {
        let pwd = Array(password.utf8)
        guard pwd.count <= Self.maximumPasswordBytes, encoded.hasPrefix("$argon2id$") else { return false }
        let rc = encoded.withCString { argon2id_verify($0, pwd, pwd.count) }
        return rc == ARGON2_OK.rawValue
    }

    /// Spends the time of one verification without any outcome (for unknown or disabled users).
    func burnVerification(_ password: String) {
        let pwd = Array(password.utf8.prefix(Self.maximumPasswordBytes))
        _ = dummyHash.withCString { argon2id_verify($0, pwd, pwd.count) }
    }
}
