import ArgumentParser
import Dispatch
import Foundation
import MeshConfig
import NIOCore
import Proxy

/// `eino proxy`: the sidecar, in static mode (`--config FILE`) or fed by a control plane
/// (`--control URL --join-token T --ca-file PEM`).
struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Run the sidecar proxy.",
        discussion: """
        Static mode: --config FILE names a multi-document YAML file whose first document is a \
        proxy.eino.dev/v1alpha1 ProxyConfig (identity, services and endpoints) followed by SMI / Eino \
        manifests. SIGHUP or a change to the file reloads it. Control-plane mode: --control URL with \
        --service, a join token and --ca-file; the proxy obtains its certificate, registers its inbound \
        address (--advertise, default the bound inbound address) and follows the config the control plane \
        streams, keeping the last one while the control plane is away. SIGTERM or POST /shutdown drains \
        and exits 0. Every listener accepts port 0; the bound ports are printed on one line once ready.
        """
    )

    @Option(help: "Static config file (ProxyConfig + manifests).")
    var config: String?

    @Option(help: "This proxy's service (overrides the file's identity).")
    var service: String?

    @Option(help: "This proxy's namespace (overrides the file's identity).")
    var namespace: String?

    @Option(help: "The application beside the proxy, HOST:PORT: where inbound traffic goes.")
    var app: String

    @Option(name: .customLong("app-protocol"), help: "What the application speaks: \(AppProtocol.spellings). gRPC requests always go as HTTP/2.")
    var appProtocol = "http"

    @Option(help: "Outbound listener, HOST:PORT.")
    var outbound: String = "127.0.0.1:7140"

    @Option(help: "Inbound listener, HOST:PORT.")
    var inbound: String = "0.0.0.0:7143"

    @Option(help: "Admin listener, HOST:PORT.")
    var admin: String = "127.0.0.1:7191"

    @Option(name: .customLong("control"), help: "Control plane URL, e.g. https://127.0.0.1:7443 (env EINO_CONTROL).")
    var controlFlag: String?

    @Option(name: .customLong("join-token"), help: "One-use join token from `eino token create` (env EINO_JOIN_TOKEN).")
    var joinTokenFlag: String?

    var control: String? { controlFlag ?? environmentValue("EINO_CONTROL") }
    var joinToken: String? { joinTokenFlag ?? environmentValue("EINO_JOIN_TOKEN") }

    @Option(name: .customLong("join-token-file"), help: "File holding the join token.")
    var joinTokenFile: String?

    @Option(name: .customLong("identity-token-file"), help: "A projected ServiceAccount token (audience identity.eino.dev), instead of a join token, for a control plane on Kubernetes.")
    var identityTokenFile: String?

    @Option(name: .customLong("ca-file"), help: "The control plane's trust anchor (its ca.pem).")
    var caFile: String?

    @Option(help: "HOST:PORT other proxies reach this one's inbound listener at (default: the bound inbound address).")
    var advertise: String?

    @Option(name: .customLong("opaque-ports"), help: "Comma-separated ports forwarded as opaque TCP without protocol detection.")
    var opaquePorts: String = "25,587,3306,4444,5432,6379,9300,11211"

    @Option(name: .customLong("max-header-bytes"), help: "Largest request header block; larger ones get 431.")
    var maxHeaderBytes: Int = 65536

    @Option(name: .customLong("header-timeout"), help: "Longest time to receive a request head; slower ones get 408.")
    var headerTimeout: String = "10s"

    @Option(name: .customLong("request-timeout"), help: "Longest time for a whole exchange before 504 (0 = off).")
    var requestTimeout: String = "0"

    @Option(name: .customLong("drain-timeout"), help: "How long shutdown waits for in-flight requests.")
    var drainTimeout: String = "30s"

    @Option(name: .customLong("detect-timeout"), help: "How long protocol detection waits for the client's first bytes.")
    var detectTimeout: String = "10s"

    @Option(name: .customLong("connect-timeout"), help: "Upstream connect timeout.")
    var connectTimeout: String = "5s"

    @Option(name: .customLong("idle-timeout"), help: "How long an idle pooled upstream connection is kept.")
    var idleTimeout: String = "60s"

    @Option(name: .customLong("max-connections-per-endpoint"), help: "Upstream connections per endpoint per event loop.")
    var maxConnectionsPerEndpoint: Int = 1024

    @Option(help: "Event loop threads (default: one per core).")
    var threads: Int?

    @Option(name: .customLong("watch-interval"), help: "How often the config file is checked for changes (0 = never).")
    var watchInterval: String = "1s"

    @Option(name: .customLong("report-interval"), help: "How often telemetry goes to the control plane (0 = never).")
    var reportInterval: String = "10s"

    @Option(name: .customLong("inbound-mode"), help: "strict: plaintext inbound connections from anything but loopback are refused; permissive: accepted.")
    var inboundMode: String = "strict"

    @Option(name: .customLong("mirror-max-inflight"), help: "Mirror copies in flight at once; copies over it are dropped and counted.")
    var mirrorMaxInflight: Int = 100

    @Option(name: .customLong("mirror-timeout"), help: "How long a mirror copy may take before it is given up (counted as failed).")
    var mirrorTimeout: String = "10s"

    @Option(name: .customLong("trace-sample-rate"), help: "Chance (0…1) that a trace the outbound proxy starts for a request carrying none is sampled; 0 starts none (trace context is only propagated).")
    var traceSampleRate: Double = 0

    @Option(name: .customLong("trace-otlp"), help: "Export spans as OTLP/HTTP JSON to this URL (a base URL gets /v1/traces).")
    var traceOTLP: String?

    @Option(name: .customLong("access-log"), help: "Write one line per request to stdout: json, or off.")
    var accessLog: String = "off"

    func validate() throws {
        switch (config, control) {
        case (nil, nil): throw ValidationError("give --config FILE (static mode) or --control URL (control-plane mode)")
        case (.some, .some): throw ValidationError("--config and --control exclude each other")
        case (nil, .some):
            if service == nil { throw ValidationError("--control needs --service") }
            if joinToken == nil && joinTokenFile == nil && identityTokenFile == nil {
                throw ValidationError("--control needs --join-token, --join-token-file or --identity-token-file")
            }
            if caFile == nil { throw ValidationError("--control needs --ca-file (the control plane's ca.pem)") }
            if let advertise, ListenAddress.parse(advertise) == nil { throw ValidationError("--advertise must be HOST:PORT, got \"\(advertise)\"") }
        case (.some, nil): break
        }
        for (name, value) in [("--app", app), ("--outbound", outbound), ("--inbound", inbound), ("--admin", admin)] {
            if ListenAddress.parse(value) == nil { throw ValidationError("\(name) must be HOST:PORT, got \"\(value)\"") }
        }
        for (name, value) in [("--header-timeout", headerTimeout), ("--request-timeout", requestTimeout), ("--drain-timeout", drainTimeout),
                              ("--detect-timeout", detectTimeout), ("--connect-timeout", connectTimeout), ("--idle-timeout", idleTimeout),
                              ("--watch-interval", watchInterval), ("--mirror-timeout", mirrorTimeout),
                              ("--report-interval", reportInterval)] {
            if parseDuration(value) == nil { throw ValidationError("\(name) must be a duration such as 500ms, 10s, 1m, got \"\(value)\"") }
        }
        if AppProtocol(declared: appProtocol) == nil { throw ValidationError("--app-protocol must be one of \(AppProtocol.spellings), got \"\(appProtocol)\"") }
        if parsePorts(opaquePorts) == nil { throw ValidationError("--opaque-ports must be comma-separated ports, got \"\(opaquePorts)\"") }
        if InboundMode(rawValue: inboundMode) == nil { throw ValidationError("--inbound-mode must be strict or permissive, got \"\(inboundMode)\"") }
        if !(0...1).contains(traceSampleRate) { throw ValidationError("--trace-sample-rate must be between 0 and 1, got \(traceSampleRate)") }
        if let traceOTLP, otlpTracesURL(traceOTLP) == nil { throw ValidationError("--trace-otlp must be an http(s) URL, got \"\(traceOTLP)\"") }
        if accessLog != "off" && AccessLogFormat(rawValue: accessLog) == nil { throw ValidationError("--access-log must be json or off, got \"\(accessLog)\"") }
        if maxHeaderBytes < 1024 { throw ValidationError("--max-header-bytes must be at least 1024") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if mirrorMaxInflight < 0 { throw ValidationError("--mirror-max-inflight must be 0 or more") }
    }

    private func parsePorts(_ text: String) -> Set<Int>? {
        if text.isEmpty { return [] }
        var ports = Set<Int>()
        for part in text.split(separator: ",") {
            // Spaces and tabs by hand: Foundation's `.whitespaces` loads Unicode tables at start-up.
            var digits = part
            while digits.first == " " || digits.first == "\t" { digits.removeFirst() }
            while digits.last == " " || digits.last == "\t" { digits.removeLast() }
            guard let port = Int(digits), (1...65535).contains(port) else { return nil }
            ports.insert(port)
        }
        return ports
    }

    func run() async throws {
        var options = ProxyConfiguration(app: ListenAddress.parse(app)!, configPath: config)
        options.appProtocol = AppProtocol(declared: appProtocol)!
        options.outbound = ListenAddress.parse(outbound)!
        options.inbound = ListenAddress.parse(inbound)!
        options.admin = ListenAddress.parse(admin)!
        options.service = service
        options.namespace = namespace
        options.opaquePorts = parsePorts(opaquePorts)!
        options.maxHeaderBytes = maxHeaderBytes
        options.headerTimeout = parseDuration(headerTimeout)!
        let timeout = parseDuration(requestTimeout)!
        options.requestTimeout = timeout > .zero ? timeout : nil
        options.drainTimeout = parseDuration(drainTimeout)!
        options.detectTimeout = parseDuration(detectTimeout)!
        options.connectTimeout = parseDuration(connectTimeout)!
        options.upstreamIdleTimeout = parseDuration(idleTimeout)!
        options.maxConnectionsPerEndpoint = maxConnectionsPerEndpoint
        if let threads { options.threads = threads }
        let watch = parseDuration(watchInterval)!
        options.watchInterval = watch > .zero ? watch : nil
        options.inboundMode = InboundMode(rawValue: inboundMode)!
        options.mirrorMaxInflight = mirrorMaxInflight
        options.mirrorTimeout = parseDuration(mirrorTimeout)!
        options.traceSampleRate = traceSampleRate
        options.traceOTLP = traceOTLP.flatMap(otlpTracesURL)
        options.accessLog = AccessLogFormat(rawValue: accessLog)

        // Signals are taken by dispatch sources, not the default handlers.
        for signalNumber in [SIGHUP, SIGTERM, SIGINT, SIGPIPE] { signal(signalNumber, SIG_IGN) }

        let server = ProxyServer(configuration: options)
        let ports: ProxyServer.BoundPorts
        do {
            ports = try server.start()
        } catch {
            FileHandle.standardError.write(Data("eino proxy: cannot start:\n\(error)\n".utf8))
            exit(keeping: server, code: 1)
        }
        let link = try control.map { try startControlLink($0, server: server, inbound: ports.inbound) }
        let signals = DispatchQueue(label: "eino.proxy.signals")
        var sources: [DispatchSourceSignal] = []
        for (signalNumber, action) in [(SIGHUP, "reload"), (SIGTERM, "stop"), (SIGINT, "stop")] {
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: signals)
            source.setEventHandler {
                if action == "reload" {
                    server.reloadAsync(reason: "SIGHUP")
                } else {
                    // Leave the registry first, so callers stop choosing this proxy while it drains.
                    Task {
                        await link?.stop()
                        server.shutdown(reason: signalNumber == SIGTERM ? "SIGTERM" : "SIGINT")
                    }
                }
            }
            source.resume()
            sources.append(source)
        }
        print("eino proxy ready outbound=\(describe(ports.outbound)) inbound=\(describe(ports.inbound)) admin=\(describe(ports.admin))")
        fflush(nil)
        await server.untilStopped()
        await link?.stop()  // after POST /shutdown; a second deregistration is harmless
        FileHandle.standardError.write(Data("eino proxy: stopped\n".utf8))
        withExtendedLifetime(sources) {}
        exit(keeping: server, code: 0)
    }

    /// Control-plane mode: join, register, follow the config stream. Runs beside the proxy;
    /// a refused join token stops the proxy, since it can never obtain an identity.
    private func startControlLink(_ url: String, server: ProxyServer, inbound: SocketAddress) throws -> RunningLink {
        var token = joinToken ?? ""
        if identityTokenFile == nil, let joinTokenFile {
            guard let data = FileManager.default.contents(atPath: joinTokenFile) else {
                throw ValidationError("cannot read --join-token-file \(joinTokenFile)")
            }
            token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        var address = advertise ?? describe(inbound)
        if advertise == nil, let port = inbound.port, ["0.0.0.0", "::"].contains(inbound.ipAddress ?? "") {
            address = "127.0.0.1:\(port)"
        }
        let identity = ServiceKey(name: service!, namespace: namespace ?? "default")
        let link = ControlLink(
            .init(url: url, caFile: caFile!, joinToken: token, identityTokenFile: identityTokenFile, service: identity.name, namespace: identity.namespace, advertise: address,
                  appProtocol: server.configuration.appProtocol, reportInterval: Double(parseDuration(reportInterval)!.nanoseconds) / 1e9),
            reportContributors: [DeltaReportSection.metrics(of: server), DeltaReportSection.mirrors(of: server)],
            onIdentity: { material in
                // New certificates serve new connections; open ones carry on.
                do {
                    try server.installIdentity(material)
                } catch {
                    FileHandle.standardError.write(Data("eino proxy: identity from the control plane not usable: \(error)\n".utf8))
                }
            },
            onConfig: { update in server.apply(update, identity: identity) },
            log: { message in FileHandle.standardError.write(Data("eino proxy: \(message)\n".utf8)) })
        let task = Task {
            do {
                try await link.run()
            } catch {
                FileHandle.standardError.write(Data("eino proxy: \(error)\n".utf8))
                server.shutdown(reason: "no identity")
            }
        }
        return RunningLink(link: link, task: task)
    }

    /// Exits with the server still referenced: its teardown would touch event loops that
    /// are shut down (or, after a failed start, promises nobody completed).
    private func exit(keeping server: ProxyServer, code: Int32) -> Never {
        _ = withExtendedLifetime(server) { fflush(nil) }
        Foundation.exit(code)
    }

    private func describe(_ address: SocketAddress) -> String {
        let ip = address.ipAddress ?? "?"
        let port = address.port ?? 0
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}

/// The control link of a running proxy; `stop` deregisters so callers stop picking it.
struct RunningLink {
    let link: ControlLink
    let task: Task<Void, Never>

    func stop() async {
        await link.deregister(within: .seconds(2))
        task.cancel()
    }
}

/// One environment variable, without `ProcessInfo.environment` copying all of them into a
/// dictionary at every start.
private func environmentValue(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}
