import MeshConfig
import NIOCore

/// Everything `eino proxy` is started with, after flag parsing.
public struct ProxyConfiguration: Sendable {
    public var outbound: ListenAddress = .init(host: "127.0.0.1", port: 7140)
    public var inbound: ListenAddress = .init(host: "0.0.0.0", port: 7143)
    public var admin: ListenAddress = .init(host: "127.0.0.1", port: 7191)
    /// The application beside the proxy: where inbound traffic goes.
    public var app: ListenAddress
    /// What the app speaks; requests from peers and inbound clients are converted to it.
    public var appProtocol: AppProtocol = .http
    /// Static config file; reloaded on SIGHUP and when it changes. Nil in control-plane mode,
    /// where configs arrive through `ProxyServer.apply(_:)`.
    public var configPath: String?
    /// Overrides the identity in the file when set.
    public var service: String?
    public var namespace: String?
    /// Ports whose traffic is forwarded as opaque TCP without protocol detection.
    public var opaquePorts: Set<Int> = [25, 587, 3306, 4444, 5432, 6379, 9300, 11211]
    public var maxHeaderBytes: Int = 64 * 1024
    public var headerTimeout: TimeAmount = .seconds(10)
    /// Off when nil.
    public var requestTimeout: TimeAmount? = nil
    public var drainTimeout: TimeAmount = .seconds(30)
    public var detectTimeout: TimeAmount = .seconds(10)
    /// Bytes protocol detection reads at most before deciding on opaque TCP.
    public var detectBytes: Int = 1024
    public var connectTimeout: TimeAmount = .seconds(5)
    public var upstreamIdleTimeout: TimeAmount = .seconds(60)
    /// Connections per endpoint per event loop; requests beyond it wait for one.
    public var maxConnectionsPerEndpoint: Int = 1024
    public var threads: Int = System.coreCount
    /// How often the config file is checked for changes; nil disables watching.
    public var watchInterval: TimeAmount? = .seconds(1)
    /// Whether the inbound listener accepts plaintext from peers other than loopback.
    public var inboundMode: InboundMode = .strict
    /// Mirror copies in flight at once, for the whole proxy (shared evenly by the event loops);
    /// copies over it are dropped and counted.
    public var mirrorMaxInflight: Int = 100
    /// A mirror copy unanswered after this long is given up (and counted as failed).
    public var mirrorTimeout: TimeAmount = .seconds(10)
    /// Chance that a trace the outbound proxy starts (for a request carrying none) is
    /// sampled; 0 starts none: trace context is only propagated.
    public var traceSampleRate: Double = 0
    /// Where spans are exported as OTLP/HTTP JSON (the full `…/v1/traces` URL); nil = no export.
    public var traceOTLP: String? = nil
    /// Access log on stdout; nil = off.
    public var accessLog: AccessLogFormat? = nil

    public init(app: ListenAddress, configPath: String?) {
        self.app = app
        self.configPath = configPath
    }
}

public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public static func parse(_ text: String) -> ListenAddress? {
        guard case .success(let parsed) = Endpoint.parseAddress(text) else { return nil }
        return ListenAddress(host: parsed.host, port: parsed.port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Parses `500ms`, `10s`, `1m`, `24h`, `1h30m` (units `us`, `ms`, `s`, `m`, `h`), and `0` for
/// off. The one duration syntax of every `eino` flag.
public func parseDuration(_ text: String) -> TimeAmount? {
    if text == "0" { return .zero }
    var rest = Substring(text)
    if rest.isEmpty { return nil }
    var nanoseconds: Double = 0
    while !rest.isEmpty {
        let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        guard !number.isEmpty, let value = Double(number) else { return nil }
        rest = rest.dropFirst(number.count)
        let unit = rest.prefix { $0.isASCII && $0.isLetter }
        rest = rest.dropFirst(unit.count)
        let scale: Double
        switch unit {
        case "us": scale = 1e3
        case "ms": scale = 1e6
        case "s": scale = 1e9
        case "m": scale = 60e9
        case "h": scale = 3600e9
        default: return nil
        }
        nanoseconds += value * scale
    }
    guard nanoseconds < Double(Int64.max) else { return nil }
    return .nanoseconds(Int64(nanoseconds))
}

/// `--inbound-mode`: `strict` refuses plaintext inbound connections from anything but
/// loopback (other proxies must come over mTLS); `permissive` accepts them.
public enum InboundMode: String, Sendable, CaseIterable {
    case strict
    case permissive
}

/// `--access-log`: the format of the per-request lines on stdout.
public enum AccessLogFormat: String, Sendable, CaseIterable {
    case json
}

/// `--trace-otlp`: a base URL (`http://collector:4318`) gets OTLP's `/v1/traces` path, as
/// `OTEL_EXPORTER_OTLP_ENDPOINT` does; a URL with a path is used as it is. Nil for anything
/// but an http(s) URL with a host.
public func otlpTracesURL(_ text: String) -> String? {
    let lower = text.lowercased()
    guard let schemeEnd = lower.range(of: "://"), ["http", "https"].contains(String(lower[..<schemeEnd.lowerBound])) else { return nil }
    let rest = text[schemeEnd.upperBound...]
    let slash = rest.firstIndex(of: "/")
    let host = slash.map { rest[..<$0] } ?? rest
    guard !host.isEmpty, !host.contains(" ") else { return nil }
    guard let slash, rest[slash...] != "/" else { return text.hasSuffix("/") ? text + "v1/traces" : text + "/v1/traces" }
    return text
}
