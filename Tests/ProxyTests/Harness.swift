import EinoTestSupport
import Foundation
import Testing

/// A process that runs while a test talks to it: its stdout lines are collected as they come,
/// so a test can wait (with a deadline, never a fixed sleep) for the line saying it is ready.
final class Background: @unchecked Sendable {
    let process = Process()
    /// What the reader threads collect. They hold this, not the `Background`, so dropping
    /// the `Background` still runs its deinit (which stops the process).
    private final class Collected: @unchecked Sendable {
        let lock = NSLock()
        var lines: [String] = []
        var errorText = ""
    }
    private let collected = Collected()
    private let outPipe = Pipe()
    private let errPipe = Pipe()

    init(_ executable: String, _ arguments: [String], directory: URL? = nil) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = directory ?? EinoProcess.repositoryRoot
        process.standardOutput = outPipe
        process.standardError = errPipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let out = outPipe.fileHandleForReading
        let collected = self.collected
        Thread.detachNewThread {
            var pending = Data()
            while true {
                let chunk = out.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    collected.lock.withLock { collected.lines.append(line) }
                }
            }
        }
        let err = errPipe.fileHandleForReading
        Thread.detachNewThread {
            while true {
                let chunk = err.availableData
                if chunk.isEmpty { break }
                collected.lock.withLock { collected.errorText += String(decoding: chunk, as: UTF8.self) }
            }
        }
    }

    private var lock: NSLock { collected.lock }

    var stderr: String { lock.withLock { collected.errorText } }
    var pid: Int32 { process.processIdentifier }

    /// The first stdout line starting with `prefix`, waiting up to `timeout` seconds.
    func line(startingWith prefix: String, timeout: Double = 20) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let found = lock.withLock({ collected.lines.first { $0.hasPrefix(prefix) } }) { return found }
            if !process.isRunning { break }
            usleep(5_000)
        }
        throw HarnessError("no line starting with \"\(prefix)\" from \(process.executableURL!.lastPathComponent); stderr:\n\(stderr)")
    }

    /// Every stdout line so far that starts with `prefix`.
    func lines(startingWith prefix: String) -> [String] {
        lock.withLock { collected.lines.filter { $0.hasPrefix(prefix) } }
    }

    func signal(_ number: Int32) {
        kill(process.processIdentifier, number)
    }

    /// Waits for the exit and returns the status, or nil after `timeout` seconds.
    func waitForExit(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// Stops the process: `SIGTERM` by default (the proxy drains), `SIGKILL` for peers
    /// (a test runner may hand its children an ignored `SIGTERM`).
    func stop(_ signalNumber: Int32 = SIGTERM) {
        if process.isRunning {
            kill(process.processIdentifier, signalNumber)
            if waitForExit(timeout: 5) == nil { kill(process.processIdentifier, SIGKILL) }
        }
    }

    var killOnDeinit = false

    deinit { stop(killOnDeinit ? SIGKILL : SIGTERM) }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

let scripts = EinoProcess.repositoryRoot.appendingPathComponent("Tests/Scripts")

/// A python upstream from Tests/Scripts/upstream.py answering with `name`.
final class Upstream {
    let name: String
    let process: Background
    let port: Int

    init(_ name: String) throws {
        self.name = name
        process = try Background("/usr/bin/env", ["python3", scripts.appendingPathComponent("upstream.py").path, name, "0"])
        process.killOnDeinit = true
        let line = try process.line(startingWith: "listening ")
        port = Int(line.dropFirst("listening ".count))!
    }

    var address: String { "127.0.0.1:\(port)" }
}

/// A network namespace of its own (root only), with loopback up and 10.96.0.0/16 routed
/// locally, for transparent-interception tests with iptables REDIRECT.
final class NetworkNamespace {
    let name = "eino-t-\(UUID().uuidString.prefix(8).lowercased())"
    private var processes: [Background] = []

    init() throws {
        try run("/usr/sbin/ip", ["netns", "add", name])
        try exec(["/usr/sbin/ip", "link", "set", "lo", "up"])
        try exec(["/usr/sbin/ip", "route", "add", "local", "10.96.0.0/16", "dev", "lo"])
    }

    /// Sends TCP to 10.96.0.0/16 made inside the namespace to the proxy's outbound port.
    func redirectClusterIPs(to port: Int) throws {
        try exec(["/usr/sbin/iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "10.96.0.0/16", "-j", "REDIRECT", "--to-ports", String(port)])
    }

    /// Runs a command inside to completion.
    @discardableResult
    func exec(_ command: [String]) throws -> EinoProcess.Output {
        try run("/usr/sbin/ip", ["netns", "exec", name] + command)
    }

    /// Starts a long-running command inside.
    func start(_ command: [String]) throws -> Background {
        let process = try Background("/usr/sbin/ip", ["netns", "exec", name] + command)
        process.killOnDeinit = true
        processes.append(process)
        return process
    }

    @discardableResult
    private func run(_ executable: String, _ arguments: [String]) throws -> EinoProcess.Output {
        let output = try EinoProcess.run(URL(fileURLWithPath: executable), arguments)
        guard output.status == 0 else { throw HarnessError("\(executable) \(arguments.joined(separator: " ")) failed: \(output.stdout)\(output.stderr)") }
        return output
    }

    deinit {
        for process in processes { process.stop(SIGKILL) }
        _ = try? EinoProcess.run(URL(fileURLWithPath: "/usr/sbin/ip"), ["netns", "del", name])
    }
}

/// A python HTTP/2 upstream from Tests/Scripts/h2_upstream.py (gRPC-style trailers).
final class H2Upstream {
    let process: Background
    let port: Int

    init(_ name: String) throws {
        // Debian's python3-h2 is installed for the system interpreter.
        process = try Background("/usr/bin/python3", [scripts.appendingPathComponent("h2_upstream.py").path, name])
        process.killOnDeinit = true
        port = Int(try process.line(startingWith: "listening ").dropFirst("listening ".count))!
    }

    var address: String { "127.0.0.1:\(port)" }
}

/// A running `eino proxy` with port-0 listeners, on a config written to a temporary file.
final class RunningProxy {
    let process: Background
    let directory: URL
    let configFile: URL
    let outbound: String
    let inbound: String
    let admin: String
    /// Where the proxy runs, when not in the host's network: its admin port is reached there.
    let namespace: NetworkNamespace?

    /// `cpu` pins the proxy to that one CPU (`taskset`), as a sidecar with a one-CPU cpuset runs.
    init(config: String, app: String = "127.0.0.1:9", extra: [String] = [], namespace: NetworkNamespace? = nil, cpu: Int? = nil) throws {
        self.namespace = namespace
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("eino-proxy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        configFile = directory.appendingPathComponent("proxy.yaml")
        try config.write(to: configFile, atomically: true, encoding: .utf8)
        let command = (cpu.map { ["/usr/bin/taskset", "-c", "\($0)"] } ?? []) + [EinoProcess.binary.path,
            "proxy", "--config", configFile.path, "--app", app,
            "--outbound", "127.0.0.1:0", "--inbound", "127.0.0.1:0", "--admin", "127.0.0.1:0",
        ] + extra
        if let namespace {
            process = try Background("/usr/sbin/ip", ["netns", "exec", namespace.name] + command)
        } else {
            process = try Background(command[0], Array(command.dropFirst()))
        }
        let ready = try process.line(startingWith: "eino proxy ready ")
        var fields: [String: String] = [:]
        for field in ready.split(separator: " ") {
            let parts = field.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        outbound = fields["outbound"]!
        inbound = fields["inbound"]!
        admin = fields["admin"]!
    }

    func rewrite(_ config: String) throws {
        // Write beside and rename, as editors and config managers do.
        let temporary = directory.appendingPathComponent("proxy.yaml.new")
        try config.write(to: temporary, atomically: false, encoding: .utf8)
        _ = rename(temporary.path, configFile.path)
    }

    /// One Prometheus sample value, or 0 when absent.
    func metric(_ series: String) throws -> Double {
        let arguments = ["-s", "http://\(admin)/metrics"]
        let text = try namespace.map { try $0.exec(["/usr/bin/curl"] + arguments) }?.stdout ?? curl(arguments).stdout
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))!
        }
        return 0
    }

    /// Peak resident memory of the proxy (VmHWM), in KiB.
    func peakRSSKiB() throws -> Int {
        try statusField("VmHWM")
    }

    func rssKiB() throws -> Int {
        try statusField("VmRSS")
    }

    private func statusField(_ name: String) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(process.pid)/status", encoding: .utf8)
        for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])!
        }
        throw HarnessError("no \(name) in /proc/\(process.pid)/status")
    }

    deinit {
        process.stop()
        try? FileManager.default.removeItem(at: directory)
    }
}

