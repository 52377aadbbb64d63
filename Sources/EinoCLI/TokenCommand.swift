import ArgumentParser
import ControlPlane
import Foundation

/// `eino token create --service NAME [--namespace default] [--ttl 1h]` (CLI.md).
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Join tokens for proxies.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create",
            abstract: "Print a one-use join token with which one proxy obtains its certificate for SERVICE.")

        @OptionGroup var control: ControlOptions

        @Option(help: "The service (and service account) the proxy will be.")
        var service: String

        @Option(help: "Its namespace.")
        var namespace = "default"

        @Option(help: "How long the token stays valid.")
        var ttl = DurationArgument(seconds: 3600, text: "1h")

        func run() async throws {
            let request = ControlAPI.TokenRequest(service: service, namespace: namespace, ttlSeconds: Int(ttl.seconds.rounded()))
            let reply = try await reportingRefusals {
                try await ControlClient(control).send(.POST, "/v1/tokens", body: request, as: ControlAPI.TokenResponse.self)
            }
            print(reply.token)
        }
    }
}
