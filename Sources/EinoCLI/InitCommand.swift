import ArgumentParser
import Deploy
import Foundation

/// `eino init`: the init step of a pod (or host) — writes the iptables rules that hand the
/// app's TCP connections to the proxy, in the current network namespace.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write the iptables rules that send the app's TCP traffic through the proxy.",
        discussion: """
        Outbound TCP from every uid but the proxy's goes to the outbound port (loopback destinations, \
        --skip-cidrs and --skip-outbound-ports excepted); inbound TCP goes to the inbound port (the admin \
        port and --skip-inbound-ports excepted). The rules live in the nat chains EINO_OUTPUT, EINO_REDIRECT, \
        EINO_INBOUND and EINO_IN_REDIRECT, jumped to from OUTPUT and PREROUTING. Running it again leaves one \
        set of rules. Needs CAP_NET_ADMIN in the network namespace. Lists are comma-separated.
        """
    )

    @Option(name: .customLong("proxy-uid"), help: "The proxy's uid: its own connections are not intercepted.")
    var proxyUID: Int = 7102

    @Option(name: .customLong("outbound-port"), help: "The proxy's outbound listener port.")
    var outboundPort: Int = 7140

    @Option(name: .customLong("inbound-port"), help: "The proxy's inbound listener port.")
    var inboundPort: Int = 7143

    @Option(name: .customLong("admin-port"), help: "The proxy's admin port: inbound connections to it are not intercepted.")
    var adminPort: Int = 7191

    @Option(name: .customLong("skip-outbound-ports"), help: "Destination ports (N or N:M) the app reaches directly.")
    var skipOutboundPorts: String = ""

    @Option(name: .customLong("skip-inbound-ports"), help: "Local ports (N or N:M) whose inbound connections bypass the proxy.")
    var skipInboundPorts: String = ""

    @Option(name: .customLong("skip-cidrs"), help: "Destination CIDRs (IPv4 or IPv6) the app reaches directly.")
    var skipCIDRs: String = ""

    @Option(help: "IPv6 rules too: auto (when the kernel has IPv6), on, off.")
    var ipv6: String = "auto"

    @Option(help: "iptables implementation: auto (nf_tables, else legacy), nft, legacy.")
    var backend: String = "auto"

    @Flag(name: .customLong("dry-run"), help: "Print the commands as a sh script instead of running them.")
    var dryRun = false

    @Flag(help: "Remove Eino's rules instead.")
    var remove = false

    func validate() throws {
        for (name, port) in [("--outbound-port", outboundPort), ("--inbound-port", inboundPort), ("--admin-port", adminPort)] {
            if !(1...65535).contains(port) { throw ValidationError("\(name) must be a port (1-65535), got \(port)") }
        }
        if proxyUID < 0 { throw ValidationError("--proxy-uid must be a uid, got \(proxyUID)") }
        for (name, value) in [("--skip-outbound-ports", skipOutboundPorts), ("--skip-inbound-ports", skipInboundPorts)] {
            if InterceptionPlan.parsePorts(value) == nil {
                throw ValidationError("\(name) must be comma-separated ports or ranges (N or N:M), got \"\(value)\"")
            }
        }
        if InterceptionPlan.parseCIDRs(skipCIDRs) == nil {
            throw ValidationError("--skip-cidrs must be comma-separated CIDRs or addresses, got \"\(skipCIDRs)\"")
        }
        if !["auto", "on", "off"].contains(ipv6) { throw ValidationError("--ipv6 must be auto, on or off, got \"\(ipv6)\"") }
        if !["auto", "nft", "legacy"].contains(backend) { throw ValidationError("--backend must be auto, nft or legacy, got \"\(backend)\"") }
    }

    var options: InterceptionOptions {
        var options = InterceptionOptions()
        options.proxyUID = proxyUID
        options.outboundPort = outboundPort
        options.inboundPort = inboundPort
        options.adminPort = adminPort
        options.skipOutboundPorts = InterceptionPlan.parsePorts(skipOutboundPorts)!
        options.skipInboundPorts = InterceptionPlan.parsePorts(skipInboundPorts)!
        options.skipCIDRs = InterceptionPlan.parseCIDRs(skipCIDRs)!
        return options
    }

    func run() throws {
        let families: [IPFamily]
        switch ipv6 {
        case "on": families = [.v4, .v6]
        case "off": families = [.v4]
        default: families = FileManager.default.fileExists(atPath: "/proc/net/if_inet6") ? [.v4, .v6] : [.v4]
        }
        let plan = remove ? InterceptionPlan.remove(families: families) : InterceptionPlan.install(options, families: families)
        if dryRun {
            if backend == "auto" {
                FileHandle.standardError.write(Data("eino init: dry run with the nf_tables commands; without nf_tables it would use iptables-legacy\n".utf8))
            }
            let chosen = IPTablesBackend(rawValue: backend) ?? .nft
            for step in plan { print(step.shellLine(chosen)) }
            return
        }
        let executor = IPTablesExecutor()
        do {
            let chosen = try executor.chooseBackend(backend == "auto" ? nil : IPTablesBackend(rawValue: backend)!, families: families)
            try executor.run(plan, backend: chosen)
            let what = remove ? "removed Eino's rules" : "intercepting TCP: outbound → \(outboundPort), inbound → \(inboundPort)"
            FileHandle.standardError.write(Data("eino init: \(what) (\(chosen.command(for: .v4))\(families.contains(.v6) ? ", IPv6 too" : ""))\n".utf8))
        } catch let error as IPTablesExecutor.Failure {
            FileHandle.standardError.write(Data("eino init: \(error.description)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// Runs plan steps with the real iptables tools.
struct IPTablesExecutor {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// A tool's path: PATH first, then the sbin directories (which PATH often lacks).
    func locate(_ tool: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        return directories.map { "\($0)/\(tool)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    struct Result {
        var status: Int32
        var output: String
    }

    func execute(_ tool: String, _ arguments: [String]) throws -> Result {
        guard let path = locate(tool) else { throw Failure(description: "\(tool) not found (install the iptables package)") }
        return try spawnAndWait(path, arguments)
    }

    /// posix_spawn and waitpid, output and errors merged. Not Foundation's Process: its exit
    /// notification needs a loopback socket, and a fresh network namespace's lo is down.
    private func spawnAndWait(_ path: String, _ arguments: [String]) throws -> Result {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw Failure(description: "pipe: \(String(cString: strerror(errno)))") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addclose(&actions, fds[1])
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
        close(fds[1])
        defer { close(fds[0]) }
        guard spawned == 0 else { throw Failure(description: "cannot run \(path): \(String(cString: strerror(spawned)))") }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fds[0], &buffer, buffer.count)
            if count > 0 { output.append(contentsOf: buffer[0..<count]); continue }
            if count < 0 && errno == EINTR { continue }
            break
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED / WEXITSTATUS by hand (the macros are not imported).
        let exitStatus: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(status: exitStatus, output: String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    static func notPermitted(_ output: String) -> Bool {
        let text = output.lowercased()
        return text.contains("permission denied") || text.contains("operation not permitted") || text.contains("must be root")
    }

    static let notPermittedMessage = "not permitted to change iptables rules in this network namespace: run as root or with CAP_NET_ADMIN and CAP_NET_RAW (in Kubernetes, the init container's capabilities)"

    /// `preferred`, or nf_tables when it answers and iptables-legacy otherwise: probed by
    /// listing the nat table of every family used.
    func chooseBackend(_ preferred: IPTablesBackend?, families: [IPFamily]) throws -> IPTablesBackend {
        var problems: [String] = []
        for backend in preferred.map({ [$0] }) ?? [.nft, .legacy] {
            var works = true
            for family in families {
                let tool = backend.command(for: family)
                guard locate(tool) != nil else {
                    problems.append("\(tool): not found")
                    works = false
                    break
                }
                let result = try execute(tool, ["-t", "nat", "-S"])
                if result.status != 0 {
                    if Self.notPermitted(result.output) { throw Failure(description: "\(Self.notPermittedMessage)\n\(tool): \(result.output)") }
                    problems.append("\(tool): \(result.output)")
                    works = false
                    break
                }
            }
            if works { return backend }
        }
        throw Failure(description: "no usable iptables:\n" + problems.joined(separator: "\n"))
    }

    func run(_ steps: [IPTablesStep], backend: IPTablesBackend) throws {
        for step in steps {
            let tool = backend.command(for: step.family)
            switch step.guarding {
            case .none: break
            case .unless(let check):
                if try execute(tool, check).status == 0 { continue }
            case .onlyIf(let check):
                if try execute(tool, check).status != 0 { continue }
            }
            var result = try execute(tool, step.arguments)
            if result.status != 0, let fallback = step.fallback {
                result = try execute(tool, fallback)
            }
            if result.status != 0 {
                if Self.notPermitted(result.output) { throw Failure(description: "\(Self.notPermittedMessage)\n\(tool): \(result.output)") }
                throw Failure(description: "\(step.shellLine(backend)) failed: \(result.output)")
            }
        }
    }
}
