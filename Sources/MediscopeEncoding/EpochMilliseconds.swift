import Foundation

/// Dates as whole milliseconds since 1970-01-01 UTC: how every store keeps time. Rounding to the
/// nearest millisecond (not truncating) makes a date written and read back equal the date handed out.
extension Date {
    /// The date `milliseconds` after the epoch.
    package init(millisecondsSince1970 milliseconds: Int64) {
        self.init(timeIntervalSince1970: Double(milliseconds) / 1000)
    }

    /// Milliseconds since the epoch, rounded to the nearest.
    package var millisecondsSince1970: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }

    /// This date rounded to the millisecond, as a store gives it back.
    package var roundedToMilliseconds: Date { Date(millisecondsSince1970: millisecondsSince1970) }
}

extension TimeInterval {
    /// This many seconds as whole milliseconds, rounded to the nearest.
    package var wholeMilliseconds: Int64 { Int64((self * 1000).rounded()) }
}
