import Foundation

/// A long-running process under test (`eino control`, `eino proxy`, a python upstream):
/// started, watched line by line until it says it is ready, then stopped or killed.
public final class ServerProcess: @unchecked Sendable {
    public let process = Process()
    private let output = CollectedOutput()

    /// Starts `executable` with `arguments` from the repository root.
    public init(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil) throws {
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = EinoProcess.repositoryRoot
        if let environment { process.environment = environment }
        let stdoutPipe = Pipe(), stderrPipe = Pipe()
        process.standardOutput = stdoutPipe
        process.standardError = stderrPipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // The readers hold the collector, not this object, so dropping the last reference
        // to a ServerProcess still runs deinit and kills the process.
        let output = self.output
        Thread.detachNewThread {
            var pending = Data()
            while case let chunk = stdoutPipe.fileHandleForReading.availableData, !chunk.isEmpty {
                pending.append(chunk)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    output.append(line: String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                    pending.removeSubrange(pending.startIndex...newline)
                }
            }
            output.stdoutClosed.signal()
        }
        Thread.detachNewThread {
            while case let chunk = stderrPipe.fileHandleForReading.availableData, !chunk.isEmpty {
                output.append(stderr: String(decoding: chunk, as: UTF8.self))
            }
        }
    }

    /// Runs the built `eino` with `arguments`.
    public static func eino(_ arguments: [String]) throws -> ServerProcess {
        try ServerProcess(EinoProcess.binary, arguments)
    }

    public var lines: [String] { output.lines }
    public var stderr: String { output.stderr }

    /// The first stdout line starting with `prefix`, polled until `timeout`.
    public func waitForLine(startingWith prefix: String, timeout: TimeInterval = 30) throws -> String {
        try poll(timeout: timeout, "a line starting with \(prefix) (stderr: \(stderr))") {
            lines.first { $0.hasPrefix(prefix) }
        }
    }

    /// `key=value` from the ready line, e.g. `listen` → `127.0.0.1:40123`.
    public func readyValue(_ key: String, prefix: String) throws -> String {
        let line = try waitForLine(startingWith: prefix)
        for field in line.split(separator: " ") where field.hasPrefix("\(key)=") {
            return String(field.dropFirst(key.count + 1))
        }
        throw PollTimeout(description: "no \(key)= in \(line)")
    }

    /// SIGTERM, then SIGKILL if the process is still there after two seconds: test runners
    /// may hand their children SIGTERM ignored, and a test must never leave a server behind.
    public func terminate() {
        guard process.isRunning else { return }
        process.terminate()
        if (try? poll(timeout: 2, "exit after SIGTERM") { process.isRunning ? nil : true }) == nil { kill() }
        process.waitUntilExit()
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    public func kill() { if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) } }

    /// Waits for the exit and returns the status, or throws after `timeout`.
    @discardableResult
    public func waitForExit(timeout: TimeInterval = 30) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        let status = try poll(timeout: timeout, "process \(process.processIdentifier) to exit") { process.isRunning ? nil : process.terminationStatus }
        if output.stdoutClosed.wait(timeout: .now() + max(0, deadline.timeIntervalSinceNow)) == .success {
            output.stdoutClosed.signal()  // later calls return at once too
        }
        return status
    }

    deinit {
        kill()
        process.waitUntilExit()
    }
}

/// What a process printed, filled by reader threads.
final class CollectedOutput: @unchecked Sendable {
    private let lock = NSLock()
    private var stdoutLines: [String] = []
    private var stderrText = ""
    /// Signalled when stdout reaches its end, so `waitForExit` returns with every line read.
    let stdoutClosed = DispatchSemaphore(value: 0)

    var lines: [String] { lock.withLock { stdoutLines } }
    var stderr: String { lock.withLock { stderrText } }

    func append(line: String) { lock.withLock { stdoutLines.append(line) } }
    func append(stderr text: String) { lock.withLock { stderrText += text } }
}

public struct PollTimeout: Error, CustomStringConvertible {
    public var description: String
}

/// Polls `condition` every 10 ms until it yields a value or `timeout` passes: the way tests
/// wait for something to happen, instead of sleeping a guessed time.
public func poll<T>(timeout: TimeInterval, _ what: @autoclosure () -> String, _ condition: () throws -> T?) throws -> T {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if let value = try condition() { return value }
        if Date() > deadline { throw PollTimeout(description: "timed out after \(timeout) s waiting for \(what())") }
        Thread.sleep(forTimeInterval: 0.01)
    }
}

/// `poll` for async tests: waits with `Task.sleep`, so the thread stays free for the code
/// under test.
public func waitFor<T>(timeout: TimeInterval, _ what: @autoclosure () -> String, _ condition: () async throws -> T?) async throws -> T {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if let value = try await condition() { return value }
        if Date() > deadline { throw PollTimeout(description: "timed out after \(timeout) s waiting for \(what())") }
        try await Task.sleep(for: .milliseconds(10))
    }
}
