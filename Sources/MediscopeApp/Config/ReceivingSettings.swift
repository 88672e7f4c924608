import Foundation
import MediscopeServer

/// How received DICOM instances (C-STORE and STOW-RS alike) are taken in: `dicom.max_instances_per_series`
/// and `dicom.stow_max_bytes` (MEDISCOPE_DICOM_*). Read whether or not the listener is on: STOW-RS is.
package struct ReceivingSettings: Sendable, Equatable {
    /// Instances of one series that are analysed; later ones are acknowledged and listed as skipped
    /// (`dicom.max_instances_per_series`, 1...100000, default 300: a thin-slice brain MR series).
    package var maxInstancesPerSeries: Int
    /// Largest STOW-RS request body, bytes (`dicom.stow_max_bytes`, 1 MiB...1 GiB, default 64 MiB: a PACS
    /// sends a study in several requests; Orthanc's default chunk is 10 instances or 10 MB).
    package var stowMaxBytes: Int

    static func read(int: (String, Int) -> Int) throws -> ReceivingSettings {
        let settings = ReceivingSettings(maxInstancesPerSeries: int("dicom.max.instances.per.series", 300),
                                         stowMaxBytes: int("dicom.stow.max.bytes", 64 << 20))
        guard (1...100_000).contains(settings.maxInstancesPerSeries), (1 << 20...1 << 30).contains(settings.stowMaxBytes) else {
            throw ServerError("dicom.max_instances_per_series must be 1 to 100000 and dicom.stow_max_bytes 1 MiB to 1 GiB")
        }
        return settings
    }
}
