import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes identity files so that readers never see a half-written file and a key is never
/// readable by others, not even for a moment.
///
/// Each file is written to a fresh temporary name in the same directory, created with its
/// final mode (`open(O_CREAT|O_EXCL, mode)`: no chmod window), flushed to disk and then moved
/// into place — by `rename` when replacing, or by `link` when the target must not exist yet,
/// which fails atomically if someone else created it meanwhile. A proxy that watches these
/// files for rotation therefore sees either the old or the new contents.
enum FileStore {
    /// Mode of private keys: owner read/write only.
    static let privateMode: mode_t = 0o600
    /// Mode of certificates and bundles: public material.
    static let publicMode: mode_t = 0o644

    static func write(_ text: String, to path: String, mode: mode_t, replace: Bool) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let temporary = (directory.isEmpty ? "." : directory) + "/.\(name).\(UInt64.random(in: 0...UInt64.max)).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw IdentityError.file(path: path, problem: lastError()) }
        var ok = false
        defer {
            if !ok { unlink(temporary) }
        }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: false)
        do {
            try handle.write(contentsOf: Data(text.utf8))
            try handle.synchronize()
        } catch {
            close(fd)
            throw IdentityError.file(path: path, problem: "cannot write: \(error.localizedDescription)")
        }
        close(fd)
        if replace {
            guard rename(temporary, path) == 0 else { throw IdentityError.file(path: path, problem: lastError()) }
        } else {
            guard link(temporary, path) == 0 else {
                if errno == EEXIST { throw IdentityError.alreadyExists(path: path) }
                throw IdentityError.file(path: path, problem: lastError())
            }
            unlink(temporary)
        }
        ok = true
    }

    static func read(_ path: String) throws -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch let error as CocoaError where error.code == .fileReadNoSuchFile {
            throw IdentityError.file(path: path, problem: "no such file")
        } catch {
            throw IdentityError.file(path: path, problem: "cannot read: \(error.localizedDescription)")
        }
    }

    /// Creates `path` (and parents) if missing, owner-only: it may hold private keys.
    static func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(
                atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw IdentityError.file(path: path, problem: "cannot create directory: \(error.localizedDescription)")
        }
    }

    private static func lastError() -> String { String(cString: strerror(errno)) }
}
