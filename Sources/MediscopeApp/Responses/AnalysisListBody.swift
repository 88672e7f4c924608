import Foundation
import MediscopeImaging
import MediscopeReport
import MediscopeStore

struct AnalysisListBody: Encodable {
    var items: [AnalysisBody]
    var nextCursor: String?
    var links: [String: String]
}
