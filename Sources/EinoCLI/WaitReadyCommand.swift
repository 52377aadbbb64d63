import ArgumentParser
import Foundation
import Proxy

/// `eino wait-ready`: blocks until the proxy's admin `/ready` answers 200, for app entrypoints
/// (`eino wait-ready && exec app`) and for exec probes in Kubernetes.
struct WaitReadyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait-ready",
        abstract: "Wait until the proxy beside this app is ready.",
        discussion: """
        Polls GET /ready on the proxy's admin listener every 100ms. Exits 0 on a 200 answer, 1 when \
        --timeout passes first. --path /live checks liveness instead (the injected liveness probe).
        """
    )

    @Option(help: "The proxy's admin listener, HOST:PORT.")
    var admin: String = "127.0.0.1:7191"

    @Option(help: "How long to wait, e.g. 500ms, 10s, 1m.")
    var timeout: String = "60s"

    @Option(help: "The admin path to check.")
    var path: String = "/ready"

    func validate() throws {
        if ListenAddress.parse(admin) == nil { throw ValidationError("--admin must be HOST:PORT, got \"\(admin)\"") }
        if parseDuration(timeout) == nil { throw ValidationError("--timeout must be a duration such as 500ms, 10s, 1m, got \"\(timeout)\"") }
        if !path.hasPrefix("/") { throw ValidationError("--path must start with /, got \"\(path)\"") }
    }

    func run() throws {
        let address = ListenAddress.parse(admin)!
        let seconds = Double(parseDuration(timeout)!.nanoseconds) / 1e9
        let deadline = Date().addingTimeInterval(seconds)
        var last = "no answer yet"
        while true {
            let remaining = deadline.timeIntervalSinceNow
            switch AdminProbe.get(host: address.host, port: address.port, path: path, timeout: max(0.05, min(1, remaining))) {
            case .status(200): return
            case .status(let code): last = "\(path) answered \(code)"
            case .failed(let reason): last = reason
            }
            if Date().addingTimeInterval(0.1) > deadline { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        FileHandle.standardError.write(Data("eino wait-ready: the proxy at \(admin) was not ready within \(timeout) (last: \(last))\n".utf8))
        throw ExitCode(1)
    }
}

/// One plain-HTTP GET with blocking sockets and a timeout: no event loop, no Foundation
/// networking, so it works in minimal images and fresh network namespaces.
enum AdminProbe {
    enum Outcome: Equatable {
        case status(Int)
        case failed(String)
    }

    static func get(host: String, port: Int, path: String, timeout: TimeInterval) -> Outcome {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let bareHost = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let lookup = getaddrinfo(bareHost, String(port), &hints, &list)
        guard lookup == 0, let info = list else { return .failed("cannot resolve \(host): \(String(cString: gai_strerror(lookup)))") }
        defer { freeaddrinfo(list) }
        let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
        guard fd >= 0 else { return .failed("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var limit = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            return .failed("connect: \(String(cString: strerror(errno)))")
        }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(bareHost.contains(":") ? "[\(bareHost)]" : bareHost):\(port)\r\nConnection: close\r\n\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else {
            return .failed("send: \(String(cString: strerror(errno)))")
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while !received.contains(UInt8(ascii: "\n")) && received.count < 4096 {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count > 0 { received.append(contentsOf: buffer[0..<count]); continue }
            if count < 0 && errno == EINTR { continue }
            if count < 0 { return .failed("no answer: \(String(cString: strerror(errno)))") }
            break
        }
        // "HTTP/1.1 200 OK"
        let statusLine = String(decoding: received.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let code = Int(parts[1]) else {
            return .failed("not an HTTP answer: \"\(statusLine)\"")
        }
        return .status(code)
    }
}
