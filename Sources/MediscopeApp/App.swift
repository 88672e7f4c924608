import Foundation
import MediscopeServer

/// Mediscope as a pre-forked FastCGI application: one handler per worker process.
public struct MediscopeApplication: WorkerApplication {
    public let config: AppConfig
    public var bodyLimitBytes: Int { config.bodyLimitBytes }

    public init(config: AppConfig) { self.config = config }

    public func makeHandler(pool: PoolRuntime, slot: Int, server: ServerContext) -> RequestHandler {
        APIHandler(router: API.router(Services(config: config, server: server, pool: pool, slot: slot)))
    }
}

final class APIHandler: RequestHandler {
    let router: Router
    init(router: Router) { self.router = router }
    func handle(_ request: HTTPRequest) -> HTTPResponse { router.handle(request) }
}
