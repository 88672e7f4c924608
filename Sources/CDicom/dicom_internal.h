// Internal to CDicom: the structural walk that runs before DCMTK parses anything.
#ifndef CDICOM_INTERNAL_H
#define CDICOM_INTERNAL_H

#include <cstddef>
#include <cstdint>
#include <string>

#include "CDicom.h"

namespace cdicom {

/// What the walk learnt about the file's encoding.
struct Encoding {
    std::string transferSyntaxUID;  // from (0002,0010); empty when the file has no meta information
    bool hasMeta = false;
    bool littleEndian = true;
    bool explicitVR = true;
    bool deflated = false;
    bool encapsulated = false;      // pixel data in fragments (RLE, JPEG, JPEG-LS)
};

/// Bounds in force, with the defaults of CDicom.h filled in.
struct Limits {
    int64_t maxPixels;
    int64_t maxElementBytes;
    int32_t maxSequenceDepth;
};

/// Walks every element, item and fragment of `data` (inflating a deflated data set, bounded) and checks
/// lengths against the bytes left and `limits`, and sequence nesting. Returns DICOM_OK or an error code
/// with `message` set; DICOM_ERR_TRANSFER_SYNTAX names a transfer syntax we do not decode. Never throws
/// (std::bad_alloc is the caller's to catch).
int walkStructure(const uint8_t *data, size_t size, const Limits &limits, Encoding &encoding, std::string &message);

/// The encoding of a transfer syntax we decode; false for any other UID.
bool supportedTransferSyntax(const std::string &uid, Encoding &encoding);

}  // namespace cdicom

#endif
