import Foundation
import MediscopeAuth
import MediscopeDicomOut
import MediscopeDicomWrite
import MediscopeImaging
import MediscopeServer
import MediscopeStore

/// The "dicom-out" background process (`dicom.destinations` set): sends this host's `DicomOutbox` to the
/// PACS (`DicomDelivery`), so no inference or io worker ever waits on a PACS. Each object is written as it
/// is sent, from the stores: the SR of the report version its entry names (as that version stood), the
/// Secondary Capture of its result's heatmap. An analysis deleted meanwhile is never sent.
///
/// Logs when a destination stops or starts answering, what each round delivered, and every parked entry
/// (destination, analysis id and object: never patient data).
final class DicomOutWork: BackgroundWork {
    static let processName = "dicom-out"
    /// Delivered and gone entries are kept this long for the once-only rule and the operator, then pruned.
    static let retentionSeconds = 90.0 * 86_400
    let config: AppConfig
    let log: ServerLog
    private var delivery: DicomDelivery?
    private var stores: (analyses: AnalysisStore, reports: ReportStore, accounts: Accounts)?
    private var reachable: [String: Bool] = [:]
    private var lastPrune = Date.distantPast

    init(config: AppConfig, log: ServerLog) {
        self.config = config
        self.log = log
    }

    func runOnce(_ context: BackgroundContext) -> Double {
        do {
            let delivery = try opened()
            let (rounds, pause) = try delivery.runOnce()
            for round in rounds { report(round) }
            if Date().timeIntervalSince(lastPrune) > 3600 {
                lastPrune = Date()
                try delivery.outbox.prune(settledBefore: Date().addingTimeInterval(-Self.retentionSeconds))
            }
            return pause
        } catch {
            log.error("dicom_out_error", ["kind": .token(.init(OutboxDeliveryWork.kind(of: error)))])
            return 2
        }
    }

    func stopped(_ context: BackgroundContext) {
        guard let delivery, let stats = try? delivery.outbox.stats(destinations: config.dicomSending.destinations.map(\.name)) else { return }
        log.info("dicom_out_stopped", ["waiting": .int(stats.reduce(0) { $0 + $1.waiting }), "parked": .int(stats.reduce(0) { $0 + $1.parked })])
    }

    private func opened() throws -> DicomDelivery {
        if let delivery { return delivery }
        let settings = config.dicomSending
        let outbox = try DicomOutbox(directory: URL(fileURLWithPath: config.storeDirectory))
        var senders: [String: any DicomSender] = [:]
        for destination in settings.destinations {
            switch destination.transport {
            case .cStore(let aeTitle, let host, let port):
                senders[destination.name] = CStoreSender(host: host, port: port, callingAETitle: settings.callingAETitle,
                                                         calledAETitle: aeTitle, timeout: settings.timeoutSeconds)
            case .stowRS(let url, let tokenFile, let authorization):
                var sender = StowRSSender(url: url, tokenFile: tokenFile, authorization: authorization)
                sender.timeout = Double(settings.timeoutSeconds)
                senders[destination.name] = sender
            }
        }
        let delivery = DicomDelivery(outbox: outbox, destinations: settings.destinations, senders: senders) { [self] entry throws(StoreError) in
            try write(entry)
        }
        delivery.maxAttempts = settings.maxAttempts
        delivery.maxBackoff = Double(settings.retryMaxSeconds)
        delivery.initialBackoff = min(2, Double(settings.retryMaxSeconds))
        self.delivery = delivery
        return delivery
    }

    private func openedStores() throws(StoreError) -> (analyses: AnalysisStore, reports: ReportStore, accounts: Accounts) {
        if let stores { return stores }
        do {
            let outbox = try config.openOutbox()
            let opened = (analyses: try config.analysisStore(outbox: outbox, .requests), reports: try config.reportStore(.requests),
                          accounts: Accounts(stores: try config.accountStores(.requests, outbox: outbox), policy: config.accountPolicy))
            stores = opened
            return opened
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.unavailable, "the stores cannot be opened")
        }
    }

    /// `entry`'s object as it is to be sent.
    private func write(_ entry: DicomOutboxEntry) throws(StoreError) -> WrittenObject {
        let stores = try openedStores()
        guard let record = try stores.analyses.get(id: entry.analysisId, organizationId: entry.organizationId) else {
            return .gone("the analysis was deleted")
        }
        do {
            switch entry.object {
            case .sr:
                guard let number = Int(entry.part) else { return .failed("the entry names no report version") }
                let versions = try stores.reports.versions(analysisId: record.id, organizationId: record.organizationId)
                if number > 0 && !versions.contains(where: { $0.number == number && $0.status == .signed }) {
                    return .gone("report version \(number) is not a signed version")
                }
                let organization: String
                do { organization = try stores.accounts.organizationName(id: record.organizationId) ?? record.organizationId } catch {
                    throw StoreError(.unavailable, "the organisation's name cannot be read")
                }
                return .object(try DicomResults.structuredReport(record, versions: versions.filter { $0.number <= number },
                                                                 organization: organization))
            case .sc:
                guard let result = record.results.first(where: { $0.id == entry.part }) else { return .gone("the result does not exist") }
                guard let stored = try stores.analyses.bytes(of: result.heatmap) else { return .failed("the heatmap is missing") }
                return .object(try DicomResults.secondaryCapture(record, result: result, image: try ImageDecoder.decode(stored)))
            }
        } catch let error as StoreError {
            throw error
        } catch let error as DicomWriteError {
            return .failed(error.message)
        } catch {
            return .failed("the object cannot be written (\(String(describing: type(of: error))))")
        }
    }

    private func report(_ round: DicomDelivery.Round) {
        let name = DicomOutWork.token(round.destination)
        if let reason = round.unreachable {
            if reachable[round.destination] != false {
                log.warning("dicom_destination_unreachable", ["destination": name, "error": .token(.init(String(reason.prefix(200))))])
            }
            reachable[round.destination] = false
        } else {
            if reachable[round.destination] == false { log.info("dicom_destination_reachable", ["destination": name]) }
            reachable[round.destination] = true
        }
        if round.delivered + round.refused + round.parked + round.gone > 0 {
            log.info("dicom_out_round", ["destination": name, "delivered": .int(round.delivered), "refused": .int(round.refused),
                                         "parked": .int(round.parked), "gone": .int(round.gone)])
        }
        if round.parked > 0 {
            log.error("dicom_out_parked", ["destination": name, "parked": .int(round.parked)])
        }
    }

    static func token(_ text: String) -> LogField { .token(.init(text)) }
}
