// The DICOM writer behind CDicomWrite.h: DCMTK builds every data set and encodes it; this file only maps
// the plain C inputs onto DCMTK's API and turns every failure into a code and message.
#include "CDicomWrite.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmdata/dcostrmb.h>
#include <dcmtk/dcmsr/dsrdoc.h>
#include <dcmtk/dcmsr/codes/dcm.h>
#include <dcmtk/oflog/oflog.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <set>
#include <string>

namespace {

struct Failure {
    int code;
    std::string message;
};

void silenceLogger() {
    static std::once_flag once;
    std::call_once(once, [] {
        dcmtk::log4cplus::Logger::getRoot().setLogLevel(dcmtk::log4cplus::OFF_LOG_LEVEL);
    });
}

std::string text(const char *s) { return s ? std::string(s) : std::string(); }

void check(const OFCondition &c, const char *what, int code = CDW_ERR_INPUT) {
    if (c.bad()) throw Failure{code, std::string(what) + ": " + c.text()};
}

void require(const char *s, const char *what) {
    if (!s || !*s) throw Failure{CDW_ERR_INPUT, std::string(what) + " is missing"};
}

void put(DcmItem &item, const DcmTagKey &tag, const char *value, const char *what) {
    check(item.putAndInsertString(tag, value ? value : ""), what, CDW_ERR_ENCODE);
}

// A DS of at most 16 characters for `value` (the exact value travels in Floating Point Value too).
std::string decimalString(double value) {
    char buf[64];
    for (int precision = 15; precision > 0; precision--) {
        std::snprintf(buf, sizeof buf, "%.*g", precision, value);
        if (std::strlen(buf) <= 16) return buf;
    }
    return "0";
}

DSRCodedEntryValue coded(const cdw_code &code, const char *what) {
    require(code.value, what);
    require(code.scheme, what);
    require(code.meaning, what);
    return DSRCodedEntryValue(code.value, code.scheme, code.meaning);
}

// The attributes both objects set the same way (after DCMTK wrote its own), so UIDs and times are the caller's.
void putCommon(DcmItem &ds, const cdw_common &c) {
    put(ds, DCM_SpecificCharacterSet, "ISO_IR 192", "Specific Character Set");
    put(ds, DCM_StudyInstanceUID, c.study_instance_uid, "Study Instance UID");
    put(ds, DCM_SeriesInstanceUID, c.series_instance_uid, "Series Instance UID");
    put(ds, DCM_SOPInstanceUID, c.sop_instance_uid, "SOP Instance UID");
    put(ds, DCM_PatientID, c.patient_id, "Patient ID");
    put(ds, DCM_PatientName, c.patient_name, "Patient's Name");
    put(ds, DCM_PatientSex, c.patient_sex, "Patient's Sex");
    put(ds, DCM_PatientBirthDate, "", "Patient's Birth Date");
    put(ds, DCM_StudyDate, c.study_date, "Study Date");
    put(ds, DCM_StudyTime, c.study_time, "Study Time");
    put(ds, DCM_ContentDate, c.content_date, "Content Date");
    put(ds, DCM_ContentTime, c.content_time, "Content Time");
    put(ds, DCM_InstanceCreationDate, c.content_date, "Instance Creation Date");
    put(ds, DCM_InstanceCreationTime, c.content_time, "Instance Creation Time");
    put(ds, DCM_SeriesNumber, c.series_number, "Series Number");
    put(ds, DCM_InstanceNumber, c.instance_number, "Instance Number");
    if (c.series_description && *c.series_description) put(ds, DCM_SeriesDescription, c.series_description, "Series Description");
    put(ds, DCM_Manufacturer, "Mediscope", "Manufacturer");
    put(ds, DCM_ManufacturerModelName, "Mediscope", "Manufacturer's Model Name");
    put(ds, DCM_SoftwareVersions, c.software_version, "Software Versions");
    put(ds, DCM_TimezoneOffsetFromUTC, "+0000", "Timezone Offset From UTC");
}

// One Contributing Equipment Sequence item: a model of Mediscope that processed the image.
void addEquipment(DcmItem &ds, const char *model, const char *deviceUID, const char *software) {
    DcmItem *item = nullptr;
    check(ds.findOrCreateSequenceItem(DCM_ContributingEquipmentSequence, item, -2), "Contributing Equipment", CDW_ERR_ENCODE);
    put(*item, DCM_Manufacturer, "Mediscope", "Manufacturer");
    put(*item, DCM_ManufacturerModelName, model, "Manufacturer's Model Name");
    put(*item, DCM_SoftwareVersions, software, "Software Versions");
    put(*item, DCM_DeviceUID, deviceUID, "Device UID");
    DcmItem *purpose = nullptr;
    check(item->findOrCreateSequenceItem(DCM_PurposeOfReferenceCodeSequence, purpose, -2), "Purpose of Reference", CDW_ERR_ENCODE);
    put(*purpose, DCM_CodeValue, "109102", "Code Value");
    put(*purpose, DCM_CodingSchemeDesignator, "DCM", "Coding Scheme Designator");
    put(*purpose, DCM_CodeMeaning, "Processing Equipment", "Code Meaning");
}

// `ff` as a PS3.10 file in explicit VR little endian, into a malloc'ed buffer.
void encode(DcmFileFormat &ff, cdw_buffer *out) {
    const E_TransferSyntax xfer = EXS_LittleEndianExplicit;
    check(ff.validateMetaInfo(xfer), "File Meta Information", CDW_ERR_ENCODE);
    std::string bytes;
    char chunk[65536];
    DcmOutputBufferStream stream(chunk, sizeof chunk);
    ff.transferInit();
    OFCondition c;
    do {
        c = ff.write(stream, xfer, EET_ExplicitLength, nullptr);
        if (c.good() || c == EC_StreamNotifyClient) {
            if (c.good()) stream.flush();
            void *data = nullptr;
            offile_off_t length = 0;
            stream.flushBuffer(data, length);
            if (length > 0) bytes.append(static_cast<const char *>(data), static_cast<size_t>(length));
        }
    } while (c == EC_StreamNotifyClient);
    ff.transferEnd();
    check(c, "encoding", CDW_ERR_ENCODE);
    out->data = static_cast<uint8_t *>(std::malloc(bytes.size() ? bytes.size() : 1));
    if (!out->data) throw Failure{CDW_ERR_INTERNAL, "out of memory"};
    std::memcpy(out->data, bytes.data(), bytes.size());
    out->size = bytes.size();
}

template <typename Body>
int guarded(cdw_buffer *out, char *err, size_t errlen, Body body) {
    auto report = [&](int code, const std::string &message) {
        if (err && errlen) std::snprintf(err, errlen, "%s", message.c_str());
        return code;
    };
    if (!out) return report(CDW_ERR_INPUT, "no output buffer");
    out->data = nullptr;
    out->size = 0;
    if (err && errlen) err[0] = 0;
    try {
        silenceLogger();
        body();
        return CDW_OK;
    } catch (const Failure &f) {
        cdw_buffer_free(out);
        return report(f.code, f.message);
    } catch (const std::exception &e) {
        cdw_buffer_free(out);
        return report(CDW_ERR_INTERNAL, std::string("internal error: ") + e.what());
    } catch (...) {
        cdw_buffer_free(out);
        return report(CDW_ERR_INTERNAL, "internal error");
    }
}

// The document tree's cursor: adds an item, sets it, fails loudly.
struct Tree {
    DSRDocumentTree &tree;

