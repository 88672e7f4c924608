import FirestoreTestKit
import Foundation
import MediscopeAuth
import Testing
import TestSupport

/// The `APITokenStore` contract, against every backend in `AccountBackend.all`.
@Suite(.firestoreEmulator) struct APITokenStoreContractTests {
    typealias V = ContractValues

    private static func token(_ user: User, _ name: String, at seconds: Double = 0) -> APIToken {
        APIToken(id: V.id(seconds), userId: user.id, name: name, createdAt: V.time(seconds), lastUsedAt: nil, revokedAt: nil)
    }

    @Test(arguments: AccountBackend.all)
    func insertFindListAndConflict(_ backend: AccountBackend) throws {
        let instance = try backend.make()
        let tokens = instance.stores.apiTokens
        try tokens.checkReady()
        let alice = try V.addUser(instance.stores, "alice"), bob = try V.addUser(instance.stores, "bob")
        // Same creation time: insertion order decides.
        let later = Self.token(alice, "later", at: 5), first = Self.token(alice, "first"), second = Self.token(alice, "second")
        for (t, seed) in [(later, "l"), (first, "f"), (second, "s")] { try tokens.insert(t, tokenHash: V.hash(seed)) }

        #expect(try tokens.token(tokenHash: V.hash("f")) == first)
        #expect(try tokens.token(tokenHash: V.hash("nope")) == nil)
        #expect(try tokens.tokens(userId: alice.id).map(\.name) == ["first", "second", "later"])
        #expect(try tokens.tokens(userId: bob.id).isEmpty)
        #expect(try instance.secondInstance().apiTokens.tokens(userId: alice.id).count == 3)
        #expect { try tokens.insert(Self.token(bob, "dup"), tokenHash: V.hash("f")) } throws: { AuthError.isKind(.conflict, $0) }
        var sameId = Self.token(bob, "dup")
        sameId.id = first.id
        #expect { try tokens.insert(sameId, tokenHash: V.hash("new")) } throws: { AuthError.isKind(.conflict, $0) }
        #expect(try tokens.tokens(userId: bob.id).isEmpty)
    }

    @Test(arguments: AccountBackend.all)
    func revokeOnceByItsOwner(_ backend: AccountBackend) throws {
        let instance = try backend.make()
        let tokens = instance.stores.apiTokens
        let alice = try V.addUser(instance.stores, "alice"), bob = try V.addUser(instance.stores, "bob")
        let t = Self.token(alice, "cli")
        try tokens.insert(t, tokenHash: V.hash("t"))
        #expect(try !tokens.revoke(tokenId: t.id, userId: bob.id, at: V.time(10)))
        #expect(try tokens.token(tokenHash: V.hash("t"))?.revokedAt == nil)
        #expect(try tokens.revoke(tokenId: t.id, userId: alice.id, at: V.time(20)))
        #expect(try !tokens.revoke(tokenId: t.id, userId: alice.id, at: V.time(30)))
        #expect(try !tokens.revoke(tokenId: V.id(), userId: alice.id, at: V.time(30)))
        #expect(try tokens.token(tokenHash: V.hash("t"))?.revokedAt == V.time(20))   // kept, first time stays
        #expect(try tokens.tokens(userId: alice.id).first?.revokedAt == V.time(20))
    }

    @Test(arguments: AccountBackend.all)
    func revokeAllRevokesTheUsersValidTokensOnly(_ backend: AccountBackend) throws {
        let instance = try backend.make()
        let tokens = instance.stores.apiTokens
        let alice = try V.addUser(instance.stores, "alice"), bob = try V.addUser(instance.stores, "bob")
        let early = Self.token(alice, "early"), laptop = Self.token(alice, "laptop", at: 1), ci = Self.token(alice, "ci", at: 2)
        let bobs = Self.token(bob, "cli")
        for (t, seed) in [(early, "e"), (laptop, "l"), (ci, "c"), (bobs, "b")] { try tokens.insert(t, tokenHash: V.hash(seed)) }
        #expect(try tokens.revoke(tokenId: early.id, userId: alice.id, at: V.time(10)))
        #expect(try tokens.revokeAll(userId: alice.id, at: V.time(20)) == 2)
        #expect(try tokens.tokens(userId: alice.id).map(\.revokedAt) == [V.time(10), V.time(20), V.time(20)])   // the first time stays
        #expect(try tokens.token(tokenHash: V.hash("b"))?.revokedAt == nil)                                    // bob's untouched
        #expect(try instance.secondInstance().apiTokens.token(tokenHash: V.hash("c"))?.revokedAt == V.time(20))
        #expect(try tokens.revokeAll(userId: alice.id, at: V.time(30)) == 0)
        #expect(try tokens.revokeAll(userId: V.id(), at: V.time(30)) == 0)
    }

    @Test(arguments: AccountBackend.all)
    func touchSetsOrMovesLastUseForward(_ backend: AccountBackend) throws {
        let instance = try backend.make()
        let tokens = instance.stores.apiTokens
        let t = Self.token(try V.addUser(instance.stores, "alice"), "cli")
        try tokens.insert(t, tokenHash: V.hash("t"))
        #expect(try tokens.touch(tokenId: t.id, lastUsedAt: V.time(60)))
        #expect(try !tokens.touch(tokenId: t.id, lastUsedAt: V.time(60)))
        #expect(try !tokens.touch(tokenId: t.id, lastUsedAt: V.time(30)))
        #expect(try tokens.token(tokenHash: V.hash("t"))?.lastUsedAt == V.time(60))
        #expect(try tokens.touch(tokenId: t.id, lastUsedAt: V.time(61)))
        #expect(try tokens.token(tokenHash: V.hash("t"))?.lastUsedAt == V.time(61))
        #expect(try !tokens.touch(tokenId: V.id(), lastUsedAt: V.time(90)))
    }
}
