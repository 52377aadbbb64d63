import EinoTestSupport
import Foundation
import MeshConfig
import NIOHTTP1
@testable import Proxy
import Testing

/// The app's declared protocol decides how it is spoken to, not the client's: real clients
/// (curl, nghttp, python h2) through one proxy and through two over mTLS, to a python
/// HTTP/1.1 app and a python h2c app.
@Suite(.serialized) struct AppProtocolTests {
    /// 1 MiB of the pattern Tests/Scripts/h2_request.py sends (byte i is i % 251), and its SHA-256.
    static let upload = Data((0..<(1 << 20)).map { UInt8($0 % 251) })
    static let uploadDigest = "631b84027d6b9e52b539c4e8373622d23032dfadc64d60af87339c9037e4f769"

    static func uploadFile() throws -> URL {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("eino-upload-\(UUID().uuidString)")
        try upload.write(to: file)
        return file
    }

    /// A ProxyConfig naming `services` as (name, address, appProtocol or nil).
    static func config(_ services: [(String, String, String?)], tls: String = "", identity: String = "client") -> String {
        var text = """
        apiVersion: proxy.eino.dev/v1alpha1
        kind: ProxyConfig
        identity: {service: \(identity), namespace: default}
        \(tls)services:

        """
        for (name, address, appProtocol) in services {
            text += "- name: \(name)\n"
            if let appProtocol { text += "  appProtocol: \(appProtocol)\n" }
            text += "  endpoints:\n  - address: \"\(address)\"\n"
        }
        return text
    }

    @Test func anHTTP2ClientOfAnHTTP1AppIsConverted() throws {
        let app = try Upstream("web")
        let proxy = try RunningProxy(config: Self.config([("web", app.address, nil)]))
        let plain = try curl(["-s", "-i", "--http2-prior-knowledge", "-H", "Host: web", "http://\(proxy.outbound)/"])
        #expect(plain.stdout.hasPrefix("HTTP/2 200"), "\(plain.stdout)\n\(proxy.process.stderr)")
        #expect(plain.stdout.hasSuffix("\r\n\r\nweb\n"))
        // :authority became Host; a bodyless request carries no framing of its own.
        let headers = try curl(["-s", "--http2-prior-knowledge", "-H", "Host: web", "http://\(proxy.outbound)/headers"])
        #expect(headers.stdout.contains("host: web\n"), "\(headers.stdout)")
        #expect(!headers.stdout.contains("transfer-encoding"))
        #expect(!headers.stdout.contains("content-length"))
        // A streamed response (chunked from the app) arrives whole.
        let chunked = try curl(["-s", "--http2-prior-knowledge", "-H", "Host: web", "http://\(proxy.outbound)/chunked"])
        #expect(chunked.stdout == "chunk-0\nchunk-1\nchunk-2\nchunk-3\nchunk-4\n")
        // 1 MiB up, with curl's content-length, byte for byte.
        let file = try Self.uploadFile()
        defer { try? FileManager.default.removeItem(at: file) }
        let upload = try curl(["-s", "--http2-prior-knowledge", "-H", "Host: web", "--data-binary", "@\(file.path)", "http://\(proxy.outbound)/digest"])
        #expect(upload.stdout == "1048576 \(Self.uploadDigest) length -\n")
        // nghttp's requests too.
        let nghttp = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/nghttp"), ["-H", ":authority: web", "-d", file.path, "http://\(proxy.outbound)/digest"])
        #expect(nghttp.status == 0, "\(nghttp.stderr)")
        #expect(nghttp.stdout == "1048576 \(Self.uploadDigest) length -\n")
        #expect(try proxy.metric("eino_responses_total{direction=\"outbound\",service=\"web\",backend=\"web\",tls=\"false\",status_code=\"200\",classification=\"success\"}") == 5)
    }

