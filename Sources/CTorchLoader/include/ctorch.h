/* ctorch: the plain C API of Mediscope's libtorch shim.
 *
 * The shim (Sources/CTorch) is built as a shared object of its own,
 * libMediscopeTorch.so, and opened with dlopen only by the processes that run
 * models (ctorch_open below). The master, io workers and background processes
 * never map or initialise libtorch. The shim exports one symbol,
 * ctorch_api_get, whose table holds every entry point.
 *
 * Ownership is explicit: every object returned through the table is released
 * by the matching *_free entry. No C++ exception crosses this boundary;
 * failures return a non-zero status (or NULL) and fill the caller-owned
 * ctorch_error. */
#ifndef CTORCH_H
#define CTORCH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ctorch_error {
    char message[1024];
} ctorch_error;

typedef struct ctorch_model ctorch_model;

/* A Grad-CAM target: score = logsumexp(logits[positive]) - logsumexp(logits[negative]).
 * With one positive index and no negatives that is the plain logit of that class;
 * with negatives it is the log-odds of the positive set. With explain_top_class
 * non-zero the lists are ignored and the highest logit is explained. */
typedef struct ctorch_cam_target {
    int32_t explain_top_class;
    const int32_t *positive;
    int32_t positive_count;
    const int32_t *negative;
    int32_t negative_count;
} ctorch_cam_target;

/* Output of one run. The arrays are owned by the result: release with result_free. */
typedef struct ctorch_result {
    float *logits;          /* logit_count values */
    int64_t logit_count;
    float *cams;            /* cam_count maps of cam_height x cam_width, ReLU(sum_k w_k A_k), not normalised */
    int32_t cam_count;
    int64_t cam_height;
    int64_t cam_width;
    float *pooled;          /* pooled_count values: the mean over H and W of the `features` activations
                               [1, C, H, W] (the input check's feature vector, no extra pass) */
    int64_t pooled_count;
    double features_ms;     /* frozen `features` pass */
    double head_ms;         /* `head` pass (with autograd when targets were given) */
    double gradcam_ms;      /* gradients and weighted sums for all targets */
} ctorch_result;

/* The table's layout version; a shim built from another header is refused. */
#define CTORCH_API_VERSION 1

typedef struct ctorch_api {
    int32_t version; /* CTORCH_API_VERSION */

    /* Intra-op threads for every model in this process. Returns the value now in force. */
    int32_t (*set_num_threads)(int32_t threads);
    int32_t (*get_num_threads)(void);

    /* Loads a TorchScript module that has `forward`, `features` and `head` methods
     * (see models/README.md), saved frozen (an unfrozen file is frozen here, at the
     * cost of a second copy of the weights while loading). A float model's `features`
     * is optimised for inference (oneDNN); `head` is never optimised, so gradients
     * flow through it for Grad-CAM.
     * quantized_engine: NULL or "" for a float model; for an int8 model the engine
     * its file records (e.g. "onednn"), which is selected before the file loads. A
     * mismatch either way, or an engine this libtorch lacks, is refused.
     * Returns NULL and fills err on failure. */
    ctorch_model *(*model_load)(const char *path, const char *quantized_engine, ctorch_error *err);
    void (*model_free)(ctorch_model *model);

    /* Runs features -> head once and, for each target, Grad-CAM on the `features`
     * activations. input holds prod(shape) floats laid out as shape says (the
     * manifest's layout); it is only read. Returns 0 on success. On failure out
     * is left empty (safe to pass to result_free). */
    int32_t (*model_run)(ctorch_model *model,
                         const float *input, const int64_t *shape, int32_t rank,
                         const ctorch_cam_target *targets, int32_t target_count,
                         ctorch_result *out, ctorch_error *err);

    /* Frees the arrays of a result (not the struct itself) and zeroes it. */
    void (*result_free)(ctorch_result *result);

    /* Runs only the frozen forward path `iterations` times on input (for the benchmark
     * that separates the shim's overhead from libtorch's). Returns 0 on success. */
    int32_t (*model_bench_forward)(ctorch_model *model,
                                   const float *input, const int64_t *shape, int32_t rank,
                                   int32_t iterations, double *median_ms, ctorch_error *err);
} ctorch_api;

/* The one symbol the shared object exports. */
const ctorch_api *ctorch_api_get(void);

/* Opens the shim at path (dlopen, RTLD_NOW | RTLD_LOCAL) and returns its table, or NULL
 * with err filled (a missing file, a missing libtorch, another API version). The object
 * stays loaded for the life of the process. Not thread-safe: callers serialise. */
const ctorch_api *ctorch_open(const char *path, ctorch_error *err);

/* Fixes glibc's malloc thresholds for a process that runs models: blocks up to mmap_threshold bytes come
 * from the heap instead of mappings of their own, and the heap keeps up to trim_threshold bytes free at its
 * top. Returns 1 when both were set. */
int32_t ctorch_malloc_thresholds(int32_t mmap_threshold, int32_t trim_threshold);

/* Non-zero when this process has mapped libtorch's CPU library (read from
 * /proc/self/maps), for the tests and the status page that check where it lives. */
int32_t ctorch_libtorch_mapped(void);

#ifdef __cplusplus
}
#endif

#endif
