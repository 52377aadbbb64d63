import ArgumentParser
import AsyncHTTPClient
import ControlPlane
import Foundation
import NIOCore
import NIOHTTP1

/// `eino demo`: the whole mesh on loopback — control plane, two versions of an app behind
/// sidecars, a client sidecar — with a 90/10 TrafficSplit applied and the observed split
/// printed every second; then a third version receives a mirror of the traffic, and the
/// control plane's mirror report and `eino stat` table are printed every five seconds (the
/// sidecars report every second). Ctrl-C stops everything.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a control plane, demo apps and sidecars on loopback and show a live traffic split.")

    @Option(help: "Stop after this long (default: run until Ctrl-C).")
    var duration: DurationArgument?

    @Option(help: "Requests per second sent through the client sidecar.")
    var rate = 50

    func run() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("eino-demo-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let children = DemoChildren(logDirectory: directory)
        defer {
            children.stopAll()
            try? FileManager.default.removeItem(atPath: directory)
        }
        let stop = DemoStop()
        stop.onSignal { children.stopAll() }

        say("starting the control plane; data and logs in \(directory)")
        let control = try children.start("control", ["control", "--data-dir", directory, "--listen", "127.0.0.1:0"])
        let url = "https://" + (try await control.value("listen", after: "eino control ready"))
        let options = try ControlOptions.parse(["--control", url, "--data-dir", directory])

        var inbound: [String: String] = [:]
        for version in ["v1", "v2", "v3"] {
            // v3 is the rewrite under test: it prices every 20th item wrong.
            let extra = version == "v3" ? ["--diverge-every", "20"] : []
            let app = try children.start("app-\(version)", ["demo-app", "--name", version, "--listen", "127.0.0.1:0"] + extra)
            let appAddress = try await app.value("listen", after: "eino demo-app ready")
            let sidecar = try await startSidecar(service: "web-\(version)", app: appAddress, options: options, children: children)
            inbound[version] = try await sidecar.value("inbound", after: "eino proxy ready")
            say("web-\(version): app on \(appAddress), sidecar inbound \(inbound[version]!)")
        }
        let client = try await startSidecar(service: "client", app: "127.0.0.1:9", options: options, children: children)
        let outbound = try await client.value("outbound", after: "eino proxy ready")
        say("client sidecar: outbound \(outbound)")

        let split = """
            apiVersion: split.smi-spec.io/v1alpha2
            kind: TrafficSplit
            metadata: {name: web-canary}
            spec:
              service: web
              backends:
              - {service: web-v1, weight: 90}
              - {service: web-v2, weight: 10}
            """
        _ = try await ControlClient(options).send(
            .POST, "/v1/apply", body: ControlAPI.ApplyRequest(files: [.init(name: "demo-split.yaml", content: split)]),
            as: ControlAPI.ChangeResponse.self)
        say("applied TrafficSplit default/web-canary: web → web-v1 90%, web-v2 10%")
        let mirror = """
            apiVersion: mirror.eino.dev/v1alpha1
            kind: TrafficMirror
            metadata: {name: web-shadow}
            spec:
              service: web
              mirrors: [{service: web-v3, percent: 100}]
              compare: {ignoreHeaders: [x-served-by], ignoreJSONPaths: [$.app]}
            """
        _ = try await ControlClient(options).send(
            .POST, "/v1/apply", body: ControlAPI.ApplyRequest(files: [.init(name: "demo-mirror.yaml", content: mirror)]),
            as: ControlAPI.ChangeResponse.self)
        say("applied TrafficMirror default/web-shadow: a copy of every request to web goes to web-v3, answers compared")
        try await waitForSplitAndMirror(outbound: outbound, options: options)
        say("sending \(rate) requests/s to http://web/items/0…99 through the client sidecar (\(outbound))")

        try await drive(outbound: outbound, options: options, stop: stop)
    }

    private func startSidecar(service: String, app: String, options: ControlOptions, children: DemoChildren) async throws -> DemoChild {
        let token = try await ControlClient(options).send(
            .POST, "/v1/tokens", body: ControlAPI.TokenRequest(service: service, namespace: "default", ttlSeconds: 600),
            as: ControlAPI.TokenResponse.self
        ).token
        return try children.start("proxy-\(service)", [
            "proxy", "--service", service, "--app", app, "--control", options.control, "--join-token", token,
            "--ca-file", "\(options.dataDir)/ca.pem",
            "--inbound", "127.0.0.1:0", "--outbound", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--report-interval", "1s",
        ])
    }

    /// Waits until the client sidecar has the split (a request to web gets an answer) and
    /// the mirror (a copy shows in the control plane's report), so the figures count only
    /// traffic both govern.
    private func waitForSplitAndMirror(outbound: String, options: ControlOptions) async throws {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { _ = client.shutdown() as EventLoopFuture<Void> }
        let deadline = Date().addingTimeInterval(30)
        var routed = false
        while Date() < deadline {
            var request = HTTPClientRequest(url: "http://\(outbound)/")
            request.headers.add(name: "Host", value: "web")
            if !routed, let response = try? await client.execute(request, timeout: .seconds(2)), response.status == .ok,
               response.headers.first(name: "x-served-by") != nil {
                routed = true
            }
            if routed {
                _ = try? await client.execute(request, timeout: .seconds(2))
                let report = try? await ControlClient(options).send(.GET, "/v1/mirrors/default/web", as: ControlAPI.MirrorReport.self)
                if let mirror = report?.mirrors.first, mirror.sent > 0 { return }
            }
            try await Task.sleep(for: .milliseconds(routed ? 200 : 50))
        }
        throw CLIError(routed ? "no mirror copy reported within 30 s" : "the client sidecar did not route web within 30 s")
    }

    /// Sends requests at `rate` per second and prints, every second, who served them, and
    /// every five seconds the mirror report and the `eino stat` table (again at the end).
    private func drive(outbound: String, options: ControlOptions, stop: DemoStop) async throws {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let started = Date()
        let end = duration.map { started.addingTimeInterval($0.seconds) }
        var counts: [String: Int] = [:]
        var failures: [String: Int] = [:]
        var total = 0
        var nextReport = started.addingTimeInterval(1)
        let interval = 1.0 / Double(max(1, rate))
        var next = Date()
        while !stop.requested, end.map({ Date() < $0 }) ?? true {
            var request = HTTPClientRequest(url: "http://\(outbound)/items/\(total % 100)")
            request.headers.add(name: "Host", value: "web")
            do {
                let response = try await client.execute(request, timeout: .seconds(5))
                _ = try await response.body.collect(upTo: 1 << 16)
                if response.status == .ok, let servedBy = response.headers.first(name: "x-served-by") {
                    counts["web-\(servedBy)", default: 0] += 1
                } else {
                    failures[response.headers.first(name: "eino-error") ?? "status \(response.status.code)", default: 0] += 1
                }
            } catch {
                failures["\(error)", default: 0] += 1
            }
            total += 1
            if Date() >= nextReport {
                let seconds = Int(Date().timeIntervalSince(started).rounded())
                report(seconds: seconds, total: total, counts: counts, failures: failures)
                if seconds % 5 == 0 {
                    await printStat(options: options, atLeast: 0)
                    await printMirrorReport(options: options, atLeast: 0)
                }
                nextReport = nextReport.addingTimeInterval(1)
            }
            next = next.addingTimeInterval(interval)
            let wait = next.timeIntervalSinceNow
            if wait > 0 { try await Task.sleep(for: .seconds(wait)) }
        }
        try await client.shutdown()
        await printStat(options: options, atLeast: total)
        await printMirrorReport(options: options, atLeast: total)
    }

    /// The control plane's mirror report for web, once it has compared at least `copies`
    /// copies (reports come every second) or after 5 s.
    private func printMirrorReport(options: ControlOptions, atLeast copies: Int) async {
        let deadline = Date().addingTimeInterval(5)
        var report = ControlAPI.MirrorReport(service: "web", mirrors: [])
        repeat {
            if let response = try? await ControlClient(options).send(.GET, "/v1/mirrors/default/web", as: ControlAPI.MirrorReport.self) {
                report = response
            }
            if (report.mirrors.first?.compared ?? 0) >= UInt64(copies) && !report.mirrors.isEmpty { break }
            try? await Task.sleep(for: .milliseconds(200))
        } while Date() < deadline
        say("eino mirror report web (compared with web's own answers):")
        print(MirrorReportCommand.table(report, samples: 3), terminator: "")
        fflush(nil)
    }

    /// The control plane's golden metrics for web, as `eino stat web` shows them, once its
    /// window counts at least `sent` requests (reports come every second) or after 5 s.
    private func printStat(options: ControlOptions, atLeast sent: Int) async {
        let deadline = Date().addingTimeInterval(5)
        var rows: [ControlAPI.StatRow] = []
        repeat {
            if let response = try? await ControlClient(options).send(.GET, "/v1/stat?window=1m&service=web", as: ControlAPI.StatResponse.self) {
                rows = response.rows
            }
            if rows.reduce(0, { $0 + Int($1.requests) }) >= sent { break }
            try? await Task.sleep(for: .milliseconds(200))
        } while Date() < deadline
        say("eino stat web (last minute, counted by the client sidecar):")
        print(StatCommand.table(rows), terminator: "")
        fflush(nil)
    }

    private func report(seconds: Int, total: Int, counts: [String: Int], failures: [String: Int]) {
        let served = counts.values.reduce(0, +)
        let shares = ["web-v1", "web-v2"].map { name in
            let share = served == 0 ? 0 : Double(counts[name, default: 0]) * 100 / Double(served)
            return "\(name) \(String(format: "%5.1f", share))%"
        }
        let failed = failures.values.reduce(0, +)
        let causes = failures.isEmpty ? "" : " (" + failures.map { "\($0.key): \($0.value)" }.sorted().joined(separator: ", ") + ")"
        say("t=\(seconds)s requests \(total)  \(shares.joined(separator: "  "))  failed \(failed)\(causes)")
    }
}

