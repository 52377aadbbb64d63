import Foundation

/// The few fields of Kubernetes objects Eino reads; everything else is ignored when decoding.
public struct ObjectMetadata: Sendable, Codable, Hashable {
    public var name: String
    public var namespace: String?
    public var labels: [String: String]?
    public var annotations: [String: String]?
    public var resourceVersion: String?
    public var generation: Int?

    public init(name: String, namespace: String? = nil, labels: [String: String]? = nil, annotations: [String: String]? = nil) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations
    }
}

public struct TokenReview: Sendable, Codable {
    public var apiVersion = "authentication.k8s.io/v1"
    public var kind = "TokenReview"
    public var spec: Spec
    public var status: Status?

    public struct Spec: Sendable, Codable {
        public var token: String
        public var audiences: [String]
    }

    public struct Status: Sendable, Codable {
        public var authenticated: Bool?
        public var user: User?
        public var audiences: [String]?
        public var error: String?
    }

    public struct User: Sendable, Codable {
        /// `system:serviceaccount:NAMESPACE:NAME` for a ServiceAccount token.
        public var username: String?
    }

    init(spec: Spec) {
        self.spec = spec
    }
}

public struct Service: Sendable, Codable, Hashable {
    public var metadata: ObjectMetadata
    public var spec: Spec?

    public struct Spec: Sendable, Codable, Hashable {
        public var clusterIP: String?
        public var ports: [Port]?
    }

    public struct Port: Sendable, Codable, Hashable {
        public var name: String?
        public var port: Int
        public var appProtocol: String?
    }
}

/// `discovery.k8s.io` EndpointSlice (v1 and v1beta1 agree on these fields).
public struct EndpointSlice: Sendable, Codable, Hashable {
    public var metadata: ObjectMetadata
    public var addressType: String?
    public var endpoints: [Endpoint]?
    public var ports: [Port]?

    public struct Endpoint: Sendable, Codable, Hashable {
        public var addresses: [String]
        public var conditions: Conditions?
        public var targetRef: ObjectReference?
    }

    public struct Conditions: Sendable, Codable, Hashable {
        public var ready: Bool?
    }

    public struct Port: Sendable, Codable, Hashable {
        public var name: String?
        public var port: Int?
    }

    /// The Service a slice belongs to (its `kubernetes.io/service-name` label).
    public var serviceName: String? { metadata.labels?["kubernetes.io/service-name"] }
}

public struct ObjectReference: Sendable, Codable, Hashable {
    public var kind: String?
    public var name: String?
    public var namespace: String?
}

public struct Pod: Sendable, Codable, Hashable {
    public var metadata: ObjectMetadata
    public var spec: Spec?
    public var status: Status?

    public struct Spec: Sendable, Codable, Hashable {
        public var serviceAccountName: String?
        public var containers: [Container]?
        public var initContainers: [Container]?
    }

    public struct Container: Sendable, Codable, Hashable {
        public var name: String
    }

    public struct Status: Sendable, Codable, Hashable {
        public var podIP: String?
    }
}

public struct Secret: Sendable, Codable {
    public var apiVersion = "v1"
    public var kind = "Secret"
    public var metadata: ObjectMetadata
    public var type: String?
    /// Values base64-encoded, as the API carries them.
    public var data: [String: String]?

    public init(metadata: ObjectMetadata, type: String? = nil, data: [String: Data]) {
        self.metadata = metadata
        self.type = type
        self.data = data.mapValues { $0.base64EncodedString() }
    }

    public func value(_ key: String) -> Data? {
        data?[key].flatMap { Data(base64Encoded: $0) }
    }
}

/// `admission.k8s.io/v1` AdmissionReview: what the API server asks a webhook, and its answer.
public struct AdmissionReview: Sendable, Codable {
    public var apiVersion = "admission.k8s.io/v1"
    public var kind = "AdmissionReview"
    public var request: Request?
    public var response: Response?

    public struct Request: Sendable, Codable {
        public var uid: String
        public var kind: GroupVersionKind?
        public var namespace: String?
        public var operation: String?
        public var object: JSONValue?
    }

    public struct GroupVersionKind: Sendable, Codable {
        public var group: String?
        public var version: String?
        public var kind: String?
    }

    public struct Response: Sendable, Codable {
        public var uid: String
        public var allowed: Bool
        public var status: ResponseStatus?
        public var patchType: String?
        /// A JSON Patch, base64-encoded.
        public var patch: String?
        public var warnings: [String]?

        public init(uid: String, allowed: Bool, message: String? = nil, patch: Data? = nil) {
            self.uid = uid
            self.allowed = allowed
            status = message.map { ResponseStatus(code: allowed ? 200 : 422, message: $0) }
            if let patch {
                patchType = "JSONPatch"
                self.patch = patch.base64EncodedString()
            }
        }
    }

    public struct ResponseStatus: Sendable, Codable {
        public var code: Int
        public var message: String
    }

    public init(response: Response) {
        self.response = response
    }
}
