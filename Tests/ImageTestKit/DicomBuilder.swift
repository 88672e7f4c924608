import Foundation

/// Writes small PS3.10 files (preamble, File Meta Information, explicit VR little endian) for tests:
/// the elements given, in tag order, plus the meta group.
package enum DicomBuilder {
    /// One data element: tag, two-letter VR and value bytes (padded to even length with `pad`).
    package struct Element {
        package var group: UInt16, element: UInt16, vr: String, value: [UInt8]
        package init(_ group: UInt16, _ element: UInt16, _ vr: String, _ value: [UInt8]) {
            self.group = group; self.element = element; self.vr = vr; self.value = value
        }
        package static func text(_ g: UInt16, _ e: UInt16, _ vr: String, _ s: String) -> Element {
            var v = Array(s.utf8)
            if v.count % 2 == 1 { v.append(vr == "UI" ? 0 : 0x20) }
            return Element(g, e, vr, v)
        }
        package static func us(_ g: UInt16, _ e: UInt16, _ x: UInt16) -> Element { Element(g, e, "US", le16(x)) }
    }

    /// A 16-bit grey image: `stored` row-major values, with rescale and window as given.
    package static func monochrome16(width: Int, height: Int, stored: [UInt16], photometric: String = "MONOCHROME2",
                                    slope: Double, intercept: Double, center: Double, windowWidth: Double,
                                    extra: [Element] = []) -> [UInt8] {
        var pixels: [UInt8] = []
        pixels.reserveCapacity(stored.count * 2)
        for v in stored { pixels += le16(v) }
        return file([
            .text(0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.7"),
            .text(0x0008, 0x0018, "UI", "1.2.826.0.1.3680043.2.1143.1"),
            .text(0x0008, 0x0060, "CS", "MR"),
            .text(0x0010, 0x0010, "PN", "Test^Patient"),
            .text(0x0010, 0x0020, "LO", "DCM-0001"),
            .us(0x0028, 0x0002, 1),
            .text(0x0028, 0x0004, "CS", photometric),
            .us(0x0028, 0x0010, UInt16(height)), .us(0x0028, 0x0011, UInt16(width)),
            .us(0x0028, 0x0100, 16), .us(0x0028, 0x0101, 16), .us(0x0028, 0x0102, 15), .us(0x0028, 0x0103, 0),
            .text(0x0028, 0x1050, "DS", ds(center)), .text(0x0028, 0x1051, "DS", ds(windowWidth)),
            .text(0x0028, 0x1052, "DS", ds(intercept)), .text(0x0028, 0x1053, "DS", ds(slope)),
            Element(0x7FE0, 0x0010, "OW", pixels),
        ] + extra)
    }

    /// A PS3.10 file of `elements` (sorted here) with the given transfer syntax in its meta information.
    package static func file(_ elements: [Element], transferSyntax: String = "1.2.840.10008.1.2.1") -> [UInt8] {
        var meta: [UInt8] = []
        for e in [Element(0x0002, 0x0001, "OB", [0, 1]), .text(0x0002, 0x0002, "UI", "1.2.840.10008.5.1.4.1.1.7"),
                  .text(0x0002, 0x0003, "UI", "1.2.826.0.1.3680043.2.1143.1"), .text(0x0002, 0x0010, "UI", transferSyntax)] {
            meta += encode(e)
        }
        var out = [UInt8](repeating: 0, count: 128) + Array("DICM".utf8)
        out += encode(Element(0x0002, 0x0000, "UL", le32(UInt32(meta.count)))) + meta
        for e in elements.sorted(by: { ($0.group, $0.element) < ($1.group, $1.element) }) { out += encode(e) }
        return out
    }

    /// Elements encoded in tag order (explicit VR little endian), as an item's or a data set's content.
    package static func dataset(_ elements: [Element]) -> [UInt8] {
        elements.sorted(by: { ($0.group, $0.element) < ($1.group, $1.element) }).flatMap(encode)
    }

    static func encode(_ e: Element) -> [UInt8] {
        var v = e.value
        if v.count % 2 == 1 { v.append(0) }
        var out = le16(e.group) + le16(e.element) + Array(e.vr.utf8)
        if ["OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"].contains(e.vr) {
            out += [0, 0] + le32(UInt32(v.count))
        } else {
            out += le16(UInt16(v.count))
        }
        return out + v
    }

    /// A Decimal String value without a needless ".0".
    package static func ds(_ x: Double) -> String {
        var s = String(x)
        if s.hasSuffix(".0") { s.removeLast(2) }
        return s
    }
}