    void add(DSRTypes::E_RelationshipType rel, DSRTypes::E_ValueType type, DSRTypes::E_AddMode mode, const char *what) {
        if (tree.addContentItem(rel, type, mode) == 0) throw Failure{CDW_ERR_ENCODE, std::string("cannot add ") + what};
    }
    void text(DSRTypes::E_RelationshipType rel, DSRTypes::E_AddMode mode, const DSRCodedEntryValue &concept, const std::string &value,
              const char *what) {
        add(rel, DSRTypes::VT_Text, mode, what);
        check(tree.getCurrentContentItem().setConceptName(concept), what);
        check(tree.getCurrentContentItem().setStringValue(value), what);
    }
};

}  // namespace

extern "C" void cdw_buffer_free(cdw_buffer *buffer) {
    if (!buffer) return;
    std::free(buffer->data);
    buffer->data = nullptr;
    buffer->size = 0;
}

// The identifiers and times every object needs.
static void requireCommon(const cdw_common &c) {
    require(c.study_instance_uid, "Study Instance UID");
    require(c.series_instance_uid, "Series Instance UID");
    require(c.sop_instance_uid, "SOP Instance UID");
    require(c.content_date, "Content Date");
    require(c.content_time, "Content Time");
}

extern "C" int cdw_write_sr(const cdw_sr_input *in, cdw_buffer *out, char *err, size_t errlen) {
    return guarded(out, err, errlen, [&] {
        if (!in) throw Failure{CDW_ERR_INPUT, "no input"};
        const cdw_common &c = in->common;
        requireCommon(c);

        DSRDocument doc(DSRTypes::DT_ComprehensiveSR);
        check(doc.setSpecificCharacterSetType(DSRTypes::CS_UTF8), "Specific Character Set");
        check(doc.createNewSeriesInStudy(c.study_instance_uid), "Study Instance UID");
        if (in->private_scheme_designator && *in->private_scheme_designator) {
            DSRCodingSchemeIdentificationList &schemes = doc.getCodingSchemeIdentification();
            check(schemes.addItem(in->private_scheme_designator), "Coding Scheme Identification");
            check(schemes.setCodingSchemeName(text(in->private_scheme_name)), "Coding Scheme Name");
            check(schemes.setCodingSchemeResponsibleOrganization("Mediscope"), "Coding Scheme Responsible Organization");
        }

        Tree t{doc.getTree()};
        // Root: the report, its notice, then one Measurement Group per model result.
        t.add(DSRTypes::RT_isRoot, DSRTypes::VT_Container, DSRTypes::AM_belowCurrent, "the root container");
        check(t.tree.getCurrentContentItem().setConceptName(CODE_DCM_ImagingMeasurementReport), "root concept");
        t.text(DSRTypes::RT_contains, DSRTypes::AM_belowCurrent, CODE_DCM_Comment, text(in->notice), "the notice");
        if (in->report_text && *in->report_text)
            t.text(DSRTypes::RT_contains, DSRTypes::AM_afterCurrent, CODE_DCM_Impression, in->report_text, "the report text");
        if (in->input_check && *in->input_check)
            t.text(DSRTypes::RT_contains, DSRTypes::AM_afterCurrent, coded(in->input_check_concept, "input check concept"),
                   in->input_check, "the input check");
        for (size_t i = 0; i < in->result_count; i++) {
            const cdw_result &r = in->results[i];
            t.add(DSRTypes::RT_contains, DSRTypes::VT_Container, DSRTypes::AM_afterCurrent, "a measurement group");
            check(t.tree.getCurrentContentItem().setConceptName(CODE_DCM_MeasurementGroup), "measurement group concept");
            t.text(DSRTypes::RT_hasConceptMod, DSRTypes::AM_belowCurrent, CODE_DCM_TrackingIdentifier, text(r.title), "the result's title");
            // TID 4019 Algorithm Identification.
            t.text(DSRTypes::RT_hasConceptMod, DSRTypes::AM_afterCurrent, CODE_DCM_AlgorithmName, text(r.algorithm_name), "Algorithm Name");
            t.text(DSRTypes::RT_hasConceptMod, DSRTypes::AM_afterCurrent, CODE_DCM_AlgorithmVersion, text(r.algorithm_version),
                   "Algorithm Version");
            if (r.algorithm_parameters && *r.algorithm_parameters)
                t.text(DSRTypes::RT_hasConceptMod, DSRTypes::AM_afterCurrent, CODE_DCM_AlgorithmParameters, r.algorithm_parameters,
                       "Algorithm Parameters");
            t.text(DSRTypes::RT_contains, DSRTypes::AM_afterCurrent, CODE_DCM_Finding, text(r.finding), "the finding");
            for (size_t k = 0; k < r.probability_count; k++) {
                const cdw_probability &p = r.probabilities[k];
                t.add(DSRTypes::RT_contains, DSRTypes::VT_Num, DSRTypes::AM_afterCurrent, "a probability");
                check(t.tree.getCurrentContentItem().setConceptName(coded(p.concept, "probability concept")), "probability concept");
                DSRNumericMeasurementValue value(decimalString(p.probability).c_str(), DSRCodedEntryValue("1", "UCUM", "no units"));
                // The exact double beside the 16-character decimal string.
                check(value.setFloatingPointRepresentation(p.probability), "Floating Point Value");
                check(t.tree.getCurrentContentItem().setNumericValue(value), "probability value");
            }
            t.tree.goUp();
        }

        if (in->predecessor_sop_uid && *in->predecessor_sop_uid) {
            check(doc.getPredecessorDocuments().addItem(c.study_instance_uid, text(in->predecessor_series_uid), UID_ComprehensiveSRStorage,
                                                        in->predecessor_sop_uid), "Predecessor Documents");
        }
        if (in->verifying_observer_name && *in->verifying_observer_name) {
            check(doc.completeDocument(), "completion");
            check(doc.verifyDocument(in->verifying_observer_name, text(in->verifying_organization), text(in->verification_datetime)),
                  "verification");
        }

        DcmFileFormat ff;
        DcmDataset &ds = *ff.getDataset();
        check(doc.write(ds), "the SR document", CDW_ERR_ENCODE);
        putCommon(ds, c);
        std::set<std::string> devices;
        for (size_t i = 0; i < in->result_count; i++) {
            const cdw_result &r = in->results[i];
            require(r.device_uid, "Device UID");
            if (devices.insert(r.device_uid).second) addEquipment(ds, r.model_name, r.device_uid, c.software_version);
        }
        encode(ff, out);
    });
}

