import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The standard Prometheus process metrics (the names every client library uses), read
/// from /proc at scrape time. Empty where there is no /proc.
public enum ProcessMetrics {
    public static func current() -> [MetricsSnapshot.Scalar] {
        #if os(Linux)
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return [] }
        // Fields after the command name, starting with field 3 (state).
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        func field(_ number: Int) -> Double { fields.count > number - 3 ? Double(fields[number - 3]) ?? 0 : 0 }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        var result: [MetricsSnapshot.Scalar] = [
            .init("process_cpu_seconds_total", "User and system CPU time spent, in seconds.", .counter, (field(14) + field(15)) / ticks),
            .init("process_resident_memory_bytes", "Resident memory size in bytes.", .gauge, field(24) * pageSize),
        ]
        if let boot = bootTime() {
            result.append(.init("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.", .gauge,
                                boot + field(22) / ticks))
        }
        if let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            // The listing itself holds one descriptor while it runs.
            result.append(.init("process_open_fds", "Open file descriptors.", .gauge, Double(max(0, descriptors.count - 1))))
        }
        return result
        #else
        return []
        #endif
    }

    /// `btime` from /proc/stat: when the machine booted, in Unix seconds.
    private static func bootTime() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst("btime ".count))
        }
        return nil
    }
}
