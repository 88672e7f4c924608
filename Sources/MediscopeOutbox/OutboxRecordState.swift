import MediscopeStore

/// How an outbox record stands for local reads: the newest pending entry of its id wins.
package enum OutboxRecordState: Sendable, Equatable {
    /// The outbox holds nothing for this id: ask the shared store.
    case absent
    /// Created here and not delivered yet (or parked): this is the record.
    case created(AnalysisRecord)
    /// A delete is waiting: the record is gone, whatever the shared store still says.
    case deleted
}
