import ArgumentParser
import ControlPlane
import Foundation

/// `eino token create --service NAME [--namespace default] [--ttl 1h] [--uses 1]` (CLI.md).
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Join tokens for proxies.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create",
            abstract: "Print a join token with which proxies obtain their certificates for SERVICE (one proxy unless --uses says more).")

        @OptionGroup var control: ControlOptions

        @Option(help: "The service (and service account) the proxy will be.")
        var service: String

        @Option(help: "Its namespace.")
        var namespace = "default"

        @Option(help: "How long the token stays valid.")
        var ttl = DurationArgument(seconds: 3600, text: "1h")

        @Option(help: "How many proxies may join with it (0 = any number until it expires), e.g. a Deployment's replicas sharing one Secret.")
        var uses = 1

        func validate() throws {
            if !(0...1_000_000).contains(uses) { throw ValidationError("--uses must be between 0 (no limit) and 1000000") }
        }

        func run() async throws {
            let request = ControlAPI.TokenRequest(service: service, namespace: namespace, ttlSeconds: Int(ttl.seconds.rounded()), uses: uses)
            let reply = try await reportingRefusals {
                try await ControlClient(control).send(.POST, "/v1/tokens", body: request, as: ControlAPI.TokenResponse.self)
            }
            print(reply.token)
        }
    }
}
