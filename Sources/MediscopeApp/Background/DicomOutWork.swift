import Foundation
import MediscopeAuth
import MediscopeDicomOut
import MediscopeDicomWrite
import MediscopeImaging
import MediscopeServer
import MediscopeStore

/// A "dicom-out-<destination>" background process, one per entry of `dicom.destinations`: sends this host's
/// `DicomOutbox` entries for its destination (`DicomDelivery`), so no inference or io worker ever waits on a
/// PACS, and a PACS that hangs holds its own process only. Each object is written as it is sent, from the
/// stores: the SR of the report version its entry names (as that version stood), the Secondary Capture of
/// its result's heatmap. An analysis deleted meanwhile is never sent.
///
/// Logs when the destination stops or starts answering, what each round delivered, and every parked entry
/// (destination, entry, analysis id and object: never patient data). The first destination's process also
/// logs entries waiting for a destination the configuration no longer names.
final class DicomOutWork: BackgroundWork {
    static let namePrefix = "dicom-out-"
    /// Delivered and gone entries are kept this long for the once-only rule and the operator, then pruned.
    static let retentionSeconds = 90.0 * 86_400
    let config: AppConfig
    let log: ServerLog
    let destination: DicomDestination
    private var delivery: DicomDelivery?
    private var stores: (analyses: AnalysisStore, reports: ReportStore, accounts: Accounts)?
    private var reachable: Bool?
    private var lastPrune = Date.distantPast

    init(config: AppConfig, log: ServerLog, destination: DicomDestination) {
        self.config = config
        self.log = log
        self.destination = destination
    }

    /// The process name of `destination`'s sender.
    static func processName(_ destination: DicomDestination) -> String { namePrefix + destination.name }

    func runOnce(_ context: BackgroundContext) -> Double {
        do {
            let delivery = try opened()
            if Date().timeIntervalSince(lastPrune) > 3600 {
                lastPrune = Date()
                try delivery.outbox.prune(settledBefore: Date().addingTimeInterval(-Self.retentionSeconds))
                if destination == config.dicomSending.destinations.first { try reportOrphans(delivery.outbox) }
            }
            let (rounds, pause) = try delivery.runOnce()
            for round in rounds { report(round) }
            return pause
        } catch {
            log.error("dicom_out_error", ["kind": .token(.init(OutboxDeliveryWork.kind(of: error)))])
            return 2
        }
    }

    func stopped(_ context: BackgroundContext) {
        guard let delivery, let stats = try? delivery.outbox.stats(destinations: [destination.name]).first else { return }
        log.info("dicom_out_stopped", ["destination": Self.token(destination.name), "waiting": .int(stats.waiting), "parked": .int(stats.parked)])
    }

    private func opened() throws -> DicomDelivery {
        if let delivery { return delivery }
        let settings = config.dicomSending
        let outbox = try DicomOutbox(directory: URL(fileURLWithPath: config.storeDirectory))
        let sender: any DicomSender
        switch destination.transport {
        case .cStore(let aeTitle, let host, let port):
            sender = CStoreSender(host: host, port: port, callingAETitle: settings.callingAETitle, calledAETitle: aeTitle,
                                  timeout: settings.timeoutSeconds)
        case .stowRS(let url, let tokenFile, let authorization):
            var stow = StowRSSender(url: url, tokenFile: tokenFile, authorization: authorization)
            stow.timeout = Double(settings.timeoutSeconds)
            sender = stow
        }
        let delivery = DicomDelivery(outbox: outbox, destinations: [destination], senders: [destination.name: sender]) { [self] entry throws(StoreError) in
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
        let name = Self.token(round.destination)
        if let reason = round.unreachable {
            if reachable != false {
                log.warning("dicom_destination_unreachable", ["destination": name, "error": .token(.init(String(reason.prefix(200))))])
            }
            reachable = false
        } else if round.contacted {
            if reachable == false { log.info("dicom_destination_reachable", ["destination": name]) }
            reachable = true
        }
        if round.delivered + round.refused + round.parked.count + round.gone > 0 {
            log.info("dicom_out_round", ["destination": name, "delivered": .int(round.delivered), "refused": .int(round.refused),
                                         "parked": .int(round.parked.count), "gone": .int(round.gone)])
        }
        for entry in round.parked {
            log.error("dicom_out_parked", ["destination": name, "entry": .int(Int(entry.seq)), "analysis": .token(.init(entry.analysisId)),
                                           "object": .token(.init(entry.object.rawValue + " " + entry.part))])
        }
    }

    /// Logs entries that wait for a destination no longer configured (renamed or removed): they are sent
    /// once the name is back, or an operator removes them.
    private func reportOrphans(_ outbox: DicomOutbox) throws(StoreError) {
        let configured = Set(config.dicomSending.destinations.map(\.name))
        for (name, count) in try outbox.destinationsWithEntries() where !configured.contains(name) {
            log.warning("dicom_out_orphaned", ["destination": Self.token(name), "entries": .int(count)])
        }
    }

    static func token(_ text: String) -> LogField { .token(.init(text)) }
}
