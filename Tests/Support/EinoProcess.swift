import Foundation

/// Runs real processes for tests: the built `eino` binary and peers such as curl.
public enum EinoProcess {
    /// The repository root, found from this file's location.
    public static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `eino` beside the test bundle: `make test` builds every product before testing.
    public static var binary: URL {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent("eino")
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue {
                return candidate
            }
            directory.deleteLastPathComponent()
        }
        return repositoryRoot.appendingPathComponent(".build/debug/eino")
    }

    public struct Output: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String

        public var stdoutLines: [String] { Self.lines(stdout) }
        public var stderrLines: [String] { Self.lines(stderr) }

        /// Lines without their terminators; no output is no lines.
        static func lines(_ text: String) -> [String] {
            guard !text.isEmpty else { return [] }
            // "\r\n" is one Character in Swift, so both line ends are matched by isNewline.
            return text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
                .dropLast(text.last?.isNewline == true ? 1 : 0).map(String.init)
        }
    }

    /// Runs `eino` with `arguments` from the repository root and waits for it.
    public static func eino(_ arguments: [String], stdin: String? = nil) throws -> Output {
        try run(binary, arguments, stdin: stdin)
    }

    /// Runs an executable to completion, feeding `stdin` and collecting both outputs.
    public static func run(_ executable: URL, _ arguments: [String], stdin: String? = nil) throws -> Output {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = repositoryRoot
        let input = Pipe(), output = Pipe(), error = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = error
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        // Read both pipes concurrently so neither fills up and blocks the child.
        let errorData = ReadAll(error.fileHandleForReading)
        let outData = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(status: process.terminationStatus,
                      stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errorData.wait(), as: UTF8.self))
    }
}

/// Reads a pipe to its end on a background thread.
final class ReadAll: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }
    }

    func wait() -> Data {
        done.wait()
        return data
    }
}
