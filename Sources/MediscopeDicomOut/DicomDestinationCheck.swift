import Foundation
import MediscopeDicomNet
import MediscopeNet

/// An operator's check that a destination answers, before results wait on it: C-ECHO for C-STORE, and for
/// STOW-RS an authorised QIDO-RS query (`GET <url>/studies?limit=1`, PS3.18 10.6), which proves the URL and
/// the credential without storing anything.
package enum DicomDestinationCheck {
    /// Returns when `destination` answered as it should; throws why not (no patient data).
    package static func verify(_ destination: DicomDestination, callingAETitle: String, timeout: Int) throws(DestinationUnreachable) {
        switch destination.transport {
        case .cStore(let aeTitle, let host, let port):
            let sender = CStoreSender(host: host, port: port, callingAETitle: callingAETitle, calledAETitle: aeTitle, timeout: timeout)
            do { try sender.scu.echo() } catch { throw DestinationUnreachable("C-ECHO: \(error.message)") }
        case .stowRS(let url, let tokenFile, let authorization):
            var headers = [("Accept", "application/dicom+json")]
            if let tokenFile {
                headers.append(("Authorization", try StowRSSender(url: url, tokenFile: tokenFile, authorization: authorization).credential()))
            }
            var query = URLComponents(url: url.appendingPathComponent("studies"), resolvingAgainstBaseURL: false)
            query?.queryItems = [URLQueryItem(name: "limit", value: "1")]
            guard let address = query?.url else { throw DestinationUnreachable("the URL cannot take a query") }
            let response: HTTPClientResponse
            do {
                response = try CurlHTTP.perform(HTTPClientRequest(method: "GET", url: address, headers: headers,
                                                                 timeout: Double(timeout), connectTimeout: 10))
            } catch {
                throw DestinationUnreachable("QIDO-RS request failed: \(error.message)")
            }
            // 204: no study yet; 200: a JSON array of studies (not a login page or a proxy's answer).
            guard response.status == 204
                || (response.status == 200 && (try? JSONSerialization.jsonObject(with: Data(response.body))) is [Any]) else {
                throw DestinationUnreachable(response.status == 200 ? "QIDO-RS answered 200 without a JSON array of studies"
                                                                    : "QIDO-RS answered \(response.status)")
            }
        }
    }
}
