import Foundation

/// A PACS (or any DICOM archive) that results are sent to: one entry of `dicom.destinations`.
package struct DicomDestination: Sendable, Equatable {
    /// How objects reach it.
    package enum Transport: Sendable, Equatable {
        /// DICOM C-STORE (PS3.4 Annex B) to `aeTitle` at `host`:`port`, calling as Mediscope's own AE title.
        case cStore(aeTitle: String, host: String, port: UInt16)
        /// DICOMweb STOW-RS (PS3.18 10.5): POST to `url`/studies, authorised by the credential in `tokenFile`
        /// (read at each send, so it can be rotated without a restart), as `authorization` says.
        case stowRS(url: URL, tokenFile: String?, authorization: Authorization)
    }

    /// How a STOW-RS credential file is sent.
    package enum Authorization: String, Sendable, Equatable {
        /// `Authorization: Bearer <file's text>` (an OAuth token or an API key).
        case bearer
        /// `Authorization: Basic <base64 of the file's "user:password">` (e.g. Orthanc's registered users).
        case basic
    }

    /// Its name: what `dicom.send_results`, the status and the metrics call it.
    package var name: String
    package var transport: Transport

    package init(name: String, transport: Transport) {
        self.name = name
        self.transport = transport
    }

    /// "c-store" or "stow-rs", as the configuration says.
    package var kind: String {
        switch transport {
        case .cStore: "c-store"
        case .stowRS: "stow-rs"
        }
    }
}
