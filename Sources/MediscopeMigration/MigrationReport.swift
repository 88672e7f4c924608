/// What one `StoreMigration` run did, per kind of record. Ids and counts only, never record contents.
package struct MigrationReport: Sendable, Equatable, CustomStringConvertible {
    /// The kinds of records copied, in the order they are copied (accounts before analyses, so every
    /// session, token and audit entry finds its user there already).
    package enum Kind: String, Sendable, CaseIterable {
        case organizations, users, sessions, apiTokens, auditEntries, analyses, reportVersions

        /// As the report prints it.
        package var label: String {
            switch self {
            case .organizations: "organisations"
            case .users: "users"
            case .sessions: "sessions"
            case .apiTokens: "API tokens"
            case .auditEntries: "audit entries"
            case .analyses: "analyses"
            case .reportVersions: "report versions"
            }
        }
    }

    /// The outcome of every record of one kind: each record is counted once, in `copied`,
    /// `alreadyThere` or `failed`.
    package struct Counts: Sendable, Equatable {
        /// Written to Firestore by this run (with `dryRun`: would have been).
        package var copied = 0
        /// Found in Firestore under the same id (or token hash) and left as it is.
        package var alreadyThere = 0
        /// Of `alreadyThere`, those whose stored copy differs from SQLite's and could not be brought in
        /// line (an organisation's name, an analysis): Firestore's copy is kept and the id logged.
        package var differing = 0
        /// Of `alreadyThere`, those changed in SQLite since an earlier run and updated in Firestore to
        /// SQLite's state (a user disabled, a role or password changed, a token revoked): SQLite is the
        /// source of truth until the switch.
        package var updated = 0
        /// Not copied: the reason is logged with the record's id.
        package var failed = 0

        /// Counts of nothing.
        package init() {}
        /// Every record counted.
        package var total: Int { copied + alreadyThere + failed }
    }

    /// Counts per kind; a kind with nothing to copy has zero counts.
    package var counts: [Kind: Counts] = [:]
    /// Whether this was a dry run (nothing written; `copied` means "would be copied").
    package var dryRun: Bool

    /// An empty report.
    package init(dryRun: Bool) { self.dryRun = dryRun }

    /// The counts of `kind` (zero when none was seen).
    package subscript(kind: Kind) -> Counts {
        get { counts[kind] ?? Counts() }
        set { counts[kind] = newValue }
    }

    /// True when any record of any kind failed.
    package var anyFailed: Bool { Kind.allCases.contains { self[$0].failed > 0 } }

    /// One line per kind: "users: 3 copied, 1 already there, 0 failed".
    package var description: String {
        Kind.allCases.map { kind in
            let c = self[kind]
            let differing = (c.updated > 0 ? " (\(c.updated) updated to SQLite's state)" : "")
                + (c.differing > 0 ? " (\(c.differing) differ from SQLite; Firestore's kept)" : "")
            return "\(kind.label): \(c.copied) \(dryRun ? "to copy" : "copied"), \(c.alreadyThere) already there\(differing), \(c.failed) failed"
        }.joined(separator: "\n")
    }
}

/// Why a migration stopped before the end: a side could not be read or written at all (Firestore
/// unreachable, refused credentials, an unreadable SQLite file). What was copied stays copied; run the
/// migration again to continue.
package struct MigrationError: Error, Sendable, CustomStringConvertible {
    /// What stopped it (ids and error kinds only).
    package let message: String
    /// What was done before it stopped.
    package let report: MigrationReport
    /// "stopped: <message>".
    package var description: String { "stopped: \(message)" }
}
