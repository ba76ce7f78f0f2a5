import StorageEngine
import WireProtocol

/// Maps requests to the API's handlers (the Go server's routes, docs/OPERATIONS.md):
///
///     GET|HEAD        /v1/health        {"ok":true}
///     GET|HEAD        /v1/role          {"role":"primary"|"backup","writable":true|false}
///     GET|HEAD        /v1/writable      200 {"writable":true}; 503 {"writable":false,"error":…}
///     GET|HEAD|PUT|DELETE /v1/kv/{key}  the key is the percent-decoded rest of the path, as bytes;
///                                       GET answers ETag, PUT/DELETE take If-Match/If-None-Match
///     GET|HEAD        /v1/kv?…          a page of keys in order, or their count (ListHandler)
///     POST            /v1/txn           conditions, puts and deletes, all or nothing (TransactionHandler)
///     POST            /v1/checkpoint    {"ok":true} once the checkpoint is durable
///     POST            /v1/promote       {"role":"primary","epoch":N}; 409 {"error":…} if refused
///     GET|HEAD        /v1/replication   the replication figures (ReplicationStatus), or
///                                       {"role":"primary","replication":"off"} without replication
///     GET|HEAD        /metrics          Prometheus text
///
/// PUT, DELETE, POST /v1/txn and POST /v1/checkpoint are refused while `role.writeRefusal` says so (403 or 503);
/// `writable` in /v1/role and /v1/replication, and /v1/writable's status, say the same (a fenced
/// primary still says "primary", as the Go server would, but not writable).
/// Wrong method: 405 with Allow. Unknown path: 404. With an auth token configured, every route
/// but /v1/health and /v1/writable needs `Authorization: Bearer <token>` (401 otherwise): a load
/// balancer's health check often cannot send one, and neither says anything about the data.
/// Routing looks at the raw path, before percent-decoding: "/v1/kv//a" is the key "/a", and no
/// path is cleaned or redirected (the Go router's 301s made such keys unreachable).
///
/// A class, not a struct: every request reaches it through its connection, and a struct of
/// eight fields read out of a class is copied (a retain and release per field) per request.
final class Router: Sendable {
    let database: Database
    let role: any ServerRole
    let authToken: [UInt8]?
    let metrics: ServerMetrics
    let kv: KeyValueHandlers
    let list: ListHandler
    let transaction: TransactionHandler
    let replication: ReplicationHandlers

    init(database: Database, role: any ServerRole, configuration: HTTPServerConfiguration, metrics: ServerMetrics) {
        self.database = database
        self.role = role
        self.authToken = configuration.authToken
        self.metrics = metrics
        self.kv = KeyValueHandlers(database: database, role: role)
        self.list = ListHandler(database: database)
        self.transaction = TransactionHandler(database: database, role: role)
        self.replication = ReplicationHandlers(role: role)
    }

    static let kvPrefix = Array("/v1/kv/".utf8)
    // The methods each route allows (built once, not per request).
    static let readMethods = ["GET", "HEAD"]
    static let keyMethods = ["GET", "HEAD", "PUT", "DELETE"]
    static let postMethod = ["POST"]

