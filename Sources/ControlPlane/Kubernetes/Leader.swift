import Foundation
import Kubernetes

/// Once-only work among replicas (status writes now, the rollout controller later) runs on
/// the replica holding the `coordination.k8s.io` Lease `eino-control` of the mesh's namespace.
/// The holder renews it every `renewEvery`; a Lease not renewed for `duration` is taken over.
/// Every change is an optimistic update on the Lease's resourceVersion, so two replicas never
/// both believe they hold it for longer than one renewal.
actor Leader {
    static let leaseName = "eino-control"

    private let client: KubernetesClient
    private let namespace: String
    let identity: String
    private let duration: Int
    private let renewEvery: Duration
    private var holding = false

    init(client: KubernetesClient, namespace: String, identity: String, duration: Int = 15, renewEvery: Duration = .seconds(5)) {
        self.client = client
        self.namespace = namespace
        self.identity = identity
        self.duration = duration
        self.renewEvery = renewEvery
    }

    /// Competes for the Lease until cancelled; `onChange` hears each gain and loss.
    func run(onChange: @Sendable (Bool) async -> Void) async {
        while !Task.isCancelled {
            let held = (try? await attempt()) ?? false
            if held != holding {
                holding = held
                await onChange(held)
            }
            try? await Task.sleep(for: renewEvery)
        }
        if holding { await onChange(false) }
    }

    private var path: String { "/apis/coordination.k8s.io/v1/namespaces/\(namespace)/leases" }

    /// One round: create, renew or take over the Lease; whether this replica holds it after.
    private func attempt() async throws -> Bool {
        let now = Self.microTime(Date())
        let existing: JSONValue
        do {
            existing = try JSONDecoder().decode(JSONValue.self, from: try await client.send(.GET, "\(path)/\(Self.leaseName)"))
        } catch let error as KubernetesClient.APIError where error.status == 404 {
            let lease = JSONValue.object([
                "apiVersion": .string("coordination.k8s.io/v1"), "kind": .string("Lease"),
                "metadata": .object(["name": .string(Self.leaseName), "namespace": .string(namespace)]),
                "spec": .object(["holderIdentity": .string(identity), "leaseDurationSeconds": .number(Double(duration)),
                                 "acquireTime": .string(now), "renewTime": .string(now), "leaseTransitions": .number(0)]),
            ])
            do {
                _ = try await client.send(.POST, path, body: lease.data())
                return true
            } catch let error as KubernetesClient.APIError where error.status == 409 {
                return false
            }
        }
        guard case .object(var object) = existing, case .object(var spec)? = object["spec"] else { return false }
        let holder = spec["holderIdentity"]?.string
        if holder != identity {
            let renewed = spec["renewTime"]?.string.flatMap(Self.parseMicroTime) ?? .distantPast
            var seconds = Double(duration)
            if case .number(let value)? = spec["leaseDurationSeconds"] { seconds = value }
            guard Date().timeIntervalSince(renewed) > seconds else { return false }
            spec["holderIdentity"] = .string(identity)
            spec["acquireTime"] = .string(now)
            var transitions = 0.0
            if case .number(let value)? = spec["leaseTransitions"] { transitions = value }
            spec["leaseTransitions"] = .number(transitions + 1)
        }
        spec["renewTime"] = .string(now)
        spec["leaseDurationSeconds"] = .number(Double(duration))
        object["spec"] = .object(spec)
        do {
            _ = try await client.send(.PUT, "\(path)/\(Self.leaseName)", body: JSONValue.object(object).data())
            return true
        } catch let error as KubernetesClient.APIError where error.status == 409 {
            return false  // another replica changed it first
        }
    }

    /// Kubernetes MicroTime: RFC 3339 with microseconds, UTC.
    static func microTime(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return String(formatter.string(from: date).dropLast()) + "000Z"  // milliseconds, then three zeros
    }

    /// MicroTime or plain RFC 3339; fractions beyond milliseconds are dropped.
    static func parseMicroTime(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let dot = text.firstIndex(of: "."), text.hasSuffix("Z") {
            let fraction = text[text.index(after: dot)..<text.index(before: text.endIndex)]
            if let date = formatter.date(from: text[..<dot] + "." + fraction.prefix(3).padding(toLength: 3, withPad: "0", startingAt: 0) + "Z") {
                return date
            }
        }
        return ISO8601DateFormatter().date(from: text)
    }
}
