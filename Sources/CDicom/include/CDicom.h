/* CDicom: the plain C API of Mediscope's DICOM shim over DCMTK (Debian's libdcmtk-dev) and, for JPEG 2000,
 * OpenJPEG (Debian's libopenjp2-7-dev).
 *
 * It reads a DICOM file (PS3.10) from memory and returns one frame's stored pixel values plus the
 * attributes PS3.3 needs to render it (Image Pixel, Modality LUT and VOI LUT modules) and the patient
 * and study fields the upload form uses. It does not render: the Modality LUT, VOI and MONOCHROME1
 * steps are the caller's (MediscopeImaging's DicomRendering.swift).
 *
 * Input: a PS3.10 file with the 128-byte preamble and "DICM", or without them starting at the File
 * Meta Information (group 0002), or a bare data set (implicit or explicit VR, little or big endian,
 * recognised from its first element). A meta information that says explicit VR little endian before a
 * data set that is implicit VR is read as implicit VR (and reported so), as pydicom reads it.
 *
 * Transfer syntaxes decoded: implicit VR little endian, explicit VR little and big endian, deflated
 * explicit VR little endian, RLE lossless, JPEG baseline (process 1), extended (processes 2 and 4,
 * 12-bit), spectral/progressive (retired), lossless (processes 14, selection value 1 and others), JPEG-LS
 * lossless and near-lossless (DCMTK's codecs, registered once per process), JPEG 2000 lossless and lossy
 * (1.2.840.10008.1.2.4.90, .91: OpenJPEG from memory, a J2K codestream or a JP2 wrapper, strict mode, its
 * messages captured and never printed; DCMTK 3.6.7 has no JPEG 2000 codec). Anything else, High-Throughput
 * JPEG 2000 (.201-.203) and JPEG 2000 Part 2 (.92, .93) included, is DICOM_ERR_TRANSFER_SYNTAX with a
 * message naming the transfer syntax and its UID.
 *
 * Limits, checked before anything is allocated for the value they bound: every element's value
 * length against the bytes left and against max_element_bytes (a deflated data set is inflated at
 * most to max_element_bytes), sequence nesting against max_sequence_depth (a structural walk of the
 * bytes before DCMTK parses them), Rows x Columns against max_pixels before a frame is decoded.
 *
 * The frame that is decoded, before DCMTK's codec runs: native Pixel Data must hold Number of Frames x
 * the frame size (64-bit arithmetic; shorter is DICOM_ERR_CORRUPT); encapsulated Pixel Data (the data
 * set's own (7FE0,0010), never an icon's) must hold as many frames as Number of Frames says, and the
 * frame's fragments are checked as one codestream: an RLE header's segment count and offsets, every
 * segment coding Rows x Columns bytes; a JPEG or JPEG-LS frame header whose size and components equal
 * Rows, Columns and Samples per Pixel, and at most max_jpeg_scans scans (max_jpeg_scan_pixels / pixels);
 * a JPEG 2000 main header whose SIZ image (Xsiz - XOsiz by Ysiz - YOsiz) equals Columns x Rows and whose
 * Csiz equals Samples per Pixel, no component subsampled (XRsiz = YRsiz = 1), every component of one
 * precision and sign within Bits Allocated (DICOM_ERR_CORRUPT otherwise), at most 4096 tiles, 32
 * decomposition levels (COD, COC) and 65536 tile-parts (DICOM_ERR_TOO_COMPLEX), and no tile-part longer than
 * the bytes left (DICOM_ERR_CORRUPT: truncated). A JPEG 2000 frame's values are stored as a native frame
 * stores them: the low Bits Allocated bits of each sample (two's complement when the codestream is signed),
 * whatever the codestream's precision and sign, so the caller's masking to Bits Stored and sign extension
 * by Pixel Representation read it as pydicom does; YBR_ICT and YBR_RCT frames are decoded to RGB (OpenJPEG
 * undoes the colour transform) and photometric_interpretation says "RGB".
 * The frame buffer is zeroed before decoding, so no byte of it is ever left from earlier work.
 *
 * Rescale and window come from the data set, overridden by the decoded frame's Enhanced MR/CT
 * functional groups (Pixel Value Transformation and Frame VOI LUT, per-frame before shared). They are
 * reported as stored: a slope of 0 or a non-finite value is the renderer's to ignore.
 *
 * Ownership: dicom_read fills a caller-owned dicom_image; the arrays it points to (frame data, LUT
 * data) are malloc'ed and released by dicom_image_free, which also zeroes the struct. On failure
 * nothing needs freeing (the struct is left zeroed; freeing it is harmless).
 *
 * Errors: functions return DICOM_OK (0) or a DICOM_ERR_* code and write a NUL-terminated message into
 * `err` (errlen bytes, may be NULL/0). Every C++ exception and DCMTK condition (OFCondition) becomes a
 * code and message, and so does every OpenJPEG failure (its error handler keeps the message); nothing
 * aborts or throws across this boundary. Messages never contain patient data
 * (only tags, sizes, transfer syntaxes, DCMTK's condition texts and OpenJPEG's codestream errors). DCMTK's
 * own logger is silenced; OpenJPEG's warnings are dropped.
 *
 * Threads: calls on different inputs may run concurrently (the codec registration is done once, under
 * std::call_once; each call has its own data set, and its own OpenJPEG codec and stream). */
