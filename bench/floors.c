/* floors: what this machine allows at best, for the goals of bench/peers.sh.
 *
 *   floors peak SECONDS
 *       The core's int8 dot-product and fp32 FMA throughput (multiply-accumulates per second) with
 *       the widest instructions it has, the ones oneDNN picks too: AVX-512 VNNI, else AVX-VNNI, else
 *       AVX2 (vpmaddubsw + vpmaddwd); AVX-512F, else AVX2 FMA. 16 independent accumulators, the best
 *       of 5 runs. Prints JSON.
 *   floors pss SHIM [MODEL ENGINE HEIGHT WIDTH]
 *       The memory one process takes for libtorch alone: opens the shim as the inference fork server
 *       does (ctorch_open), optionally loads MODEL (ENGINE "" for a float model) and runs it once on a
 *       blank 1 x HEIGHT x WIDTH x 3 input with one Grad-CAM target, then prints its own
 *       /proc/self/smaps_rollup figures as JSON. Nothing else is loaded: no server, no store, no
 *       image codecs.
 *
 * Built by bench/peers.sh with cc; not part of the product. */
#define _GNU_SOURCE
#include "ctorch.h"

#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STEPS 4096

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Each kernel runs `steps` rounds of independent accumulations in registers (enough chains to hide
 * the instruction's latency on two ports) and returns the multiply-accumulates done. The inputs are
 * zeros: the units' speed does not depend on the values. Written in assembly so that the compiler
 * neither folds the loop nor keeps accumulators in memory. */
#define EACH12(F) F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11)
#define EACH16(F) EACH12(F) F(12) F(13) F(14) F(15)
#define ZMM_CLOBBERS "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
                     "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm30", "xmm31"
#define YMM_CLOBBERS "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
                     "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"
#define ZERO_ZMM(n) "vpxord %%zmm" #n ", %%zmm" #n ", %%zmm" #n "\n"
#define ZERO_YMM(n) "vpxor %%ymm" #n ", %%ymm" #n ", %%ymm" #n "\n"

/* One kernel: zero the registers, then `steps` times the body; returns the multiply-accumulates done. */
#define KERNEL(name, isa, zero, body, macs_per_step, ...)                                                  \
    __attribute__((target(isa))) static double name(long steps) {                                          \
        double macs = (double)steps * (macs_per_step);                                                     \
        __asm__ volatile(zero "1:\n" body "dec %0\n jnz 1b\n" : "+r"(steps) : : __VA_ARGS__, "cc");       \
        return macs;                                                                                       \
    }

/* u8 x s8 products summed into s32 lanes, 4 per lane: 64 per instruction. */
#define VNNI512(n) "vpdpbusd %%zmm31, %%zmm30, %%zmm" #n "\n"
KERNEL(int8_avx512_vnni, "avx512f,avx512vnni", EACH16(ZERO_ZMM) ZERO_ZMM(30) ZERO_ZMM(31), EACH16(VNNI512), 16 * 64, ZMM_CLOBBERS)
/* The VEX form on 256 bits: 32 per instruction. */
#define VNNI256(n) "%{vex%} vpdpbusd %%ymm15, %%ymm14, %%ymm" #n "\n"
KERNEL(int8_avx_vnni, "avx2,avxvnni", EACH16(ZERO_YMM), EACH12(VNNI256), 12 * 32, YMM_CLOBBERS)
/* Without VNNI: u8 x s8 -> s16 pairs, pairs -> s32, add: three instructions for 32 products. */
#define AVX2_INT8(n) "vpmaddubsw %%ymm15, %%ymm14, %%ymm" #n "\n vpmaddwd %%ymm13, %%ymm" #n ", %%ymm" #n \
                     "\n vpaddd %%ymm" #n ", %%ymm12, %%ymm12\n"
KERNEL(int8_avx2, "avx2", EACH16(ZERO_YMM), EACH12(AVX2_INT8), 12 * 32, YMM_CLOBBERS)
#define FMA512(n) "vfmadd231ps %%zmm31, %%zmm30, %%zmm" #n "\n"
KERNEL(fp32_avx512, "avx512f", EACH16(ZERO_ZMM) ZERO_ZMM(30) ZERO_ZMM(31), EACH16(FMA512), 16 * 16, ZMM_CLOBBERS)
#define FMA256(n) "vfmadd231ps %%ymm15, %%ymm14, %%ymm" #n "\n"
KERNEL(fp32_avx2, "avx2,fma", EACH16(ZERO_YMM), EACH12(FMA256), 12 * 8, YMM_CLOBBERS)

/* The best rate of 5 runs of `seconds` / 5 each, in multiply-accumulates per second. */
static double best_rate(double (*kernel)(long), double seconds) {
    double best = 0;
    kernel(STEPS);  // warm-up: wakes the wide units
    for (int run = 0; run < 5; run++) {
        double macs = 0, start = now(), elapsed;
        do {
            macs += kernel(STEPS);
            elapsed = now() - start;
        } while (elapsed < seconds / 5);
        if (macs / elapsed > best) best = macs / elapsed;
    }
    return best;
}

static int peak(double seconds) {
    __builtin_cpu_init();
    const char *int8_isa, *fp32_isa;
    double (*int8)(long), (*fp32)(long);
    if (__builtin_cpu_supports("avx512vnni")) int8_isa = "avx512_vnni", int8 = int8_avx512_vnni;
    else if (__builtin_cpu_supports("avxvnni")) int8_isa = "avx_vnni", int8 = int8_avx_vnni;
    else if (__builtin_cpu_supports("avx2")) int8_isa = "avx2", int8 = int8_avx2;
    else int8_isa = NULL, int8 = NULL;
    if (__builtin_cpu_supports("avx512f")) fp32_isa = "avx512f", fp32 = fp32_avx512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) fp32_isa = "avx2_fma", fp32 = fp32_avx2;
    else fp32_isa = NULL, fp32 = NULL;
    if (int8 == NULL || fp32 == NULL) {
        fprintf(stderr, "floors: this CPU has no AVX2; nothing to measure\n");
        return 1;
    }
    double i = best_rate(int8, seconds), f = best_rate(fp32, seconds);
    printf("{\"int8_isa\": \"%s\", \"int8_gmacs\": %.1f, \"fp32_isa\": \"%s\", \"fp32_gmacs\": %.1f, \"seconds\": %.2f}\n",
           int8_isa, i / 1e9, fp32_isa, f / 1e9, seconds);
    return 0;
}

