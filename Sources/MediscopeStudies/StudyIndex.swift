import Foundation
import GRDB
import MediscopeSQLite
import MediscopeStore

/// This host's index of the DICOM instances it received (`studies.sqlite` in the store folder, WAL,
/// synchronous=FULL): one row per organisation and SOP Instance UID, written by the listener and the
/// STOW-RS route when an instance is kept, and by the inference worker that analyses it. The Studies view,
/// the series summaries and the listener's counters read it.
///
/// Exactly once: an instance is admitted once per organisation; the same bytes sent again are recognised
/// by their digest, other bytes under a known SOP Instance UID are told apart (a corrected resend).
package final class StudyIndex: Sendable {
    package static let fileName = "studies.sqlite"
    let file: SQLiteStoreFile<StoreError>

    package init(directory: URL) throws(StoreError) {
        file = try SQLiteStoreFile(directory: directory, fileName: Self.fileName, name: "studies", label: "mediscope.studies",
                                   migrator: Self.migrator, mapFailure: SQLiteAnalysisStore.storeError)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE instances (
                    organization_id TEXT NOT NULL, sop_instance_uid TEXT NOT NULL,
                    study_instance_uid TEXT NOT NULL, series_instance_uid TEXT NOT NULL, sop_class_uid TEXT,
                    patient_id TEXT, patient_name TEXT, study_date TEXT, study_description TEXT, series_description TEXT,
                    series_number INTEGER, instance_number INTEGER, modality TEXT,
                    transport TEXT NOT NULL, sender TEXT NOT NULL, received_at REAL NOT NULL, sha256 TEXT NOT NULL,
                    state TEXT NOT NULL, reason TEXT, analysis_id TEXT, findings TEXT NOT NULL DEFAULT '[]', out_of_scope INTEGER,
                    PRIMARY KEY (organization_id, sop_instance_uid)
                ) WITHOUT ROWID;
                CREATE INDEX instances_by_series ON instances (organization_id, series_instance_uid);
                CREATE INDEX instances_by_study ON instances (organization_id, study_instance_uid, received_at);
                CREATE TABLE counters (name TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL);
                """)
        }
        return migrator
    }

    /// What `admit` made of an instance.
    package enum Admission: Sendable, Equatable {
        /// New: to be analysed (`.received`) or past the series' cap (`.skipped`).
        case new(ReceivedInstanceEntry.State)
        /// Received before with the same bytes, in this state (a failed one is admitted again: `.new`).
        case known(ReceivedInstanceEntry.State)
        /// Received before with other content under the same SOP Instance UID.
        case conflict
        /// Its study was received before for another Patient ID (one study, one patient).
        case otherPatient
    }

    /// Admits `entry` (content with digest `sha256`): a new instance of a series that has `maxPerSeries`
    /// instances to analyse already is recorded as skipped; an instance whose study came before under
    /// another Patient ID is not admitted. One transaction, so two senders of one series never pass the
    /// cap together.
    package func admit(_ entry: ReceivedInstanceEntry, sha256: String, maxPerSeries: Int) throws(StoreError) -> Admission {
        try file.writeImmediate("admit instance") { db in
            if let other = try String.fetchOne(db, sql: """
                SELECT patient_id FROM instances WHERE organization_id = ? AND study_instance_uid = ? AND patient_id IS NOT ?
                LIMIT 1
                """, arguments: [entry.organizationId, entry.studyInstanceUID, entry.patientId]) {
                _ = other
                return .otherPatient
            }
            if let row = try Row.fetchOne(db, sql: "SELECT sha256, state FROM instances WHERE organization_id = ? AND sop_instance_uid = ?",
                                          arguments: [entry.organizationId, entry.sopInstanceUID]) {
                guard row["sha256"] as String == sha256 else { return .conflict }
                let state = ReceivedInstanceEntry.State(rawValue: row["state"]) ?? .failed
                guard state == .failed else { return .known(state) }
                try db.execute(sql: "DELETE FROM instances WHERE organization_id = ? AND sop_instance_uid = ?",
                               arguments: [entry.organizationId, entry.sopInstanceUID])
            }
            let analysed = try Int.fetchOne(db, sql: """
                SELECT COUNT(*) FROM instances WHERE organization_id = ? AND series_instance_uid = ? AND state != 'skipped'
                """, arguments: [entry.organizationId, entry.seriesInstanceUID]) ?? 0
            var admitted = entry
            admitted.state = analysed >= maxPerSeries ? .skipped : .received
            admitted.reason = admitted.state == .skipped ? "past the series' cap of \(maxPerSeries) analysed instances" : nil
            try Self.insert(admitted, sha256: sha256, db)
            return .new(admitted.state)
        }
    }

    /// Withdraws an admission whose instance could not be kept after all (the spool or the queue failed):
    /// the sender's retry is then new again.
    package func withdraw(organizationId: String, sopInstanceUID: String) throws(StoreError) {
        try file.writeImmediate("withdraw instance") { db in
            try db.execute(sql: "DELETE FROM instances WHERE organization_id = ? AND sop_instance_uid = ? AND state IN ('received', 'skipped')",
                           arguments: [organizationId, sopInstanceUID])
        }
    }

    /// Forgets the instances whose analysis was `analysisId` (the analysis was deleted): the study no
    /// longer lists them, and the same instance received again is analysed anew. Returns how many.
    @discardableResult
    package func forget(analysisId: String, organizationId: String) throws(StoreError) -> Int {
        try file.writeImmediate("forget instance") { db in
            try db.execute(sql: "DELETE FROM instances WHERE organization_id = ? AND analysis_id = ?", arguments: [organizationId, analysisId])
            return db.changesCount
        }
    }

    /// Records where the instance's analysis stands.
    package func mark(organizationId: String, sopInstanceUID: String, state: ReceivedInstanceEntry.State, reason: String? = nil,
                      analysisId: String? = nil, findings: [ReceivedInstanceEntry.Finding] = [], outOfScope: Bool? = nil) throws(StoreError) {
        let json = String(decoding: (try? JSONEncoder().encode(findings)) ?? Data("[]".utf8), as: UTF8.self)
        try file.writeImmediate("mark instance") { db in
            try db.execute(sql: """
                UPDATE instances SET state = ?, reason = ?, analysis_id = ?, findings = ?, out_of_scope = ?
                WHERE organization_id = ? AND sop_instance_uid = ?
                """, arguments: [state.rawValue, reason, analysisId, json, outOfScope, organizationId, sopInstanceUID])
        }
    }

    /// The instance, if this host received it for the organisation.
    package func entry(organizationId: String, sopInstanceUID: String) throws(StoreError) -> ReceivedInstanceEntry? {
        try file.read("read instance") { db in
            try Row.fetchOne(db, sql: "SELECT * FROM instances WHERE organization_id = ? AND sop_instance_uid = ?",
                             arguments: [organizationId, sopInstanceUID]).map(Self.entry)
        }
    }

    /// Where a page of studies ends: the last study's latest receipt time and its UID (the list's order).
    package struct StudyCursor: Sendable, Equatable {
        package var lastReceivedAt: Double
        package var studyInstanceUID: String
        package init(lastReceivedAt: Double, studyInstanceUID: String) {
            self.lastReceivedAt = lastReceivedAt; self.studyInstanceUID = studyInstanceUID
        }
    }

    /// The organisation's studies, the latest received first (then by UID), at most `limit`, after
    /// `cursor` (the previous page's last) when given: two studies received at the same instant are never
    /// split out of a page.
    package func recentStudies(organizationId: String, limit: Int, after cursor: StudyCursor? = nil) throws(StoreError) -> [StudyCursor] {
        try file.read("list studies") { db in
            try Row.fetchAll(db, sql: """
                SELECT study_instance_uid, MAX(received_at) AS last FROM instances WHERE organization_id = ?
                GROUP BY study_instance_uid HAVING last < ? OR (last = ? AND study_instance_uid > ?)
                ORDER BY last DESC, study_instance_uid LIMIT ?
                """, arguments: [organizationId, cursor?.lastReceivedAt ?? Double.greatestFiniteMagnitude,
                                 cursor?.lastReceivedAt ?? Double.greatestFiniteMagnitude, cursor?.studyInstanceUID ?? "", limit])
                .map { StudyCursor(lastReceivedAt: $0["last"], studyInstanceUID: $0["study_instance_uid"]) }
        }
    }

    /// Every instance of the organisation's study, by series and instance number.
    package func instances(organizationId: String, studyInstanceUID: String) throws(StoreError) -> [ReceivedInstanceEntry] {
        try file.read("read study") { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM instances WHERE organization_id = ? AND study_instance_uid = ?
                ORDER BY series_number IS NULL, series_number, series_instance_uid, instance_number IS NULL, instance_number, received_at
                """, arguments: [organizationId, studyInstanceUID]).map(Self.entry)
        }
    }

    /// Instances of every organisation by state (the analysis backlog is `.received` plus `.analysing`).
    package func countsByState() throws(StoreError) -> [ReceivedInstanceEntry.State: Int] {
        try file.read("count instances") { db in
            var counts: [ReceivedInstanceEntry.State: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM instances GROUP BY state") {
                if let state = ReceivedInstanceEntry.State(rawValue: row["state"]) { counts[state] = row["n"] }
            }
            return counts
        }
    }

    /// Adds `amount` to the counter `name` (e.g. `associations_accepted`, `instances_failed_c000`).
    package func count(_ name: String, by amount: Int64 = 1) throws(StoreError) {
        try file.writeImmediate("count") { db in
            try db.execute(sql: "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                           arguments: [name, amount])
        }
    }

    /// Every counter by name.
    package func counters() throws(StoreError) -> [String: Int64] {
        try file.read("read counters") { db in
            Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT name, value FROM counters").map { ($0["name"], $0["value"]) })
        }
    }

    static func insert(_ e: ReceivedInstanceEntry, sha256: String, _ db: Database) throws {
        try db.execute(sql: """
            INSERT INTO instances (organization_id, sop_instance_uid, study_instance_uid, series_instance_uid, sop_class_uid,
                patient_id, patient_name, study_date, study_description, series_description, series_number, instance_number,
                modality, transport, sender, received_at, sha256, state, reason)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [e.organizationId, e.sopInstanceUID, e.studyInstanceUID, e.seriesInstanceUID, e.sopClassUID,
                             e.patientId, e.patientName, e.studyDate, e.studyDescription, e.seriesDescription, e.seriesNumber,
                             e.instanceNumber, e.modality, e.transport, e.sender, e.receivedAt.timeIntervalSince1970, sha256,
                             e.state.rawValue, e.reason])
    }

    static func entry(_ row: Row) -> ReceivedInstanceEntry {
        let findings = (row["findings"] as String?).flatMap { try? JSONDecoder().decode([ReceivedInstanceEntry.Finding].self, from: Data($0.utf8)) } ?? []
        return ReceivedInstanceEntry(
            organizationId: row["organization_id"], studyInstanceUID: row["study_instance_uid"], seriesInstanceUID: row["series_instance_uid"],
            sopInstanceUID: row["sop_instance_uid"], sopClassUID: row["sop_class_uid"], patientId: row["patient_id"],
            patientName: row["patient_name"], studyDate: row["study_date"], studyDescription: row["study_description"],
            seriesDescription: row["series_description"], seriesNumber: row["series_number"], instanceNumber: row["instance_number"],
            modality: row["modality"], transport: row["transport"], sender: row["sender"],
            receivedAt: Date(timeIntervalSince1970: row["received_at"]), state: ReceivedInstanceEntry.State(rawValue: row["state"]) ?? .failed,
            reason: row["reason"], analysisId: row["analysis_id"], findings: findings, outOfScope: row["out_of_scope"])
    }
}
