import ArgumentParser
import ControlPlane
import Foundation

struct MirrorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mirror", abstract: "Traffic mirroring.", subcommands: [MirrorReportCommand.self])
}

/// `eino mirror report SERVICE`: how the shadows of a service answered compared with it,
/// summed over every proxy's reports. `--fail-above` makes it a release gate.
struct MirrorReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "report", abstract: "Mirror divergence of a root service.")

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case table, json
    }

    @OptionGroup var control: ControlOptions

    @Option(name: [.customShort("n"), .customLong("namespace")], help: "The service's namespace.")
    var namespace: String = "default"

    @Option(name: [.customShort("o"), .customLong("output")], help: "table or json.")
    var output: Format = .table

    @Option(name: .customLong("fail-above"), help: "Exit 1 when a mirror's mismatch rate (0…1) is above this.")
    var failAbove: Double?

    @Argument(help: "The root service a TrafficMirror copies.")
    var service: String

    func validate() throws {
        if let failAbove, !(0...1).contains(failAbove) { throw ValidationError("--fail-above must be a rate from 0 to 1, got \(failAbove)") }
    }

    func run() async throws {
        let report = try await reportingRefusals {
            try await ControlClient(control).send(.GET, "/v1/mirrors/\(namespace)/\(service)", as: ControlAPI.MirrorReport.self)
        }
        switch output {
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        case .table:
            print(Self.table(report), terminator: "")
        }
        if let failAbove {
            let over = report.mirrors.filter { $0.mismatch_rate > failAbove }
            for mirror in over {
                printError("mirror \(mirror.service): mismatch rate \(Self.rate(mirror.mismatch_rate)) is above \(Self.rate(failAbove))")
            }
            if !over.isEmpty { throw ExitCode(1) }
        }
    }

    /// The counters as a table, then up to `samples` recent mismatches per mirror.
    static func table(_ report: ControlAPI.MirrorReport, samples: Int = 10) -> String {
        guard !report.mirrors.isEmpty else { return "no mirror reports for \(report.service) yet\n" }
        var rows = [["MIRROR", "SAMPLED", "SENT", "DROPPED", "FAILED", "COMPARED", "MISMATCH", "STATUS", "HEADERS", "BODY", "P50 PRIMARY", "P50 SHADOW"]]
        for mirror in report.mirrors {
            rows.append([mirror.service, "\(mirror.sampled)", "\(mirror.sent)", "\(mirror.dropped)", "\(mirror.failed)", "\(mirror.compared)",
                         rate(mirror.mismatch_rate), "\(mirror.status_mismatches)", "\(mirror.header_mismatches)", "\(mirror.body_mismatches)",
                         milliseconds(mirror.primary_latency_ms_p50), milliseconds(mirror.shadow_latency_ms_p50)])
        }
        var text = columns(rows)
        for mirror in report.mirrors where !mirror.samples.isEmpty {
            text += "\nrecent mismatches, \(report.service) → \(mirror.service):\n"
            for sample in mirror.samples.prefix(samples) {
                text += "  \(sample.method) \(sample.path)  \(sample.primary_status)/\(sample.shadow_status)  \(sample.difference)\n"
            }
        }
        return text
    }

    static func rate(_ value: Double) -> String { String(format: "%.1f%%", value * 100) }
    static func milliseconds(_ value: Double) -> String { value == 0 ? "-" : String(format: "%.2fms", value) }

    /// Left-aligned columns two spaces apart.
    static func columns(_ rows: [[String]]) -> String {
        var widths = [Int](repeating: 0, count: rows.map(\.count).max() ?? 0)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }
}
