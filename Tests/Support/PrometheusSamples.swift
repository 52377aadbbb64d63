import Foundation

/// A `/metrics` page as parsed by the `prometheus_client` Python parser (Tests/Scripts/
/// parse_metrics.py): each sample written `name{k="v",...}` with sorted labels. Parsing
/// fails the test when the text is not valid exposition format.
public struct PrometheusSamples: Sendable {
    public let values: [String: Double]

    /// Fetches and parses `url`; `caFile` for an HTTPS endpoint.
    public init(url: String, caFile: String? = nil) throws {
        let script = EinoProcess.repositoryRoot.appendingPathComponent("Tests/Scripts/parse_metrics.py").path
        // Debian's python3-prometheus-client is installed for the system interpreter.
        let output = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/python3"), [script, url] + (caFile.map { [$0] } ?? []))
        guard output.status == 0 else { throw PollTimeout(description: "metrics at \(url) do not parse: \(output.stderr)") }
        var values: [String: Double] = [:]
        for line in output.stdoutLines {
            guard let space = line.lastIndex(of: " ") else { continue }
            values[String(line[..<space])] = Double(line[line.index(after: space)...])
        }
        self.values = values
    }

    /// The sample's value, 0 when absent; `labels` in any order.
    public func value(_ name: String, _ labels: [String: String] = [:]) -> Double {
        values[name + "{" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\($0.value)\"" }.joined(separator: ",") + "}"] ?? 0
    }
}