/* One field of /proc/self/smaps_rollup, in KiB (-1 when missing). */
static long rollup(const char *field) {
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (f == NULL) return -1;
    char line[256];
    long value = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            value = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return value;
}

static int pss(const char *shim, const char *model_path, const char *engine, int64_t height, int64_t width) {
    ctorch_error err = {{0}};
    const ctorch_api *api = ctorch_open(shim, &err);
    if (api == NULL) {
        fprintf(stderr, "floors: %s\n", err.message);
        return 1;
    }
    api->set_num_threads(1);
    if (model_path != NULL) {
        ctorch_model *model = api->model_load(model_path, engine, &err);
        if (model == NULL) {
            fprintf(stderr, "floors: %s\n", err.message);
            return 1;
        }
        if (height <= 0 || width <= 0 || height > 4096 || width > 4096) {
            fprintf(stderr, "floors: bad input size %ldx%ld\n", (long)height, (long)width);
            return 1;
        }
        float *input = calloc((size_t)(height * width * 3), sizeof(float));
        if (input == NULL) return 1;
        const int64_t shape[] = {1, height, width, 3};
        const int32_t positive[] = {0};
        const ctorch_cam_target target = {0, positive, 1, NULL, 0};
        ctorch_result result;
        if (api->model_run(model, input, shape, 4, &target, 1, &result, &err) != 0) {
            fprintf(stderr, "floors: %s\n", err.message);
            return 1;
        }
        api->result_free(&result);  // the model stays loaded, as in a worker
        free(input);
    }
    printf("{\"pss_kib\": %ld, \"rss_kib\": %ld, \"pss_anon_kib\": %ld, \"pss_file_kib\": %ld, \"model\": %s}\n",
           rollup("Pss"), rollup("Rss"), rollup("Pss_Anon"), rollup("Pss_File"), model_path ? "true" : "false");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "peak") == 0) return peak(atof(argv[2]));
    if (argc == 3 && strcmp(argv[1], "pss") == 0) return pss(argv[2], NULL, NULL, 0, 0);
    if (argc == 7 && strcmp(argv[1], "pss") == 0)
        return pss(argv[2], argv[3], argv[4][0] ? argv[4] : NULL, atol(argv[5]), atol(argv[6]));
    fprintf(stderr, "usage: floors peak SECONDS | floors pss SHIM [MODEL ENGINE HEIGHT WIDTH]\n");
    return 2;
}
