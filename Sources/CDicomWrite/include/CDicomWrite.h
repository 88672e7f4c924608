/* CDicomWrite: the plain C API of Mediscope's DICOM writer over DCMTK (dcmsr for the Structured Report,
 * dcmdata for the Secondary Capture). Mediscope's analysis results leave as PS3.10 files.
 *
 * Inputs are plain structs of NUL-terminated UTF-8 strings (NULL or "" where a value is absent) and, for the
 * Secondary Capture, interleaved 8-bit RGB pixels; the caller owns them. Output: a PS3.10 file (explicit VR
 * little endian, Specific Character Set ISO_IR 192) in a malloc'ed buffer the caller releases with
 * cdw_buffer_free. UIDs, dates and times are the caller's: nothing here invents one, so the same input gives
 * the same bytes.
 *
 * Errors: functions return CDW_OK (0) or a CDW_ERR_* code and write a NUL-terminated message into `err`
 * (errlen bytes, may be NULL/0). Every C++ exception and DCMTK condition becomes a code and message; nothing
 * throws across this boundary. Messages never hold patient data (only DCMTK's condition texts and which step
 * failed). DCMTK's logger is silenced.
 *
 * Threads: calls on different inputs may run concurrently (each has its own document and data set). */
#ifndef CDICOMWRITE_H
#define CDICOMWRITE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    CDW_OK = 0,
    CDW_ERR_INPUT = 1,     /* a required value is missing or DCMTK refuses one (its VR or VM) */
    CDW_ERR_ENCODE = 2,    /* DCMTK could not build or write the data set */
    CDW_ERR_INTERNAL = 3,  /* a C++ exception (out of memory included) */
};

/* A PS3.10 file: `size` bytes at `data` (malloc'ed). */
typedef struct {
    uint8_t *data;
    size_t size;
} cdw_buffer;

/* Patient, study and instance attributes every object has. */
typedef struct {
    const char *study_instance_uid;   /* required */
    const char *series_instance_uid;  /* required */
    const char *sop_instance_uid;     /* required */
    const char *patient_id;           /* LO */
    const char *patient_name;         /* PN, may be empty */
    const char *patient_sex;          /* M, F, O or empty */
    const char *study_date;           /* DA or empty */
    const char *study_time;           /* TM or empty */
    const char *content_date;         /* DA, required */
    const char *content_time;         /* TM, required */
    const char *series_number;        /* IS */
    const char *instance_number;      /* IS */
    const char *series_description;   /* LO, may be empty */
    const char *software_version;     /* LO: Mediscope's */
} cdw_common;

/* A coded concept: code value, coding scheme designator, code meaning. */
typedef struct {
    const char *value;
    const char *scheme;
    const char *meaning;
} cdw_code;

/* One class's probability: the concept it is measured as and its value (unit UCUM "1"). */
typedef struct {
    cdw_code concept;
    double probability;
} cdw_probability;

/* One model result. */
typedef struct {
    const char *title;                /* the result's title (Tracking Identifier) */
    const char *finding;              /* the predicted class as people read it */
    const cdw_probability *probabilities;
    size_t probability_count;
    const char *algorithm_name;       /* TID 4019 */
    const char *algorithm_version;
    const char *algorithm_parameters; /* may be empty */
    const char *model_name;           /* Contributing Equipment: Manufacturer's Model Name */
    const char *device_uid;           /* Contributing Equipment: Device UID (one item per distinct UID) */
} cdw_result;

/* A Comprehensive SR of an analysis. */
typedef struct {
    cdw_common common;
    const char *notice;                /* the decision-support notice, a Comment */
    const char *input_check;           /* the input check in words; NULL/empty: none */
    cdw_code input_check_concept;      /* its concept name */
    const cdw_result *results;
    size_t result_count;
    const char *report_text;           /* the report's text (Impression); NULL/empty: none */
    /* Verification: all three set for a signed report (VERIFIED, COMPLETE), else NULL (UNVERIFIED, PARTIAL). */
    const char *verifying_observer_name;     /* PN */
    const char *verifying_organization;      /* LO */
    const char *verification_datetime;       /* DT */
    /* The earlier SR this one replaces (Predecessor Documents Sequence); NULL: none. */
    const char *predecessor_series_uid;
    const char *predecessor_sop_uid;
    /* The private coding scheme of the concepts above that are not DCM's (designator, name). */
    const char *private_scheme_designator;
    const char *private_scheme_name;
} cdw_sr_input;

/* A Secondary Capture image: RGB, 8 bits, Burned In Annotation YES. */
typedef struct {
    cdw_common common;
    uint32_t width;
    uint32_t height;
    const uint8_t *rgb;               /* width x height x 3 bytes, rows top to bottom */
    const char *derivation;           /* Derivation Description, may be empty */
    const char *model_name;
    const char *device_uid;
} cdw_sc_input;

/* Writes the SR of `input` into `out` (zeroed on failure). */
int cdw_write_sr(const cdw_sr_input *input, cdw_buffer *out, char *err, size_t errlen);

/* Writes the Secondary Capture of `input` into `out` (zeroed on failure). */
int cdw_write_sc(const cdw_sc_input *input, cdw_buffer *out, char *err, size_t errlen);

/* Releases `buffer`'s bytes and zeroes it; harmless on a zeroed buffer. */
void cdw_buffer_free(cdw_buffer *buffer);

#ifdef __cplusplus
}
#endif

#endif
