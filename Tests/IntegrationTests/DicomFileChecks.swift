import Foundation
import Testing
import TestSupport

/// What the tests check of a DICOM object Mediscope wrote (a download, or what a PACS received): dicom3tools'
/// `dciodvfy` finds no error, pydicom reads it, and an SR holds the analysis's results exactly.
struct DicomFileChecks {
    static let python = URL(fileURLWithPath: "/usr/bin/python3")   // Debian's, with python3-pydicom
    /// Where the files are written to be read.
    let folder: TemporaryFolder

    /// What pydicom reads of a file, as JSON: the attributes below and, for an SR, its content tree flattened.
    static let reader = #"""
import json, sys, pydicom
d = pydicom.dcmread(sys.argv[1])
def code(seq):
    return seq[0].CodeMeaning if seq else None
def walk(items):
    out = []
    for i in items:
        node = {"type": i.ValueType, "concept": code(i.get("ConceptNameCodeSequence")), "rel": i.get("RelationshipType")}
        if i.ValueType == "TEXT": node["text"] = i.TextValue
        if i.ValueType == "NUM":
            m = i.MeasuredValueSequence[0]
            node["value"] = float(m.FloatingPointValue) if "FloatingPointValue" in m else None
            node["ds"] = float(m.NumericValue)
            node["unit"] = m.MeasurementUnitsCodeSequence[0].CodeValue + "|" + m.MeasurementUnitsCodeSequence[0].CodingSchemeDesignator
        if "ContentSequence" in i: node["children"] = walk(i.ContentSequence)
        out.append(node)
    return out
r = {k: str(d.get(k, "")) for k in ["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality",
     "VerificationFlag", "CompletionFlag", "BurnedInAnnotation", "PhotometricInterpretation", "PatientID"]}
r["equipment"] = [[e.Manufacturer, e.ManufacturerModelName, e.DeviceUID] for e in d.get("ContributingEquipmentSequence", [])]
r["observers"] = [[str(o.VerifyingObserverName), o.VerifyingOrganization] for o in d.get("VerifyingObserverSequence", [])]
r["predecessors"] = [s.ReferencedSOPInstanceUID for st in d.get("PredecessorDocumentsSequence", [])
                     for se in st.ReferencedSeriesSequence for s in se.ReferencedSOPSequence]
if "ContentSequence" in d: r["content"] = walk(d.ContentSequence)
if "PixelData" in d:
    a = d.pixel_array
    r["pixels"] = [int(d.Rows), int(d.Columns), int(d.SamplesPerPixel), int(d.BitsAllocated), list(a.shape)]
print(json.dumps(r))
"""#

    /// `bytes` saved, checked by dciodvfy (no "Error" line) and read by pydicom.
    func check(_ bytes: Data, _ name: String) throws -> [String: Any] {
        let path = folder.url.appendingPathComponent(name).path
        try bytes.write(to: URL(fileURLWithPath: path))
        let verify = try runProcess(URL(fileURLWithPath: "/usr/bin/dciodvfy"), [path], timeout: 60)
        let errors = (verify.stdout + verify.stderr).split(separator: "\n").filter { $0.hasPrefix("Error") }
        #expect(errors.isEmpty, "dciodvfy \(name): \(errors.joined(separator: "\n"))")
        let read = try runProcess(Self.python, ["-c", Self.reader, path], timeout: 60)
        try #require(read.status == 0, "pydicom \(name): \(read.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(read.stdout.utf8)) as? [String: Any])
    }

    /// The measurement groups of an SR's content.
    static func groups(_ sr: [String: Any]) -> [[String: Any]] {
        (sr["content"] as? [[String: Any]] ?? []).filter { $0["concept"] as? String == "Measurement Group" }
    }

    /// Every probability and the finding of each result equal the analysis's; the algorithm and equipment are named.
    func expectResults(_ sr: [String: Any], _ analysis: [String: Any]) throws {
        let results = try #require(analysis["results"] as? [[String: Any]])
        let groups = Self.groups(sr)
        #expect(groups.count == results.count && !results.isEmpty)
        for (result, group) in zip(results, groups) {
            let children = group["children"] as? [[String: Any]] ?? []
            func text(_ concept: String) -> String? { children.first { $0["concept"] as? String == concept }?["text"] as? String }
            let title = try #require(result["title"] as? String)
            #expect(text("Tracking Identifier") == title && text("Algorithm Name") == result["model"] as? String)
            #expect(text("Algorithm Version") != nil && text("Algorithm Parameters") != nil)
            let probabilities = try #require(result["probabilities"] as? [[String: Any]])
            let predicted = probabilities.first { $0["label"] as? String == result["prediction"] as? String }
            #expect(text("Finding") == predicted?["title"] as? String)
            var expected: [String: Double] = [:]
            for p in probabilities { expected["Probability of " + (try #require(p["title"] as? String))] = try #require(p["probability"] as? Double) }
            var found: [String: Double] = [:]
            for num in children where num["type"] as? String == "NUM" {
                #expect(num["unit"] as? String == "1|UCUM")
                let value = try #require(num["value"] as? Double)
                #expect(abs((num["ds"] as? Double ?? -1) - value) < 1e-12, "the decimal string agrees with the exact value")
                found[try #require(num["concept"] as? String)] = value
            }
            #expect(found == expected, "\(title): the analysis's probabilities, exactly")
            let equipment = try #require(sr["equipment"] as? [[String]])
            #expect(equipment.contains { $0[0] == "Mediscope" && $0[1] == result["model"] as? String && $0[2].hasPrefix("2.25.") })
        }
        let verdict = try #require((analysis["inputCheck"] as? [String: Any])?["verdict"] as? String)
        let check = (sr["content"] as? [[String: Any]] ?? []).first { $0["concept"] as? String == "Input check" }
        #expect((check?["text"] as? String)?.hasPrefix("Input check: " + verdict.replacingOccurrences(of: "_", with: " ")) == true)
    }

}
