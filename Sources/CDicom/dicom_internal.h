// Internal to CDicom: what its files share. The structural walk (structure.cpp) and the codestream checks
// (codestream.cpp) run before DCMTK parses or decodes anything; dicom.cpp reads the data set and its
// attributes, frame.cpp decodes one frame.
#ifndef CDICOM_INTERNAL_H
#define CDICOM_INTERNAL_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "CDicom.h"

// DCMTK's data set, declared only: the walk and the codestream checks need none of DCMTK's headers.
class DcmDataset;

namespace cdicom {

/// What the walk learnt about the file's encoding.
struct Encoding {
    std::string transferSyntaxUID;  // from (0002,0010); empty when the file has no meta information
    bool hasMeta = false;
    bool littleEndian = true;
    bool explicitVR = true;
    bool deflated = false;
    bool encapsulated = false;      // pixel data in fragments (RLE, JPEG, JPEG-LS)
    /// Where the data set starts in the input (after the meta information).
    size_t datasetOffset = 0;
    /// The data set inflated (deflated transfer syntax): DCMTK reads this copy, never inflating again.
    std::vector<uint8_t> inflated;
    /// The meta information says explicit VR little endian but the data set is implicit VR (as pydicom
    /// reads such files): DCMTK is told to read the data set as implicit VR little endian.
    bool implicitDespiteMeta = false;
};

/// Bounds in force, with the defaults of CDicom.h filled in.
struct Limits {
    int64_t maxPixels;
    int64_t maxElementBytes;
    int32_t maxSequenceDepth;
    int64_t maxJPEGScans;
    int64_t maxJPEGScanPixels;
};

/// What the data set says one frame is: the codestream must code exactly this.
struct FrameGeometry {
    int32_t rows, columns, samples, bitsAllocated;
};

/// An RLE frame (PS3.5 annex G): header, segment count (Samples x bytes per sample), offsets inside the
/// frame and in order, and every segment coding at least Rows x Columns bytes.
int checkRLEFrame(const uint8_t *data, size_t size, const FrameGeometry &geometry, std::string &message);

/// A JPEG or JPEG-LS frame: one frame header whose size and components match the data set, precision
/// within Bits Allocated, and the scan budget of an uploaded JPEG (maxJPEGScans, maxJPEGScanPixels).
int checkJPEGFrame(const uint8_t *data, size_t size, const FrameGeometry &geometry, const Limits &limits, bool jpegLS,
                   std::string &message);

/// JPEG 2000 bounds checked before OpenJPEG runs: tiles per frame (at most 64x64 tiles of a 4096x4096
/// image), decomposition levels (OpenJPEG's own maximum is 32) and tile-parts per frame.
constexpr int64_t maxJ2KTiles = 4096;
constexpr int maxJ2KLevels = 32;
constexpr int64_t maxJ2KTileParts = 65536;

/// What a JPEG 2000 frame's main header says (ISO/IEC 15444-1 annex A), once checked.
struct J2KHeader {
    bool jp2 = false;                 // wrapped in JP2 boxes (the codestream is the jp2c box)
    size_t codestreamOffset = 0, codestreamLength = 0;
    int precision = 0;                // bits per sample, every component alike
    bool isSigned = false;
    uint64_t tiles = 0;
    int levels = 0;                   // the most decomposition levels of COD and COC
    int layers = 0;
    bool multipleComponentTransform = false;  // OpenJPEG applies the inverse RCT/ICT itself
};

/// The codestream of a JPEG 2000 frame: the frame itself (starting with SOC), or the jp2c box of a JP2
/// file. DICOM_ERR_CORRUPT when it is neither.
int findJ2KCodestream(const uint8_t *data, size_t size, size_t &offset, size_t &length, bool &jp2, std::string &message);

/// A JPEG 2000 frame's main header and tile-parts, before OpenJPEG: SIZ's image size equals Columns x Rows,
/// its components Samples per Pixel, none subsampled, all of one precision within Bits Allocated; at most
/// maxJ2KTiles tiles, maxJ2KLevels decomposition levels (COD, COC), maxJ2KTileParts tile-parts, and no
/// tile-part longer than the bytes left (a truncated frame).
int checkJ2KFrame(const uint8_t *data, size_t size, const FrameGeometry &geometry, J2KHeader &header, std::string &message);

/// Decodes a checked JPEG 2000 frame with OpenJPEG (from memory, strict: a truncated codestream is an error)
/// into `out` (rows x columns x samples values of geometry.bitsAllocated bits, already zeroed, outSize bytes),
/// interleaved or by plane as `planar` says. Values are stored as their low bits (two's complement when
/// signed), as a native frame stores them. OpenJPEG's messages are captured, never printed.
int decodeJ2KFrame(const uint8_t *data, size_t size, const FrameGeometry &geometry, const J2KHeader &header, bool planar,
                   uint8_t *out, size_t outSize, std::string &message);

/// Walks every element, item and fragment of `data` (inflating a deflated data set, bounded) and checks
/// lengths against the bytes left and `limits`, and sequence nesting. Returns DICOM_OK or an error code
/// with `message` set; DICOM_ERR_TRANSFER_SYNTAX names a transfer syntax we do not decode. Never throws
/// (std::bad_alloc is the caller's to catch).
int walkStructure(const uint8_t *data, size_t size, const Limits &limits, Encoding &encoding, std::string &message);

/// The encoding of a transfer syntax we decode; false for any other UID.
bool supportedTransferSyntax(const std::string &uid, Encoding &encoding);

/// Frame `frame` of the Pixel Data of `ds` (read in `transferSyntax`), once dicom.cpp has filled `out`'s
/// Image Pixel attributes, Number of Frames, frame_index and stored photometric interpretation: checks them
/// against what is rendered and `limits`, checks an encapsulated frame's fragments and codestream, then has
/// DCMTK decode that frame alone into `out->frame_data` (calloc'd, `out->frame_size` bytes). `colorModel`
/// is the photometric interpretation DCMTK gives the decoded frame (empty when it gives none). Returns
/// DICOM_OK or an error code with `message` set.
int readFrame(DcmDataset *ds, const std::string &transferSyntax, const Limits &limits, int32_t frame, dicom_image *out,
              std::string &colorModel, std::string &message);

}  // namespace cdicom

#endif
