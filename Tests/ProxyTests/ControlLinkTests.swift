import EinoTestSupport
import Foundation
import Identity
import MeshConfig
import NIOConcurrencyHelpers
import Proxy
import Testing

/// The proxy's control-plane link against a real `eino control`: join, register, watch,
/// and riding out a control plane killed with -9.
@Suite(.serialized) struct ControlLinkTests {
    let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("eino-link-\(UUID().uuidString)").path

    func startControl(port: Int = 0) throws -> (ServerProcess, String) {
        let control = try ServerProcess.eino(["control", "--data-dir", dataDir, "--listen", "127.0.0.1:\(port)"])
        return (control, "https://" + (try control.readyValue("listen", prefix: "eino control ready")))
    }

    func eino(_ arguments: [String], _ url: String) throws -> EinoProcess.Output {
        try EinoProcess.eino(arguments + ["--control", url, "--data-dir", dataDir])
    }

    @Test func joinsRegistersWatchesAndReconnects() async throws {
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        var (control, url) = try startControl()
        let token = try eino(["token", "create", "--service", "web-v1"], url).stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        let identities = NIOLockedValueBox<[IdentityMaterial]>([])
        let updates = NIOLockedValueBox<[ControlWire.ConfigUpdate]>([])
        let link = ControlLink(
            .init(url: url, caFile: "\(dataDir)/ca.pem", joinToken: token, service: "web-v1", namespace: "default",
                  advertise: "127.0.0.1:17143", labels: ["version": "v1"], maxBackoff: 1),
            onIdentity: { material in identities.withLockedValue { $0.append(material) } },
            onConfig: { update in updates.withLockedValue { $0.append(update) } },
            log: { _ in })
        let running = Task { try await link.run() }
        defer { running.cancel() }

        let material = try await waitFor(timeout: 20, "a certificate") { identities.withLockedValue { $0.first } }
        #expect(material.credentials.identity.description == "spiffe://cluster.local/ns/default/sa/web-v1")
        _ = try await waitFor(timeout: 20, "the registered endpoint on the watch") {
            updates.withLockedValue { $0.last { $0.services.contains { $0.key.name == "web-v1" && $0.endpoints.map(\.address) == ["127.0.0.1:17143"] } } }
        }
        #expect(try eino(["get", "endpoints"], url).stdoutLines == ["default/web-v1 127.0.0.1:17143 spiffe://cluster.local/ns/default/sa/web-v1"])

        #expect(try eino(["apply", "-f", "manifests/examples/canary-split.yaml"], url).status == 0)
        _ = try await waitFor(timeout: 10, "the split on the watch") {
            updates.withLockedValue { $0.last { $0.resources.contains { $0.metadata.name == "web-canary" } } }
        }

        // Killed without warning, then back on the same port: the link reconnects and
        // registers again, and a new apply reaches it.
        let port = Int(url.split(separator: ":").last!)!
        control.kill()
        try control.waitForExit()
        let seen = updates.withLockedValue { $0.count }
        (control, url) = try startControl(port: port)
        defer { control.terminate() }
        #expect(try eino(["apply", "-f", "manifests/examples/traffic-mirror.yaml"], url).status == 0)
        let after = try await waitFor(timeout: 40, "an update after the restart") {
            updates.withLockedValue { list in
                list.count > seen ? list.last { $0.resources.contains { $0.metadata.name == "web-shadow" } } : nil
            }
        }
        #expect(after.resources.contains { $0.metadata.name == "web-canary" })
        _ = try await waitFor(timeout: 20, "re-registration") {
            try eino(["get", "endpoints"], url).stdoutLines == ["default/web-v1 127.0.0.1:17143 spiffe://cluster.local/ns/default/sa/web-v1"] ? true : nil
        }

        await link.deregister()
        #expect(try eino(["get", "endpoints"], url).stdoutLines == [])
    }

    @Test func aRefusedTokenIsFinal() async throws {
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let (control, url) = try startControl()
        defer { control.terminate() }
        let link = ControlLink(
            .init(url: url, caFile: "\(dataDir)/ca.pem", joinToken: "not-a-token", service: "web", namespace: "default", advertise: "127.0.0.1:1"),
            onIdentity: { _ in }, onConfig: { _ in }, log: { _ in })
        await #expect(throws: ControlLink.Failure.self) { try await link.run() }
    }
}