    func route(_ request: HTTPRequest, _ responder: Responder) {
        let path = request.path
        let route: RouteName
        // The key route first: it is nearly every request, and each comparison below costs.
        if path.starts(with: Router.kvPrefix) {
            route = .kv
        } else if path.elementsEqual("/v1/health".utf8) {
            guard allow(request, Router.readMethods, route: .health, responder) else { return }
            return responder.send(.json(status: 200, body: Array("{\"ok\":true}\n".utf8)), route: .health)
        } else if path.elementsEqual("/v1/writable".utf8) {
            guard allow(request, Router.readMethods, route: .writable, responder) else { return }
            return responder.send(Router.writableAnswer(role.writeRefusal), route: .writable)
        } else if path.elementsEqual("/v1/kv".utf8) {
            route = .kvList
        } else if path.elementsEqual("/v1/txn".utf8) {
            route = .txn
        } else if path.elementsEqual("/v1/role".utf8) {
            route = .role
        } else if path.elementsEqual("/v1/checkpoint".utf8) {
            route = .checkpoint
        } else if path.elementsEqual("/metrics".utf8) {
            route = .metrics
        } else if path.elementsEqual("/v1/replication".utf8) {
            route = .replication
        } else if path.elementsEqual("/v1/promote".utf8) {
            route = .promote
        } else {
            return responder.send(.json(status: 404, error: "not found: no route for this path"), route: .other)
        }
        guard authorized(request) else {
            var response = HTTPResponse.json(status: 401, error: "missing or wrong bearer token")
            response.headers.append(("WWW-Authenticate", "Bearer"))
            return responder.send(response, route: route)
        }
        switch route {
        case .kv:
            guard allow(request, Router.keyMethods, allowHeader: "GET, PUT, DELETE", route: .kv, responder) else { return }
            kv.handle(request, key: path.dropFirst(Router.kvPrefix.count), responder)
        case .kvList:
            guard allow(request, Router.readMethods, route: .kvList, responder) else { return }
            list.handle(request, responder)
        case .txn:
            guard allow(request, Router.postMethod, route: .txn, responder) else { return }
            transaction.handle(request, responder)
        case .role:
            guard allow(request, Router.readMethods, route: .role, responder) else { return }
            var body = Array(#"{"role":"#.utf8)
            JSONWriter.appendString(role.role.rawValue, to: &body)
            body.append(contentsOf: Array((role.writeRefusal == nil ? #","writable":true}"# : #","writable":false}"#).utf8))
            body.append(0x0A)
            responder.send(.json(status: 200, body: body), route: .role)
        case .checkpoint:
            guard allow(request, Router.postMethod, route: .checkpoint, responder) else { return }
            kv.checkpoint(responder)
        case .metrics:
            guard allow(request, Router.readMethods, route: .metrics, responder) else { return }
            let text = metrics.render(engine: database.stats, role: role)
            responder.send(
                HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], body: Array(text.utf8)),
                route: .metrics)
        case .replication:
            guard allow(request, Router.readMethods, route: .replication, responder) else { return }
            replication.status(responder)
        case .promote:
            guard allow(request, Router.postMethod, route: .promote, responder) else { return }
            replication.promote(responder)
        default:
            responder.send(.json(status: 404, error: "not found"), route: .other)
        }
    }

    /// GET /v1/writable: 200 `{"writable":true}` while writes are accepted, else 503
    /// `{"writable":false,"error":"<why>"}`, for a load balancer's health check of the write pool.
    static func writableAnswer(_ refusal: WriteRefusal?) -> HTTPResponse {
        guard let refusal else { return writableYes }
        var body = Array(#"{"writable":false,"error":"#.utf8)
        JSONWriter.appendString(refusal.description, to: &body)
        body.append(contentsOf: Array("}\n".utf8))
        return .json(status: 503, body: body)
    }

    static let writableYes = HTTPResponse.json(status: 200, body: Array("{\"writable\":true}\n".utf8))

    /// Answers 405 (with Allow) unless the method is one of `methods`.
    private func allow(
        _ request: HTTPRequest, _ methods: [String], allowHeader: String? = nil, route: RouteName, _ responder: Responder
    ) -> Bool {
        if methods.contains(request.method) { return true }
        let allowed = allowHeader ?? methods.filter { $0 != "HEAD" }.joined(separator: ", ")
        var response = HTTPResponse.json(status: 405, error: "method \(request.method) not allowed; allowed: \(allowed)")
        response.headers.append(("Allow", allowed))
        responder.send(response, route: route)
        return false
    }

    /// Constant-time comparison of the bearer token: the time taken does not depend on where the
    /// first wrong byte is.
    private func authorized(_ request: HTTPRequest) -> Bool {
        guard let authToken else { return true }
        // The scheme is case-insensitive (RFC 9110 §11.1); the token is compared byte for byte.
        guard let header = request.headers["Authorization"], header.utf8.count > 7,
              header.prefix(7).lowercased() == "bearer "
        else { return false }
        let presented = Array(header.utf8.dropFirst(7))
        var difference = UInt8(presented.count == authToken.count ? 0 : 1)
        for index in 0..<authToken.count {
            difference |= authToken[index] ^ (index < presented.count ? presented[index] : 0)
        }
        return difference == 0
    }
}
