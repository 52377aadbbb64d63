import EinoTestSupport
import Foundation

/// Pods on one machine, made of network namespaces: each pod has its own namespace with a
/// veth to one bridge on the host side, addresses from 10.213.0.0/24 and fd13:213::/64
/// (ranges only these tests use), and whatever runs in it. A control plane listens on the bridge's address.
/// A meshed pod runs its app, `eino proxy` as uid 7102 and `eino init`, as a Kubernetes pod
/// with an injected sidecar does; the app never names the proxy.
///
/// One run at a time per machine (a lock file: other worktrees' test runs use the same names
/// and range). `tearDown()` stops every process and deletes every namespace and the bridge;
/// `make()` first removes what a killed earlier run may have left.
final class Pods {
    static let bridge = "eino-pods"
    static let namespacePrefix = "eino-pod-"
    static let hostIP = "10.213.0.1"
    static let hostIPv6 = "fd13:213::1"
    static let proxyUID = "7102"

    struct Pod {
        let name: String
        let ip: String
        let ipv6: String
        var namespace: String { Pods.namespacePrefix + name }
    }

    private(set) var controlURL = ""
    /// The control plane's data (root only) and the files a proxy reads (world-readable).
    private let dataDir: URL
    private let shared: URL
    private var processes: [ServerProcess] = []
    private var pods: [Pod] = []
    private var nextAddress = 10
    /// Held (flock) from `make()` to `tearDown()`; the kernel drops it if the run is killed.
    private var lock: Int32

    /// Pods with a control plane, or nil (with the reason printed) when this machine does
    /// not let us make network namespaces.
    static func make() throws -> Pods? {
        guard getuid() == 0 else {
            print("note: skipped, pods need root (network namespaces, iptables)")
            return nil
        }
        let lock = open("/tmp/eino-pods.lock", O_CREAT | O_RDWR, 0o644)
        guard lock >= 0 else { throw PodsError("cannot open /tmp/eino-pods.lock: errno \(errno)") }
        do {
            _ = try poll(timeout: 180, "the pods lock (another run of this test on the machine)") { flock(lock, LOCK_EX | LOCK_NB) == 0 ? true : nil }
        } catch {
            close(lock)
            throw error
        }
        removeLeftovers()
        let probe = try run("/usr/sbin/ip", ["netns", "add", namespacePrefix + "probe"])
        guard probe.status == 0 else {
            close(lock)
            print("note: skipped, `ip netns add` is not permitted here: \(probe.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
            return nil
        }
        _ = try run("/usr/sbin/ip", ["netns", "del", namespacePrefix + "probe"])
        return try Pods(lock: lock)
    }

    private init(lock: Int32) throws {
        self.lock = lock
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("eino-pods-\(UUID().uuidString)")
        dataDir = base.appendingPathComponent("control")
        shared = base.appendingPathComponent("shared")
        do {
            try FileManager.default.createDirectory(at: shared, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: base.path)
            for command in [["link", "add", Self.bridge, "type", "bridge"], ["addr", "add", "\(Self.hostIP)/24", "dev", Self.bridge],
                            ["addr", "add", "\(Self.hostIPv6)/64", "dev", Self.bridge, "nodad"], ["link", "set", Self.bridge, "up"]] {
                try Self.must("/usr/sbin/ip", command)
            }
            let control = try ServerProcess.eino(["control", "--data-dir", dataDir.path, "--listen", "\(Self.hostIP):0", "--server-name", Self.hostIP])
            processes.append(control)
            controlURL = "https://" + (try control.readyValue("listen", prefix: "eino control ready"))
            try FileManager.default.copyItem(at: dataDir.appendingPathComponent("ca.pem"), to: shared.appendingPathComponent("ca.pem"))
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: shared.appendingPathComponent("ca.pem").path)
        } catch {
            tearDown()
            throw error
        }
    }

    /// A new pod: its namespace, loopback up, `eth0` on the bridge with the next addresses.
    func pod(_ name: String) throws -> Pod {
        let pod = Pod(name: name, ip: "10.213.0.\(nextAddress)", ipv6: "fd13:213::\(nextAddress)")
        nextAddress += 1
        try Self.must("/usr/sbin/ip", ["netns", "add", pod.namespace])
        pods.append(pod)
        let hostSide = "einov-\(name)"
        try Self.must("/usr/sbin/ip", ["link", "add", hostSide, "type", "veth", "peer", "name", "eth0", "netns", pod.namespace])
        try Self.must("/usr/sbin/ip", ["link", "set", hostSide, "master", Self.bridge, "up"])
        // `nodad`: usable at once, not after duplicate address detection.
        for command in [["link", "set", "lo", "up"], ["addr", "add", "\(pod.ip)/24", "dev", "eth0"],
                        ["addr", "add", "\(pod.ipv6)/64", "dev", "eth0", "nodad"], ["link", "set", "eth0", "up"]] {
            try Self.must("/usr/sbin/ip", ["netns", "exec", pod.namespace, "/usr/sbin/ip"] + command)
        }
        return pod
    }

