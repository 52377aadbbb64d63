import ArgumentParser
import ControlPlane
import Foundation

/// `eino stat [SERVICE] [--window 1m] [-o json]`: golden metrics per service and backend,
/// as the control plane aggregated them from the proxies' reports.
struct StatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stat",
        abstract: "Show requests, success rate, rps and latency percentiles per service and backend.",
        discussion: "Counted by the calling proxies (client side); latency is to the response head. Windows: 1m, 10m.")

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table, json
    }

    @OptionGroup var control: ControlOptions

    @Argument(help: "Only this (root) service.")
    var service: String?

    @Option(help: "1m or 10m.")
    var window = "1m"

    @Option(name: [.customShort("o"), .customLong("output")], help: "table or json.")
    var output: Format = .table

    func validate() throws {
        if TelemetryAggregator.windows[window] == nil {
            throw ValidationError("--window must be 1m or 10m, got \"\(window)\"")
        }
    }

    func run() async throws {
        let query = "window=\(window)" + (service.map { "&service=\($0.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? $0)" } ?? "")
        let response = try await reportingRefusals {
            try await ControlClient(control).send(.GET, "/v1/stat?\(query)", as: ControlAPI.StatResponse.self)
        }
        switch output {
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(response.rows), as: UTF8.self))
        case .table:
            print(Self.table(response.rows), terminator: "")
        }
    }

    /// Aligned columns, one row per (service, backend); a header alone when nothing ran.
    static func table(_ rows: [ControlAPI.StatRow]) -> String {
        var lines = [["SERVICE", "BACKEND", "REQUESTS", "SUCCESS", "RPS", "P50", "P95", "P99"]]
        for row in rows {
            lines.append([
                row.service, row.backend, String(row.requests), String(format: "%.2f%%", row.successRate * 100),
                String(format: "%.1f", row.rps), milliseconds(row.latencyMsP50), milliseconds(row.latencyMsP95), milliseconds(row.latencyMsP99),
            ])
        }
        let widths = lines[0].indices.map { column in lines.map { $0[column].count }.max() ?? 0 }
        return lines.map { line in
            line.enumerated().map { column, cell in
                column == line.count - 1 ? cell : cell.padding(toLength: widths[column] + 2, withPad: " ", startingAt: 0)
            }.joined()
        }.joined(separator: "\n") + "\n"
    }

    private static func milliseconds(_ value: Double) -> String {
        value < 10 ? String(format: "%.2fms", value) : String(format: "%.0fms", value)
    }
}
