#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Replaces files so that a crash leaves the old content or the new, never a mix.
enum DurableFile {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Writes `data` to a temporary sibling, fsyncs it, renames it over `url` and fsyncs
    /// the directory so the rename itself survives a power cut. New files are 0600:
    /// control-plane state is nobody else's business.
    static func replace(_ url: URL, with data: Data, mode: mode_t = 0o600) throws {
        let directory = url.deletingLastPathComponent().path
        let temporary = url.path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw Failure(description: "open \(temporary): \(String(cString: strerror(errno)))") }
        var written = 0
        let ok = data.withUnsafeBytes { buffer -> Bool in
            while written < buffer.count {
                let result = write(fd, buffer.baseAddress! + written, buffer.count - written)
                if result < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                written += result
            }
            return fsync(fd) == 0
        }
        let error = errno
        close(fd)
        guard ok else { throw Failure(description: "write \(temporary): \(String(cString: strerror(error)))") }
        guard rename(temporary, url.path) == 0 else {
            throw Failure(description: "rename \(temporary): \(String(cString: strerror(errno)))")
        }
        let directoryFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            fsync(directoryFD)
            close(directoryFD)
        }
    }
}
