import ArgumentParser
import Foundation
import Glibc
import MediscopeApp
import MediscopeAuth

/// Local accounts, for the first admin and for scripts. Uses the same settings as `serve`.
struct UserCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user",
        abstract: "Manage local accounts (the first admin is made here).",
        subcommands: [Add.self, Passwd.self, Disable.self, Enable.self, List.self])

    struct Options: ParsableArguments {
        @Option(help: "JSON configuration file (as for serve).")
        var config: String?

        func accounts() throws -> (Accounts, AppConfig) {
            let settings = try AppConfig.load(file: config)
            let stores = try settings.accountStores(.tool)
            let store = Accounts(stores: stores, policy: settings.accountPolicy)
            return (store, settings)
        }
    }

    /// The password from standard input (one line), or prompted for twice on a terminal.
    static func readPassword() throws -> String {
        if isatty(0) == 0 {
            guard let line = readLine(strippingNewline: true), !line.isEmpty else {
                throw ValidationError("no password on standard input")
            }
            return line
        }
        guard let first = getpass("New password: ").map({ String(cString: $0) }),
              let second = getpass("Repeat it: ").map({ String(cString: $0) }) else { throw ValidationError("no password") }
        guard first == second else { throw ValidationError("the passwords differ") }
        return first
    }

    static func audit(_ store: Accounts, _ action: String, _ user: User) {
        _ = try? store.audit(AuditEntry(actorUserId: nil, actorUsername: "cli:\(NSUserName())", organizationId: user.organizationId,
                                    action: action, recordId: user.id, address: "local", outcome: "success"))
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a user; the password is read from standard input.")
        @OptionGroup var options: Options
        @Argument(help: "Username (lowercase letters, digits, . _ @ -).") var username: String
        @Option(help: "admin or clinician.") var role: String = "clinician"
        @Option(help: "Organisation id.") var organization: String = "default"
        @Option(help: "Name shown in the dashboard.") var displayName: String?

        func run() throws {
            guard let role = Role(rawValue: role) else { throw ValidationError("--role must be admin or clinician") }
            let (store, _) = try options.accounts()
            let user = try store.addUser(username: username, password: try readPassword(), role: role,
                                         organizationId: organization, displayName: displayName)
            audit(store, "user.create", user)
            print("added \(user.username) (\(user.role.rawValue), organisation \(user.organizationId))")
        }
    }

    struct Passwd: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a user's password (ends their sessions).")
        @OptionGroup var options: Options
        @Argument var username: String
        func run() throws {
            let (store, _) = try options.accounts()
            audit(store, "user.password", try store.setPassword(username: username, password: try readPassword()))
            print("password changed for \(username)")
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a user (ends sessions, stops tokens).")
        @OptionGroup var options: Options
        @Argument var username: String
        func run() throws { try setDisabled(options, username, true) }
    }

    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a disabled user.")
        @OptionGroup var options: Options
        @Argument var username: String
        func run() throws { try setDisabled(options, username, false) }
    }

    static func setDisabled(_ options: Options, _ username: String, _ disabled: Bool) throws {
        let (store, _) = try options.accounts()
        audit(store, "user.update", try store.setDisabled(username: username, disabled))
        print("\(disabled ? "disabled" : "enabled") \(username)")
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users.")
        @OptionGroup var options: Options
        func run() throws {
            let (store, _) = try options.accounts()
            for u in try store.listUsers(organizationId: nil) {
                print("\(u.username)\t\(u.role.rawValue)\t\(u.organizationId)\t\(u.disabled ? "disabled" : "active")")
            }
        }
    }
}