@discardableResult
func curl(_ arguments: [String]) throws -> EinoProcess.Output {
    try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/curl"), arguments)
}

func python(_ script: String, _ arguments: [String]) throws -> EinoProcess.Output {
    try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/env"), ["python3", scripts.appendingPathComponent(script).path] + arguments)
}

/// Polls `condition` until it holds or `timeout` seconds pass.
func eventually(timeout: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(10_000)
    }
    return try condition()
}

/// Parses load.py's JSON line.
struct LoadResult: Decodable {
    var served: [String: Int]
    var status: [String: Int]
    var errors: Int
}

func load(_ address: String, authority: String, count: Int, connections: Int = 4, path: String = "/", headers: [String] = []) throws -> LoadResult {
    let output = try python("load.py", [address, authority, String(count), String(connections), path] + headers)
    guard output.status == 0 else { throw HarnessError("load.py failed: \(output.stderr)") }
    return try JSONDecoder().decode(LoadResult.self, from: Data(output.stdout.utf8))
}

/// Header lines of a `curl -i` / `curl -D -` output, lower-cased names.
func headerValue(_ output: String, _ name: String) -> String? {
    for line in output.split(separator: "\r\n") + output.split(separator: "\n") {
        let parts = line.split(separator: ":", maxSplits: 1)
        if parts.count == 2, parts[0].lowercased() == name {
            return parts[1].trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }
    return nil
}
