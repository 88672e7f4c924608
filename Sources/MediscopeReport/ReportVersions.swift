import MediscopeStore

/// Which of a report's versions is the report, for the API, the dashboard and the printed page alike.
///
/// A clinician may write (and sign) their own text while the draft is still pending. The draft of the
/// LLM or the template that arrives after that is kept as a version, a late draft, listed with the
/// others for the clinician to read, but it never becomes the report: their text stays the report.
package enum ReportVersions {
    /// Whether `version` is a late draft: written by the LLM or the template after a clinician's version.
    package static func isLateDraft(_ version: ReportVersion, in versions: [ReportVersion]) -> Bool {
        version.origin != .clinician && versions.contains { $0.origin == .clinician && $0.number < version.number }
    }

    /// The report: the newest version that is not a late draft; nil while there is none (pending).
    package static func current(_ versions: [ReportVersion]) -> ReportVersion? {
        versions.last { !isLateDraft($0, in: versions) }
    }
}
