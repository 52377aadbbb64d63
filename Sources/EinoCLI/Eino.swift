import ArgumentParser
import Foundation

/// The `eino` command. Exit codes (CLI.md): 0 ok, 1 refused or a check failed, 2 usage error.
public struct Eino: AsyncParsableCommand {
    public static let version = "0.1.0"

    public static let configuration = CommandConfiguration(
        commandName: "eino",
        abstract: "Eino: a service-mesh sidecar proxy with a small control plane.",
        version: version,
        subcommands: [
            ValidateCommand.self, ProxyCommand.self, ControlCommand.self, ApplyCommand.self, GetCommand.self,
            DeleteCommand.self, StatCommand.self, TokenCommand.self, MirrorCommand.self, IdentityCommand.self, DemoCommand.self, DemoAppCommand.self, InitCommand.self, WaitReadyCommand.self, InjectCommand.self, VersionCommand.self,
        ]
    )

    public init() {}

    /// Parses `arguments`, runs the command and exits, mapping ArgumentParser's usage
    /// failures (its exit code 64) to the 2 that CLI.md promises.
    public static func runAndExit(_ arguments: [String]? = nil) async -> Never {
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            Foundation.exit(0)
        } catch {
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if !message.isEmpty {
                if code == .success {
                    print(message)
                } else {
                    FileHandle.standardError.write(Data((message + "\n").utf8))
                }
            }
            fflush(nil)
            Foundation.exit(code == .validationFailure ? 2 : code.rawValue)
        }
    }
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print Eino's version.")

    func run() {
        print("eino \(Eino.version)")
    }
}