#ifndef CDICOM_H
#define CDICOM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    DICOM_OK = 0,
    DICOM_ERR_EMPTY = 1,            /* zero-length input */
    DICOM_ERR_NOT_DICOM = 2,        /* neither a PS3.10 file nor a recognisable data set */
    DICOM_ERR_CORRUPT = 3,          /* malformed or truncated structure, or a frame the codec cannot decode */
    DICOM_ERR_TOO_LARGE = 4,        /* Rows x Columns over max_pixels, an element over max_element_bytes */
    DICOM_ERR_TOO_COMPLEX = 5,      /* sequences nested deeper than max_sequence_depth */
    DICOM_ERR_TRANSFER_SYNTAX = 6,  /* a transfer syntax we do not decode (the message names it) */
    DICOM_ERR_VARIANT = 7,          /* a valid image we do not render (Bits Allocated 1 or 32, PALETTE COLOR, ...) */
    DICOM_ERR_NO_PIXEL_DATA = 8,    /* no (7FE0,0010) Pixel Data: a report, a plan, a structure set */
    DICOM_ERR_FRAME = 9,            /* the frame asked for is not in the file */
    DICOM_ERR_NOMEM = 10,           /* an allocation failed */
    DICOM_ERR_ARGUMENT = 11,        /* null pointers, bad limits */
    DICOM_ERR_INTERNAL = 12         /* an unexpected C++ exception inside DCMTK */
};

/* What a read may cost; 0 in any field means the default given. */
typedef struct dicom_limits {
    int64_t max_pixels;          /* Rows x Columns of one frame; default 50,000,000 */
    int64_t max_element_bytes;   /* one element's value, and a deflated data set once inflated; default 268,435,456 */
    int32_t max_sequence_depth;  /* sequences inside sequences; default 16 */
    int64_t max_jpeg_scans;      /* scans in one frame's JPEG codestream; default 256 */
    int64_t max_jpeg_scan_pixels;/* scans x pixels of one JPEG frame; default 12 x max_pixels */
} dicom_limits;

/* A lookup table of the Modality LUT Sequence (0028,3000) or VOI LUT Sequence (0028,3010), first item.
 * entries == 0 means the file has none. */
typedef struct dicom_lut {
    int32_t entries;        /* number of entries: LUT Descriptor value 1 (0 there means 65536) */
    int32_t first_mapped;   /* first input value mapped: LUT Descriptor value 2, read as signed when the
                               input is signed (Pixel Representation 1 for the Modality LUT) */
    int32_t bits;           /* bits per entry: LUT Descriptor value 3 (8 to 16) */
    uint16_t *data;         /* `entries` values of LUT Data (0028,3006); owned, see dicom_image_free */
} dicom_lut;