    /// Makes `pod` meshed as `service`, in Kubernetes' order: `eino init` (IPv4 and IPv6)
    /// first (a connection opened before the rules exist, like the proxy's watch of the
    /// control plane, can have its next packet taken for a new connection and redirected),
    /// then the sidecar (control-plane mode, uid 7102, default ports, advertising the pod's IP).
    @discardableResult
    func mesh(_ pod: Pod, as service: String, app: String = "127.0.0.1:8080") throws -> ServerProcess {
        let initialised = try exec(pod, [EinoProcess.binary.path, "init", "--ipv6", "on"])
        guard initialised.status == 0 else { throw PodsError("eino init in \(pod.name): \(initialised.stderr)") }
        let token = try eino(["token", "create", "--service", service])
        guard token.status == 0 else { throw PodsError("eino token create: \(token.stderr)") }
        let proxy = try start(pod, as: Self.proxyUID, [EinoProcess.binary.path, "proxy", "--service", service, "--app", app,
            "--control", controlURL, "--join-token", token.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
            "--ca-file", shared.appendingPathComponent("ca.pem").path, "--advertise", "\(pod.ip):7143"])
        _ = try proxy.waitForLine(startingWith: "eino proxy ready ")
        return proxy
    }

    /// Starts a long-running command in `pod` (as root, or as `uid`); stopped by `tearDown`.
    func start(_ pod: Pod, as uid: String? = nil, _ command: [String]) throws -> ServerProcess {
        let user = uid.map { ["/usr/bin/setpriv", "--reuid", $0, "--regid", $0, "--clear-groups"] } ?? []
        // `ip netns exec` execs the command (and setpriv execs its own), so killing the
        // process kills the command itself.
        let process = try ServerProcess(URL(fileURLWithPath: "/usr/sbin/ip"), ["netns", "exec", pod.namespace] + user + command)
        processes.append(process)
        return process
    }

    /// Tests/Scripts/upstream.py in `pod`, answering with `name` on `port` of every address
    /// of both families.
    @discardableResult
    func app(_ pod: Pod, name: String, port: Int = 8080) throws -> ServerProcess {
        let script = EinoProcess.repositoryRoot.appendingPathComponent("Tests/Scripts/upstream.py").path
        let app = try start(pod, ["/usr/bin/python3", script, name, String(port), "::"])
        _ = try app.waitForLine(startingWith: "listening ")
        return app
    }

    /// Runs a command in `pod` to completion, as root (the app's user: not exempt).
    func exec(_ pod: Pod, _ command: [String]) throws -> EinoProcess.Output {
        try Self.run("/usr/sbin/ip", ["netns", "exec", pod.namespace] + command)
    }

    /// `eino` against the control plane, from the host.
    func eino(_ arguments: [String], stdin: String? = nil) throws -> EinoProcess.Output {
        try EinoProcess.eino(arguments + ["--control", controlURL, "--data-dir", dataDir.path], stdin: stdin)
    }

    /// One sample of the pod's proxy's `/metrics` (its admin port, on the pod's loopback),
    /// written exactly as the proxy writes it; 0 when absent.
    func metric(_ pod: Pod, _ series: String) throws -> Double {
        let page = try exec(pod, ["/usr/bin/curl", "-s", "-m", "5", "http://127.0.0.1:7191/metrics"])
        for line in page.stdoutLines where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1)) ?? 0
        }
        return 0
    }

    /// Stops every process, then deletes the namespaces (and with them the veths), the
    /// bridge and the files.
    func tearDown() {
        for process in processes.reversed() {
            process.kill()
            process.process.waitUntilExit()
        }
        processes.removeAll()
        for pod in pods { _ = try? Self.run("/usr/sbin/ip", ["netns", "del", pod.namespace]) }
        pods.removeAll()
        _ = try? Self.run("/usr/sbin/ip", ["link", "del", Self.bridge])
        try? FileManager.default.removeItem(at: dataDir.deletingLastPathComponent())
        if lock >= 0 { close(lock) }
        lock = -1
    }

    /// What is left of pods on this machine: namespaces and links with our names.
    static func leftovers() throws -> [String] {
        let namespaces = try run("/usr/sbin/ip", ["netns", "list"]).stdoutLines
            .compactMap { $0.split(separator: " ").first.map(String.init) }.filter { $0.hasPrefix(namespacePrefix) }
        let links = try run("/usr/sbin/ip", ["-o", "link", "show"]).stdoutLines
            .compactMap { $0.split(separator: ":").dropFirst().first?.trimmingCharacters(in: .whitespaces) }
            .filter { $0 == bridge || $0.hasPrefix("einov-") }
        return namespaces + links
    }

    private static func removeLeftovers() {
        for name in (try? leftovers()) ?? [] {
            if name.hasPrefix(namespacePrefix) {
                _ = try? run("/usr/sbin/ip", ["netns", "del", name])
            } else {
                _ = try? run("/usr/sbin/ip", ["link", "del", name.split(separator: "@").first.map(String.init) ?? name])
            }
        }
    }

    private static func run(_ executable: String, _ arguments: [String]) throws -> EinoProcess.Output {
        try EinoProcess.run(URL(fileURLWithPath: executable), arguments)
    }

    private static func must(_ executable: String, _ arguments: [String]) throws {
        let result = try run(executable, arguments)
        guard result.status == 0 else {
            throw PodsError("\(executable) \(arguments.joined(separator: " ")) failed: \(result.stderr)")
        }
    }
}

struct PodsError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
