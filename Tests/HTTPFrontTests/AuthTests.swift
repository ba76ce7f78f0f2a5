import Foundation
import HTTPFront
import Testing

/// Bearer-token authentication: every route but /v1/health needs the token, in-process
/// (`HTTPServerConfiguration.authToken`) and in the real server (`-auth-token-file`).
@Suite("Authentication")
struct AuthTests {
    static let token = "s3cret-Token.42"

    private static func withToken(_ configuration: inout HTTPServerConfiguration) {
        configuration.authToken = Array(AuthTests.token.utf8)
    }

    struct Route: Sendable, CustomTestStringConvertible {
        let method: String
        let path: String
        let body: String?
        var testDescription: String { "\(method) \(path)" }

        func request(headers: [String]) -> [UInt8] {
            RawRequest.make(method, path, body: body.map { Array($0.utf8) }, headers: headers)
        }
    }

    static let protectedRoutes = [
        Route(method: "PUT", path: "/v1/kv/secret", body: #"{"value":"aGk="}"#),
        Route(method: "GET", path: "/v1/kv/secret", body: nil),
        Route(method: "HEAD", path: "/v1/kv/secret", body: nil),
        Route(method: "DELETE", path: "/v1/kv/secret", body: nil),
        Route(method: "POST", path: "/v1/checkpoint", body: nil),
        Route(method: "GET", path: "/v1/role", body: nil),
        Route(method: "GET", path: "/metrics", body: nil),
        Route(method: "GET", path: "/v1/replication", body: nil),
        Route(method: "POST", path: "/v1/promote", body: nil),
    ]

    @Test func healthNeedsNoToken() throws {
        try withServer(AuthTests.withToken) { server in
            let connection = try server.connect()
            for headers in [[], ["Authorization: Bearer wrong"], ["Authorization: Bearer \(AuthTests.token)"]] {
                let response = try connection.exchange(RawRequest.get("/v1/health", headers: headers))
                #expect(response.status == 200)
                #expect(response.text == "{\"ok\":true}\n")
            }
        }
    }

    @Test(arguments: protectedRoutes)
    func routeWithoutTokenIs401(_ route: Route) throws {
        try withServer(AuthTests.withToken) { server in
            let connection = try server.connect()
            let response = try connection.exchange(route.request(headers: []), toHEAD: route.method == "HEAD")
            #expect(response.status == 401)
            #expect(response.headerValues("WWW-Authenticate") == ["Bearer"])
            #expect(response.header("Content-Type") == "application/json")
            if route.method != "HEAD" { #expect(response.text.hasPrefix("{\"error\":\"")) }
            // Nothing was written.
            let check = try connection.exchange(RawRequest.get("/v1/kv/secret", headers: ["Authorization: Bearer \(AuthTests.token)"]))
            #expect(check.status == 404)
        }
    }

    @Test(arguments: [
        "Bearer wrong",
        "Bearer \(token.dropLast())",
        "Bearer \(token)x",
        "Bearer \(token.uppercased())",
        "Bearer  \(token)",
        "Bearer",
        "Basic \(token)",
        token,
    ])
    func wrongTokenIs401(authorization: String) throws {
        try withServer(AuthTests.withToken) { server in
            let connection = try server.connect()
            for route in AuthTests.protectedRoutes {
                let response = try connection.exchange(route.request(headers: ["Authorization: \(authorization)"]), toHEAD: route.method == "HEAD")
                #expect(response.status == 401, "\(route.testDescription)")
                #expect(response.headerValues("WWW-Authenticate") == ["Bearer"])
            }
        }
    }

    @Test func everyRouteWorksWithTheToken() throws {
        try withServer(AuthTests.withToken) { server in
            let connection = try server.connect()
            let authorization = ["Authorization: Bearer \(AuthTests.token)"]
            for route in AuthTests.protectedRoutes {
                let response = try connection.exchange(route.request(headers: authorization), toHEAD: route.method == "HEAD")
                #expect(response.status == 200, "\(route.testDescription): \(response)")
            }
            let get = try connection.exchange(RawRequest.get("/v1/kv/secret", headers: authorization))
            #expect(get.status == 404)  // deleted above
        }
    }

    @Test(.timeLimit(.minutes(Sanitizer.slowdown)))
    func serverProcessWithAuthTokenFile() throws {
        let root = try TemporaryDirectory()
        defer { root.remove() }
        let tokenFile = root.file("token")
        try "  file-token-7 \n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let server = try ServerProcess(dataDirectory: root.file("data"), logPath: root.file("server.log"), arguments: ["-auth-token-file", tokenFile])
        defer { server.killAndWait() }
        #expect(server.log.contains("(bearer token required)"))

        let connection = try RawConnection(port: server.port)
        #expect(try connection.exchange(RawRequest.get("/v1/health")).status == 200)
        for headers in [[], ["Authorization: Bearer wrong"], ["Authorization: Bearer  file-token-7 "]] {
            let response = try connection.exchange(RawRequest.put("/v1/kv/k", text: "v", headers: headers))
            #expect(response.status == 401, "\(headers)")
            #expect(response.headerValues("WWW-Authenticate") == ["Bearer"])
        }
        let authorization = ["Authorization: Bearer file-token-7"]
        #expect(try connection.exchange(RawRequest.get("/v1/kv/k", headers: authorization)).status == 404)
        #expect(try connection.exchange(RawRequest.put("/v1/kv/k", text: "v", headers: authorization)).status == 200)
        #expect(try connection.exchange(RawRequest.get("/v1/kv/k", headers: authorization)).text == getBody(jsonKey: "\"k\"", value: Array("v".utf8)))
        #expect(try connection.exchange(RawRequest.get("/metrics", headers: authorization)).status == 200)
    }
}
