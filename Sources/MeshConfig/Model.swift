/// A service is named by its name and namespace, as Kubernetes names it.
public struct ServiceKey: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var name: String
    public var namespace: String

    public init(name: String, namespace: String = "default") {
        self.name = name
        self.namespace = namespace
    }

    public var description: String { "\(name).\(namespace)" }

    public static func < (lhs: ServiceKey, rhs: ServiceKey) -> Bool {
        (lhs.namespace, lhs.name) < (rhs.namespace, rhs.name)
    }
}

/// One place a service can be reached: a peer proxy's inbound port or a plain workload.
public struct Endpoint: Hashable, Sendable, Codable {
    public var host: String
    public var port: Int
    /// The SPIFFE ID the endpoint must present under mTLS; nil for an unmeshed endpoint.
    public var identity: String?
    public var labels: [String: String]

    public init(host: String, port: Int, identity: String? = nil, labels: [String: String] = [:]) {
        self.host = host
        self.port = port
        self.identity = identity
        self.labels = labels
    }

    /// `host:port`, with IPv6 hosts in brackets.
    public var address: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Parses `host:port` (`[v6]:port` for IPv6). Returns a message when it cannot.
    public static func parseAddress(_ text: String) -> Result<(host: String, port: Int), AddressError> {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return .failure(.init("missing \"]\" in \"\(text)\"")) }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return .failure(.init("expected host:port, got \"\(text)\"")) }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return .failure(.init("expected host:port, got \"\(text)\"")) }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return .failure(.init("an IPv6 address needs brackets: \"[\(host)]:\(portText)\"")) }
        }
        guard !host.isEmpty else { return .failure(.init("missing host in \"\(text)\"")) }
        guard let port = Int(portText), (0...65535).contains(port) else {
            return .failure(.init("port must be a number from 0 to 65535, got \"\(portText)\""))
        }
        return .success((String(host), port))
    }

    public struct AddressError: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }
}

/// A service as the proxy knows it: its endpoints and, when a TrafficSplit names it as
/// root, how its requests are split.
public struct ServiceSpec: Hashable, Sendable, Codable {
    public var key: ServiceKey
    public var endpoints: [Endpoint]
    public var labels: [String: String]
    /// The service's virtual IP (a Kubernetes ClusterIP): connections redirected to the
    /// proxy whose original destination is this address belong to the service.
    public var clusterIP: String?
    /// How its plain (unmeshed) endpoints are spoken to; nil means ``AppProtocol/http``.
    /// Optional so that the wire stays as it was for the default.
    public var appProtocol: AppProtocol?

    public init(key: ServiceKey, endpoints: [Endpoint], labels: [String: String] = [:], clusterIP: String? = nil,
                appProtocol: AppProtocol? = nil) {
        self.key = key
        self.endpoints = endpoints
        self.labels = labels
        self.clusterIP = clusterIP
        self.appProtocol = appProtocol == .http ? nil : appProtocol
    }
}

/// Files used for mTLS in static mode; read by the identity work.
public struct TLSFiles: Hashable, Sendable, Codable {
    public var caFile: String
    public var certFile: String
    public var keyFile: String

    public init(caFile: String, certFile: String, keyFile: String) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
    }
}
