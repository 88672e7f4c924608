import Foundation
import MediscopeServer

final class APIHandler: RequestHandler {
    let router: Router
    let services: Services
    init(router: Router, services: Services) { self.router = router; self.services = services }
    func handle(_ request: HTTPRequest) -> HTTPResponse {
        services.observeQueueing(request)
        return router.handle(request)
    }

    /// Between requests, an inference worker analyses one instance the DICOM listener received.
    func idleWork(slot: Int, begin: () -> Void) -> Bool {
        ReceivedInstance.analyseNext(services, begin: begin)
    }
}
