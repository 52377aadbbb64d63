import Foundation

/// A long-running process under test (`eino control`, `eino proxy`, a python upstream):
/// started, watched line by line until it says it is ready, then stopped or killed.
public final class ServerProcess: @unchecked Sendable {
    public let process = Process()
    private let lock = NSLock()
    private var stdoutLines: [String] = []
    private var stderrText = ""
    private let stdoutPipe = Pipe()
    private let stderrPipe = Pipe()
    /// Signalled when stdout reaches its end, so `waitForExit` returns with every line read.
    private let stdoutClosed = DispatchSemaphore(value: 0)

    /// Starts `executable` with `arguments` from the repository root.
    public init(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil) throws {
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = EinoProcess.repositoryRoot
        if let environment { process.environment = environment }
        process.standardOutput = stdoutPipe
        process.standardError = stderrPipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        Thread.detachNewThread { [self] in
            var pending = Data()
            while case let chunk = stdoutPipe.fileHandleForReading.availableData, !chunk.isEmpty {
                pending.append(chunk)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    lock.withLock { stdoutLines.append(line) }
                }
            }
            stdoutClosed.signal()
        }
        Thread.detachNewThread { [self] in
            while case let chunk = stderrPipe.fileHandleForReading.availableData, !chunk.isEmpty {
                lock.withLock { stderrText += String(decoding: chunk, as: UTF8.self) }
            }
        }
    }

    /// Runs the built `eino` with `arguments`.
    public static func eino(_ arguments: [String]) throws -> ServerProcess {
        try ServerProcess(EinoProcess.binary, arguments)
    }

    public var lines: [String] { lock.withLock { stdoutLines } }
    public var stderr: String { lock.withLock { stderrText } }

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

    public func terminate() { if process.isRunning { process.terminate() } }

    /// SIGKILL: no chance to clean up, as in a crash.
    public func kill() { if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) } }

    /// Waits for the exit and returns the status, or throws after `timeout`.
    @discardableResult
    public func waitForExit(timeout: TimeInterval = 30) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        let status = try poll(timeout: timeout, "process \(process.processIdentifier) to exit") { process.isRunning ? nil : process.terminationStatus }
        if stdoutClosed.wait(timeout: .now() + max(0, deadline.timeIntervalSinceNow)) == .success {
            stdoutClosed.signal()  // later calls return at once too
        }
        return status
    }

    deinit {
        kill()
        process.waitUntilExit()
    }
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
