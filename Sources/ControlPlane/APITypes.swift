import Manifests

/// JSON bodies of the control plane's admin API (docs/api.md), shared by the server and
/// the `eino` CLI. Field names are a contract: they change only with a new API version.
public enum ControlAPI {
    /// A manifest file as the user has it; the server decodes it so that problems name
    /// the user's own file and lines.
    public struct ManifestFile: Codable, Sendable, Equatable {
        public var name: String
        public var content: String

        public init(name: String, content: String) {
            self.name = name
            self.content = content
        }
    }

    public struct ApplyRequest: Codable, Sendable {
        public var files: [ManifestFile]
        public var dryRun: Bool

        public init(files: [ManifestFile], dryRun: Bool = false) {
            self.files = files
            self.dryRun = dryRun
        }
    }

    public struct ResultRow: Codable, Sendable, Equatable {
        public var kind: String
        public var namespace: String
        public var name: String
        /// created, configured, unchanged or deleted.
        public var change: String
        public var resourceVersion: String

        init(_ outcome: ResourceStore.Outcome) {
            kind = outcome.id.kind.rawValue
            namespace = outcome.id.namespace
            name = outcome.id.name
            change = outcome.change.rawValue
            resourceVersion = outcome.resourceVersion
        }
    }

    public struct ChangeResponse: Codable, Sendable {
        public var revision: UInt64
        public var dryRun: Bool
        public var results: [ResultRow]
    }

    public struct Problem: Codable, Sendable, Equatable {
        public var file: String
        public var line: Int
        public var resource: String
        public var field: String
        public var message: String

        public init(_ problem: ManifestProblem) {
            file = problem.file
            line = problem.line
            resource = problem.resource
            field = problem.field
            message = problem.message
        }

        public var manifestProblem: ManifestProblem {
            ManifestProblem(file: file, line: line, resource: resource, field: field, message: message)
        }
    }

    /// Every non-2xx answer. `error` is a stable code: unauthorized, forbidden, invalid,
    /// conflict, not_found, bad_request, internal.
    public struct ErrorResponse: Codable, Sendable, Error {
        public var error: String
        public var message: String
        public var problems: [Problem]?

        public init(error: String, message: String, problems: [Problem]? = nil) {
            self.error = error
            self.message = message
            self.problems = problems
        }
    }

    public struct ResourceList: Codable, Sendable {
        public var revision: UInt64
        public var items: [Resource]
    }

    public struct TokenRequest: Codable, Sendable {
        public var service: String
        public var namespace: String
        public var ttlSeconds: Int
        /// How many proxies may join with it; 0 = any number until it expires; absent = 1.
        public var uses: Int?

        public init(service: String, namespace: String, ttlSeconds: Int, uses: Int? = nil) {
            self.service = service
            self.namespace = namespace
            self.ttlSeconds = ttlSeconds
            self.uses = uses
        }
    }

    public struct TokenResponse: Codable, Sendable {
        public var token: String
        public var service: String
        public var namespace: String
        /// Seconds since 1970.
        public var expiresAt: Double
    }

    public struct EndpointRow: Codable, Sendable, Equatable {
        public var service: String
        public var namespace: String
        public var address: String
        public var identity: String
        public var labels: [String: String]
        /// Seconds since 1970 of the last heartbeat.
        public var lastSeen: Double
    }

    public struct EndpointList: Codable, Sendable {
        public var items: [EndpointRow]
    }

    /// `GET /v1/stat?window=1m&service=S`: one row per (service, backend), as
    /// `eino stat -o json` prints them (CLI.md). Latencies are to the response head.
    public struct StatRow: Codable, Sendable, Equatable {
        public var service: String
        public var backend: String
        public var requests: UInt64
        /// Successful responses / responses, 0…1.
        public var successRate: Double
        public var rps: Double
        public var latencyMsP50: Double
        public var latencyMsP95: Double
        public var latencyMsP99: Double

        enum CodingKeys: String, CodingKey {
            case service, backend, requests, rps
            case successRate = "success_rate"
            case latencyMsP50 = "latency_ms_p50"
            case latencyMsP95 = "latency_ms_p95"
            case latencyMsP99 = "latency_ms_p99"
        }
    }

    public struct StatResponse: Codable, Sendable {
        public var window: String
        public var rows: [StatRow]
    }
}
