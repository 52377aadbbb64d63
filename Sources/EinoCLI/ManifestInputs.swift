import Foundation
import Manifests

/// The byte streams named on a command line: files, directories searched for `*.yaml` and
/// `*.yml` (sorted, so output is stable), or `-` for standard input.
struct ManifestInputs {
    struct Stream {
        var name: String
        var bytes: [UInt8]
    }

    var streams: [Stream] = []
    /// Paths that could not be read, reported like manifest problems.
    var problems: [ManifestProblem] = []

    static func read(_ paths: [String]) -> ManifestInputs {
        var inputs = ManifestInputs()
        for path in paths {
            if path == "-" {
                inputs.streams.append(Stream(name: "<stdin>", bytes: Array(FileHandle.standardInput.readDataToEndOfFile())))
                continue
            }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                inputs.fail(path, "no such file or directory")
                continue
            }
            let files = isDirectory.boolValue ? manifestFiles(under: path) : [path]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else {
                    inputs.fail(file, "cannot be read")
                    continue
                }
                inputs.streams.append(Stream(name: file, bytes: Array(data)))
            }
        }
        return inputs
    }

    private mutating func fail(_ path: String, _ message: String) {
        problems.append(ManifestProblem(file: path, line: 0, resource: "document 1", field: "(file)", message: message))
    }

    private static func manifestFiles(under directory: String) -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return [] }
        var files: [String] = []
        while let relative = walker.nextObject() as? String {
            guard relative.hasSuffix(".yaml") || relative.hasSuffix(".yml") else { continue }
            let full = (directory as NSString).appendingPathComponent(relative)
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue {
                files.append(full)
            }
        }
        return files.sorted()
    }
}