    /// HTTP/2 needs no content-length; HTTP/1.1 does, or chunking: without either the app
    /// would read the body as its next request.
    @Test func anHTTP2BodyOfUnknownLengthIsChunkedWithItsTrailers() throws {
        let app = try Upstream("web")
        let proxy = try RunningProxy(config: Self.config([("web", app.address, nil)]))
        func send(_ method: String, _ size: Int, trailer: [String] = []) throws -> String {
            // Debian's python3-h2 is installed for the system interpreter.
            let output = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/python3"), [
                scripts.appendingPathComponent("h2_request.py").path, proxy.outbound, "web", method, "/digest", String(size)] + trailer)
            #expect(output.status == 0, "\(output.stderr)\n\(proxy.process.stderr)")
            return output.stdout
        }
        #expect(try send("POST", 1 << 20, trailer: ["x-checksum", "abc"]) == "200\n1048576 \(Self.uploadDigest) chunked x-checksum=abc\n")
        #expect(try send("POST", 1 << 20) == "200\n1048576 \(Self.uploadDigest) chunked -\n")
        // A method that rarely has a body still gets its body framed.
        #expect(try send("DELETE", 100_000) == "200\n100000 cd2df694e424bc7968cc37f47751019e5ca0cd1bdf2e479ea537c3a1c32ee1aa chunked -\n")
        // An empty POST says so with a length of 0.
        #expect(try send("POST", 0) == "200\n0 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 length -\n")
        // The connection to the app stayed in step: a plain request after them is answered.
        let after = try curl(["-s", "--http2-prior-knowledge", "-H", "Host: web", "http://\(proxy.outbound)/"])
        #expect(after.stdout == "web\n")
    }

    @Test func anHTTP1ClientOfAnH2CAppIsConverted() throws {
        let app = try H2Upstream("h2-app")
        // One event loop: one HTTP/2 connection to the app, whichever client connection asks.
        let proxy = try RunningProxy(config: Self.config([("api", app.address, "kubernetes.io/h2c")]), extra: ["--threads", "1"])
        let plain = try curl(["-s", "-i", "-H", "Host: api", "http://\(proxy.outbound)/hello"])
        #expect(plain.stdout.hasPrefix("HTTP/1.1 200"), "\(plain.stdout)\n\(proxy.process.stderr)")
        #expect(headerValue(plain.stdout, "x-served-by") == "h2-app")
        #expect(headerValue(plain.stdout, "transfer-encoding") == "chunked")  // HTTP/2 gave no length
        #expect(plain.stdout.contains("\r\n\r\nh2-app /hello 0 conn=1\n"))
        // A chunked upload streams into DATA frames.
        let file = try Self.uploadFile()
        defer { try? FileManager.default.removeItem(at: file) }
        let upload = try curl(["-s", "-H", "Host: api", "-H", "Transfer-Encoding: chunked", "--data-binary", "@\(file.path)", "http://\(proxy.outbound)/upload"])
        #expect(upload.stdout == "h2-app /upload 1048576 conn=1\n", "\(upload.stdout)")
        // The app's trailers reach an HTTP/1.1 client as chunked trailers.
        let raw = try curl(["-s", "--raw", "-H", "Host: api", "http://\(proxy.outbound)/t"])
        #expect(raw.stdout.hasSuffix("0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n"), "\(raw.stdout)")
        // Three curl connections, one HTTP/2 connection to the app (conn=1 each time).
        #expect(raw.stdout.contains("h2-app /t 0 conn=1\n"))
        #expect(try proxy.metric("eino_responses_total{direction=\"outbound\",service=\"api\",backend=\"api\",tls=\"false\",status_code=\"200\",classification=\"success\"}") == 3)
    }

    /// gRPC cannot travel as HTTP/1.1: it goes as HTTP/2 to a service declared http too.
    @Test func gRPCGoesAsHTTP2WhateverIsDeclared() throws {
        let app = try H2Upstream("grpc-app")
        let proxy = try RunningProxy(config: Self.config([("grpc", app.address, nil)]))
        let call = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/nghttp"), [
            "-v", "-H", ":authority: grpc", "-H", "content-type: application/grpc+proto", "http://\(proxy.outbound)/pkg.Service/Method"])
        #expect(call.status == 0)
        #expect(call.stdout.contains("grpc-status: 0"), "\(call.stdout)")
        #expect(call.stdout.contains("grpc-app /pkg.Service/Method 0 conn="))
    }

    /// Two proxies over mTLS: the client proxy sends HTTP/2 whatever the client spoke, the
    /// server proxy speaks its app's declared protocol (`--app-protocol`).
    @Test func throughTwoProxiesTheServerSideSpeaksItsAppsProtocol() throws {
        let certificates = try MTLSTests.Certificates(services: ["client", "web", "api"])
        let file = try Self.uploadFile()
        defer { try? FileManager.default.removeItem(at: file) }

        // An HTTP/1.1 app behind `web`, called by curl and nghttp in HTTP/2.
        let webApp = try Upstream("web-app")
        let web = try RunningProxy(config: Self.config([], tls: certificates.tlsBlock("web"), identity: "web"), app: webApp.address)
        // An h2c app behind `api`, called in HTTP/1.1.
        let apiApp = try H2Upstream("api-app")
        let api = try RunningProxy(config: Self.config([], tls: certificates.tlsBlock("api"), identity: "api"), app: apiApp.address,
                                   extra: ["--app-protocol", "h2c"])
        let client = try RunningProxy(config: """
            apiVersion: proxy.eino.dev/v1alpha1
            kind: ProxyConfig
            identity: {service: client, namespace: default}
            \(certificates.tlsBlock("client"))services:
            - name: web
              endpoints: [{address: "\(web.inbound)", identity: "\(MTLSTests.spiffe("web"))"}]
            - name: api
              endpoints: [{address: "\(api.inbound)", identity: "\(MTLSTests.spiffe("api"))"}]

            """)

        let plain = try curl(["-s", "-i", "--http2-prior-knowledge", "-H", "Host: web", "http://\(client.outbound)/"])
        #expect(plain.stdout.hasPrefix("HTTP/2 200"), "\(plain.stdout)\n\(client.process.stderr)\n\(web.process.stderr)")
        #expect(plain.stdout.hasSuffix("\r\n\r\nweb-app\n"))
        let upload = try curl(["-s", "--http2-prior-knowledge", "-H", "Host: web", "--data-binary", "@\(file.path)", "http://\(client.outbound)/digest"])
        #expect(upload.stdout == "1048576 \(Self.uploadDigest) length -\n")
        let nghttp = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/nghttp"), ["-H", ":authority: web", "-d", file.path, "http://\(client.outbound)/digest"])
        #expect(nghttp.stdout == "1048576 \(Self.uploadDigest) length -\n", "\(nghttp.stderr)")
        // An HTTP/1.1 chunked upload crosses the mesh as HTTP/2 without a length and reaches
        // the HTTP/1.1 app chunked again.
        let chunked = try curl(["-s", "-H", "Host: web", "-H", "Transfer-Encoding: chunked", "--data-binary", "@\(file.path)", "http://\(client.outbound)/digest"])
        #expect(chunked.stdout == "1048576 \(Self.uploadDigest) chunked -\n")
        #expect(try web.metric("eino_responses_total{direction=\"inbound\",service=\"web\",backend=\"web\",tls=\"true\",status_code=\"200\",classification=\"success\"}") == 4)

        let h1 = try curl(["-s", "-i", "-H", "Host: api", "http://\(client.outbound)/hello"])
        #expect(h1.stdout.hasPrefix("HTTP/1.1 200"), "\(h1.stdout)\n\(api.process.stderr)")
        #expect(headerValue(h1.stdout, "x-served-by") == "api-app")
        // gRPC crosses both proxies as HTTP/2 and its trailers come back.
        let call = try EinoProcess.run(URL(fileURLWithPath: "/usr/bin/nghttp"), [
            "-v", "-H", ":authority: api", "-H", "content-type: application/grpc", "http://\(client.outbound)/pkg.Service/Method"])
        #expect(call.stdout.contains("grpc-status: 0"), "\(call.stdout)")
        #expect(call.stdout.contains("api-app /pkg.Service/Method 0 conn="))
        // And to the HTTP/1.1-declared `web`, gRPC still goes as HTTP/2: its app cannot
        // speak it, so the reset shows as 502, not as a garbled HTTP/1.1 exchange.
        let grpcToWeb = try curl(["-s", "-i", "--http2-prior-knowledge", "-H", "Host: web", "-H", "content-type: application/grpc", "http://\(client.outbound)/x"])
        #expect(grpcToWeb.stdout.hasPrefix("HTTP/2 502"), "\(grpcToWeb.stdout)")
    }

    // MARK: without sockets

    @Test func declaredProtocolsAreReadInEverySpelling() {
        #expect(AppProtocol(declared: "http") == .http)
        #expect(AppProtocol(declared: "h2c") == .h2c)
        #expect(AppProtocol(declared: "kubernetes.io/h2c") == .h2c)
        #expect(AppProtocol(declared: "HTTP2") == .h2c)
        #expect(AppProtocol(declared: "grpc") == .grpc)
        #expect(AppProtocol(declared: "https") == nil)
        #expect(AppProtocol(declared: "") == nil)
    }

    @Test func gRPCIsRecognisedByItsContentType() {
        func isGRPC(_ type: String?) -> Bool {
            var headers = HTTPHeaders()
            if let type { headers.add(name: "content-type", value: type) }
            return UpstreamProtocol.isGRPC(headers)
        }
        #expect(isGRPC("application/grpc"))
        #expect(isGRPC("application/grpc+proto"))
        #expect(isGRPC("Application/GRPC+json"))
        #expect(isGRPC("application/grpc; charset=utf-8"))
        #expect(!isGRPC("application/grpc-web"))
        #expect(!isGRPC("application/grpc-web+proto"))
        #expect(!isGRPC("application/json"))
        #expect(!isGRPC("application/grp"))
        #expect(!isGRPC(nil))
        var headers = HTTPHeaders()
        #expect(!UpstreamProtocol.speaksHTTP2(.http, headers))
        #expect(UpstreamProtocol.speaksHTTP2(.h2c, headers))
        #expect(UpstreamProtocol.speaksHTTP2(.grpc, headers))
        headers.add(name: "content-type", value: "application/grpc")
        #expect(UpstreamProtocol.speaksHTTP2(.http, headers))
    }

    @Test func aHeldHeadIsFramedByWhatFollows() {
        func framed(_ method: HTTPMethod, contentFollows: Bool) -> [String] {
            var head = HTTPRequestHead(version: .http1_1, method: method, uri: "/")
            #expect(DowngradeFraming.needsDecision(head))
            DowngradeFraming.frame(&head, contentFollows: contentFollows)
            return head.headers.map { "\($0.name): \($0.value)" }
        }
        #expect(framed(.GET, contentFollows: false) == [])
        #expect(framed(.GET, contentFollows: true) == ["transfer-encoding: chunked"])
        #expect(framed(.POST, contentFollows: false) == ["content-length: 0"])
        #expect(framed(.PUT, contentFollows: true) == ["transfer-encoding: chunked"])
        let known = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/", headers: ["content-length": "5"])
        #expect(!DowngradeFraming.needsDecision(known))
    }
}