extern "C" int cdw_write_sc(const cdw_sc_input *in, cdw_buffer *out, char *err, size_t errlen) {
    return guarded(out, err, errlen, [&] {
        if (!in) throw Failure{CDW_ERR_INPUT, "no input"};
        const cdw_common &c = in->common;
        requireCommon(c);
        if (!in->rgb || in->width == 0 || in->height == 0 || in->width > 65535 || in->height > 65535)
            throw Failure{CDW_ERR_INPUT, "the image is empty or larger than 65535 pixels a side"};

        DcmFileFormat ff;
        DcmDataset &ds = *ff.getDataset();
        put(ds, DCM_SOPClassUID, UID_SecondaryCaptureImageStorage, "SOP Class UID");
        putCommon(ds, c);
        put(ds, DCM_ReferringPhysicianName, "", "Referring Physician's Name");
        put(ds, DCM_StudyID, "", "Study ID");
        put(ds, DCM_AccessionNumber, "", "Accession Number");
        put(ds, DCM_Modality, "OT", "Modality");
        // Type 2C in General Series (the SR has no such module); dciodvfy cannot tell that no paired body
        // part is imaged, so it is present, empty (unknown).
        put(ds, DCM_Laterality, "", "Laterality");
        put(ds, DCM_ConversionType, "WSD", "Conversion Type");
        put(ds, DCM_PatientOrientation, "", "Patient Orientation");
        put(ds, DCM_ImageType, "DERIVED\\SECONDARY", "Image Type");
        put(ds, DCM_BurnedInAnnotation, "YES", "Burned In Annotation");
        if (in->derivation && *in->derivation) put(ds, DCM_DerivationDescription, in->derivation, "Derivation Description");
        check(ds.putAndInsertUint16(DCM_SamplesPerPixel, 3), "Samples per Pixel", CDW_ERR_ENCODE);
        put(ds, DCM_PhotometricInterpretation, "RGB", "Photometric Interpretation");
        check(ds.putAndInsertUint16(DCM_PlanarConfiguration, 0), "Planar Configuration", CDW_ERR_ENCODE);
        check(ds.putAndInsertUint16(DCM_Rows, static_cast<Uint16>(in->height)), "Rows", CDW_ERR_ENCODE);
        check(ds.putAndInsertUint16(DCM_Columns, static_cast<Uint16>(in->width)), "Columns", CDW_ERR_ENCODE);
        check(ds.putAndInsertUint16(DCM_BitsAllocated, 8), "Bits Allocated", CDW_ERR_ENCODE);
        check(ds.putAndInsertUint16(DCM_BitsStored, 8), "Bits Stored", CDW_ERR_ENCODE);
        check(ds.putAndInsertUint16(DCM_HighBit, 7), "High Bit", CDW_ERR_ENCODE);
        check(ds.putAndInsertUint16(DCM_PixelRepresentation, 0), "Pixel Representation", CDW_ERR_ENCODE);
        const unsigned long length = static_cast<unsigned long>(in->width) * in->height * 3;
        check(ds.putAndInsertUint8Array(DCM_PixelData, in->rgb, length), "Pixel Data", CDW_ERR_ENCODE);
        require(in->device_uid, "Device UID");
        addEquipment(ds, in->model_name, in->device_uid, c.software_version);
        encode(ff, out);
    });
}
