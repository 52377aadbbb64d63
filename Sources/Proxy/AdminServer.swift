import MeshConfig
import NIOCore
import NIOHTTP1
import NIOPosix

/// The admin listener: `/live`, `/ready`, `/metrics`, `/mirrors`, `/config`, `POST /shutdown`.
enum AdminServer {
    static func bind(server: ProxyServer, host: String, port: Int, group: EventLoopGroup) -> EventLoopFuture<Channel> {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(server: server))
                }
            }
            .bind(host: host, port: port)
    }
}

final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: ProxyServer
    private var head: HTTPRequestHead?

    init(server: ProxyServer) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            handle(head, context: context)
        }
    }

    private func handle(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = String(requestPath(of: head.uri))
        switch (head.method, path) {
        case (.GET, "/live"), (.HEAD, "/live"):
            respond(context, head, .ok, "live\n")
        case (.GET, "/ready"), (.HEAD, "/ready"):
            if server.isReady {
                respond(context, head, .ok, "ready\n")
            } else {
                respond(context, head, .serviceUnavailable, "not ready\n")
            }
        case (.GET, "/metrics"):
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            server.gatherMetrics(on: context.eventLoop).and(server.gatherMirrors(on: context.eventLoop)).whenComplete { result in
                let (handler, context) = loopBound.value
                switch result {
                case .success(let (metrics, mirrors)):
                    handler.respond(context, head, .ok, metrics.prometheusText() + mirrors.prometheusText(), contentType: "text/plain; version=0.0.4; charset=utf-8")
                case .failure(let error):
                    handler.respond(context, head, .internalServerError, "metrics: \(error)\n")
                }
            }
        case (.GET, "/mirrors"):
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            server.gatherMirrors(on: context.eventLoop).whenComplete { result in
                let (handler, context) = loopBound.value
                switch result {
                case .success(let mirrors):
                    handler.respond(context, head, .ok, mirrors.json(), contentType: "application/json")
                case .failure(let error):
                    handler.respond(context, head, .internalServerError, "mirrors: \(error)\n")
                }
            }
        case (.GET, "/config"):
            guard let snapshot = server.currentSnapshot else {
                respond(context, head, .serviceUnavailable, "no config loaded\n")
                return
            }
            respond(context, head, .ok, String(decoding: SnapshotDocument(snapshot).json(), as: UTF8.self), contentType: "application/json")
        case (.POST, "/shutdown"):
            guard Self.isLoopback(context.channel.remoteAddress) else {
                respond(context, head, .forbidden, "shutdown is allowed from loopback only\n")
                return
            }
            respond(context, head, .ok, "shutting down\n")
            server.shutdown(reason: "POST /shutdown")
        case (_, "/live"), (_, "/ready"), (_, "/metrics"), (_, "/mirrors"), (_, "/config"), (_, "/shutdown"):
            respond(context, head, .methodNotAllowed, "method not allowed\n")
        default:
            respond(context, head, .notFound, "not found; try /live /ready /metrics /mirrors /config /shutdown\n")
        }
    }

    static func isLoopback(_ address: SocketAddress?) -> Bool {
        guard let ip = address?.ipAddress else { return false }
        return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
    }

    private func respond(_ context: ChannelHandlerContext, _ request: HTTPRequestHead, _ status: HTTPResponseStatus, _ body: String, contentType: String = "text/plain; charset=utf-8") {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: String(body.utf8.count))
        if !request.isKeepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        if request.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: body)))), promise: nil)
        }
        let keepAlive = request.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }
}