/* A text attribute: UTF-8 (converted from the file's Specific Character Set), trailing spaces and NULs
 * removed, empty when absent. Values that cannot be converted to UTF-8 or do not fit are left empty. */
typedef struct dicom_text {
    char value[512];
} dicom_text;

typedef struct dicom_image {
    /* Transfer syntax of the data set: UID and DCMTK's name for it. */
    char transfer_syntax_uid[68];
    char transfer_syntax_name[96];

    /* Image Pixel module (C.7.6.3). photometric_interpretation is the colour model of frame_data:
     * for a JPEG frame DCMTK converted from YBR_FULL(_422), and a JPEG 2000 frame in YBR_ICT or YBR_RCT, it
     * is "RGB"; otherwise the file's value. */
    int32_t rows, columns;
    int32_t samples_per_pixel;      /* 1 or 3 */
    int32_t bits_allocated;         /* 8 or 16 */
    int32_t bits_stored;            /* 1 ... bits_allocated */
    int32_t high_bit;
    int32_t pixel_representation;   /* 0 unsigned, 1 two's complement */
    int32_t planar_configuration;   /* 0 colour-by-pixel, 1 colour-by-plane (frame_data's layout) */
    int32_t number_of_frames;       /* >= 1 */
    char photometric_interpretation[20];
    char stored_photometric_interpretation[20];  /* the file's own value */

    /* Modality LUT module (C.11.1). */
    int32_t has_rescale;            /* both Rescale Slope and Intercept present */
    double rescale_slope, rescale_intercept;
    dicom_lut modality_lut;
    /* VOI LUT module (C.11.2): the first window, its function, and the first VOI LUT. */
    int32_t window_count;           /* values of Window Center (0: none) */
    double window_center, window_width;
    char voi_lut_function[20];      /* LINEAR (default, also when absent), LINEAR_EXACT, SIGMOID */
    dicom_lut voi_lut;
    /* Pixel Padding Value (0028,0120) and Pixel Padding Range Limit (0028,0121), stored values (signed when
     * Pixel Representation is 1): pixels that are not part of the image (PS3.3 C.7.5.1.1.2). */
    int32_t has_pixel_padding, pixel_padding_value;
    int32_t has_pixel_padding_range, pixel_padding_range_limit;

    /* Patient and study fields (UTF-8). */
    dicom_text patient_id, patient_name, patient_age, patient_birth_date, patient_sex;
    dicom_text modality, body_part_examined, study_date, series_description;
    dicom_text study_instance_uid, series_instance_uid, sop_instance_uid;
    /* Where the instance belongs (the Studies view): SOP Class UID, Study Description, and Series Number
     * and Instance Number as written (IS, a decimal integer string). */
    dicom_text sop_class_uid, study_description, series_number, instance_number;
    /* Manufacturer (0008,0070): who made the equipment that made it (the listener tells Mediscope's own
     * results, sent back by a PACS, from scans). */
    dicom_text manufacturer;

    /* The decoded frame: index (0-based), and rows x columns x samples values of bits_allocated bits
     * (uint8, or uint16 in host byte order), laid out as planar_configuration says; bits above
     * high_bit are as stored (the caller masks and sign-extends). NULL when pixels were not asked for. */
    int32_t frame_index;
    uint8_t *frame_data;
    size_t frame_size;
} dicom_image;

/* Reads `data` (size bytes). frame: 0-based frame to decode, or -1 for the middle frame
 * ((number_of_frames - 1) / 2). decode_pixels == 0 reads the attributes only (no frame is decoded, the
 * transfer syntax is still checked; a file without Pixel Data is then no error). limits may be NULL
 * (defaults). */
int dicom_read(const uint8_t *data, size_t size, const dicom_limits *limits, int32_t frame,
               int32_t decode_pixels, dicom_image *out, char *err, size_t errlen);

/* Frees the arrays of an image (not the struct itself) and zeroes it. NULL is allowed. */
void dicom_image_free(dicom_image *image);

#ifdef __cplusplus
}
#endif

#endif
