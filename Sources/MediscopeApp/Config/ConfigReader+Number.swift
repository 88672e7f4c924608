import Configuration
import Foundation
import Glibc
import MediscopeAuth
import MediscopeServer

extension ConfigReader {
    /// A decimal setting (seconds, a temperature): a JSON whole number (`"grace": 0`, kept as an int by
    /// the file provider) counts as well as `0.0` or an environment variable's text. Else `value`.
    func number(forKey key: ConfigKey, default value: Double) -> Double {
        if let decimal = double(forKey: key) { return decimal }
        if let whole = int(forKey: key) { return Double(whole) }
        return value
    }
}