private func say(_ line: String) {
    print(line)
    fflush(nil)
}

/// Ctrl-C and SIGTERM: stop sending, then stop the children.
final class DemoStop: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    private var sources: [DispatchSourceSignal] = []

    var requested: Bool { lock.withLock { flag } }

    func onSignal(_ action: @escaping @Sendable () -> Void) {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                lock.withLock { flag = true }
                action()
            }
            source.resume()
            sources.append(source)
        }
    }
}

/// The processes the demo runs: this same `eino` binary in other roles.
final class DemoChildren: @unchecked Sendable {
    private let lock = NSLock()
    private var children: [DemoChild] = []

    let logDirectory: String

    init(logDirectory: String) {
        self.logDirectory = logDirectory
    }

    func start(_ name: String, _ arguments: [String]) throws -> DemoChild {
        let child = try DemoChild(name: name, arguments: arguments, log: "\(logDirectory)/\(name).log")
        lock.withLock { children.append(child) }
        return child
    }

    /// Stops the children (SIGTERM, then waits: the proxies drain) newest first, each before the next, so sidecars deregister while
    /// the control plane still answers.
    func stopAll() {
        let all = lock.withLock { children.reversed() as [DemoChild] }
        for child in all {
            child.process.terminate()
            child.process.waitUntilExit()
        }
    }
}

final class DemoChild: @unchecked Sendable {
    let name: String
    let process = Process()
    private let lock = NSLock()
    private var lines: [String] = []

    init(name: String, arguments: [String], log: String) throws {
        self.name = name
        // This very binary, wherever it was started from.
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
        Thread.detachNewThread { [self] in
            var pending = Data()
            while case let chunk = output.fileHandleForReading.availableData, !chunk.isEmpty {
                pending.append(chunk)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    lock.withLock { lines.append(line) }
                }
            }
        }
    }

    /// `key=value` from the child's ready line, waiting up to 30 s for it.
    func value(_ key: String, after prefix: String) async throws -> String {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let line = lock.withLock({ lines.first { $0.hasPrefix(prefix) } }) {
                for field in line.split(separator: " ") where field.hasPrefix("\(key)=") {
                    return String(field.dropFirst(key.count + 1))
                }
                throw CLIError("\(name) printed no \(key)= in: \(line)")
            }
            guard process.isRunning else { throw CLIError("\(name) exited with status \(process.terminationStatus) before it was ready") }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw CLIError("\(name) was not ready after 30 s")
    }
}
