import GRDB

extension SQLiteAnalysisStore {
    /// Every organisation's records with an id greater than `afterId` (nil: from the first), in id order
    /// (ascending, so by creation time), at most `limit` (clamped to 1...1000). For tools that read a
    /// whole deployment, page by page (`mediscope store migrate`): pass the last id of a page to get the
    /// next; an empty page is the end. SQLite-specific on purpose: a shared backend pages per organisation
    /// (`AnalysisStore.list`). Images are not read: fetch them one record at a time with `imageBytes`.
    /// - Throws: `StoreError` `.unavailable` or `.io` when the database cannot be read or a row is unreadable.
    package func records(afterId: String?, limit: Int) throws(StoreError) -> [AnalysisRecord] {
        let limit = min(max(limit, 1), 1000)
        let rows = try database.read("read every analysis") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM analyses WHERE id > ? ORDER BY id LIMIT ?", arguments: [afterId ?? "", limit])
        }
        var records: [AnalysisRecord] = []
        records.reserveCapacity(rows.count)
        for row in rows { records.append(try Self.record(from: row)) }
        return records
    }
}
