import Foundation
import GRDB
import MediscopeEncoding
import MediscopeSQLite

/// `ReportStore` in `reports.sqlite` beside the analyses (WAL, synchronous=FULL; BEGIN IMMEDIATE is the
/// lock that makes "one more than the newest" hold across worker processes).
package final class SQLiteReportStore: ReportStore {
    package static let fileName = "reports.sqlite"
    let file: SQLiteStoreFile<StoreError>

    package init(directory: URL) throws(StoreError) {
        file = try SQLiteStoreFile(directory: directory, fileName: Self.fileName, name: "reports", label: "mediscope.reports",
                                   migrator: Self.migrator, mapFailure: SQLiteAnalysisStore.storeError)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE report_versions (
                    analysis_id TEXT NOT NULL, organization_id TEXT NOT NULL, number INTEGER NOT NULL,
                    status TEXT NOT NULL, text TEXT NOT NULL, origin TEXT NOT NULL, model TEXT, reason TEXT,
                    author_id TEXT, author_name TEXT, created_at INTEGER NOT NULL,
                    PRIMARY KEY (analysis_id, number)
                ) WITHOUT ROWID;
                """)
        }
        // Reports of analyses being deleted (ReportStore.close): no version is appended to them. Kept after
        // the deletion (ids and a time, no text), so a draft that arrives late is refused.
        migrator.registerMigration("v2 closed") { db in
            try db.execute(sql: """
                CREATE TABLE closed_reports (
                    analysis_id TEXT NOT NULL PRIMARY KEY, organization_id TEXT NOT NULL, closed_at INTEGER NOT NULL
                ) WITHOUT ROWID;
                """)
        }
        return migrator
    }

    package func append(_ v: ReportVersion) throws(StoreError) {
        try file.writeImmediate("append report version") { db in
            if try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM closed_reports WHERE analysis_id = ?)",
                                 arguments: [v.analysisId]) == true {
                throw StoreError(.conflict, "the report is closed: its analysis is being deleted")
            }
            let newest = try Int.fetchOne(db, sql: "SELECT max(number) FROM report_versions WHERE analysis_id = ?",
                                          arguments: [v.analysisId]) ?? 0
            guard v.number == newest + 1 else {
                throw v.number <= newest ? StoreError(.conflict, "report version \(v.number) exists already")
                    : StoreError(.invalidRecord, "report version \(v.number) would leave a gap after \(newest)")
            }
            try db.execute(sql: """
                INSERT INTO report_versions (analysis_id, organization_id, number, status, text, origin, model, reason,
                                             author_id, author_name, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [v.analysisId, v.organizationId, v.number, v.status.rawValue, v.text, v.origin.rawValue, v.model,
                                 v.reason, v.authorId, v.authorName, v.createdAt.millisecondsSince1970])
        }
    }

    package func versions(analysisId: String, organizationId: String) throws(StoreError) -> [ReportVersion] {
        let rows = try file.read("read report versions") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM report_versions WHERE analysis_id = ? AND organization_id = ? ORDER BY number",
                             arguments: [analysisId, organizationId])
        }
        var versions: [ReportVersion] = []
        for row in rows {
            guard let status = ReportVersion.Status(rawValue: row["status"]), let origin = ReportVersion.Origin(rawValue: row["origin"]) else {
                throw StoreError(.io, "a stored report version of \(analysisId) is unreadable")
            }
            versions.append(ReportVersion(
                analysisId: row["analysis_id"], organizationId: row["organization_id"], number: row["number"], status: status,
                text: row["text"], origin: origin, model: row["model"], reason: row["reason"], authorId: row["author_id"],
                authorName: row["author_name"], createdAt: Date(millisecondsSince1970: row["created_at"])))
        }
        return versions
    }

    package func close(analysisId: String, organizationId: String) throws(StoreError) -> ReportClosing {
        try file.writeImmediate("close report") { db in
            let signed = try Bool.fetchOne(db, sql: """
                SELECT EXISTS(SELECT 1 FROM report_versions WHERE analysis_id = ? AND organization_id = ? AND status = ?)
                """, arguments: [analysisId, organizationId, ReportVersion.Status.signed.rawValue]) == true
            if signed { return .signed }
            try db.execute(sql: """
                INSERT INTO closed_reports (analysis_id, organization_id, closed_at) VALUES (?, ?, ?)
                ON CONFLICT (analysis_id) DO NOTHING
                """, arguments: [analysisId, organizationId, Date().millisecondsSince1970])
            return .closed
        }
    }

    package func reopen(analysisId: String, organizationId: String) throws(StoreError) {
        try file.writeImmediate("reopen report") { db in
            try db.execute(sql: "DELETE FROM closed_reports WHERE analysis_id = ? AND organization_id = ?",
                           arguments: [analysisId, organizationId])
        }
    }

    package func deleteAll(analysisId: String, organizationId: String) throws(StoreError) {
        try file.writeImmediate("delete report versions") { db in
            try db.execute(sql: "DELETE FROM report_versions WHERE analysis_id = ? AND organization_id = ?",
                           arguments: [analysisId, organizationId])
        }
    }
}
