// Port of Pillow's Resample.c 8-bit path (Image.resize with BICUBIC, box = whole image,
// reducing_gap = None). Kept arithmetically identical so model inputs match training:
// double-precision filter weights, normalised per output pixel, rounded to 22-bit fixed
// point, int32 accumulation starting at 0.5, clipped to 0...255 after >> 22.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "CImageCodecs.h"

#define PRECISION_BITS (32 - 8 - 2)

static double bicubic_filter(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}
#define BICUBIC_SUPPORT 2.0

static inline uint8_t clip8(int in) {
    int v = in >> PRECISION_BITS;  // arithmetic shift, as in Pillow
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

// Pillow's precompute_coeffs + normalize_coeffs_8bpc. Returns ksize or 0 on OOM.
static int precompute_coeffs(int in_size, int out_size, int **boundsp, int32_t **kkp) {
    // Pillow passes the box as floats; for a whole-image box (0, in_size) this is exact.
    double scale = (double)((float)in_size - 0.0f) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = BICUBIC_SUPPORT * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;

    double *kk = malloc((size_t)out_size * (size_t)ksize * sizeof(double));
    int *bounds = malloc((size_t)out_size * 2 * sizeof(int));
    int32_t *ik = malloc((size_t)out_size * (size_t)ksize * sizeof(int32_t));
    if (kk == NULL || bounds == NULL || ik == NULL) {
        free(kk);
        free(bounds);
        free(ik);
        return 0;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;  // in0 = 0
        double ww = 0.0;
        double ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double *k = &kk[(size_t)xx * ksize];
        int x;
        for (x = 0; x < xmax; x++) {
            double w = bicubic_filter((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++) {
            if (ww != 0.0) k[x] /= ww;
        }
        for (; x < ksize; x++) k[x] = 0;
        bounds[xx * 2 + 0] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out_size * (size_t)ksize; i++) {
        ik[i] = kk[i] < 0 ? (int32_t)(-0.5 + kk[i] * (1 << PRECISION_BITS))
                          : (int32_t)(0.5 + kk[i] * (1 << PRECISION_BITS));
    }
    free(kk);
    *boundsp = bounds;
    *kkp = ik;
    return ksize;
}

// Horizontal pass over rows [y0, y0 + rows) of src into out (out_w x rows).
static void resample_horizontal(const uint8_t *src, int src_w, int ch, int y0, int rows,
                                uint8_t *out, int out_w, int ksize, const int *bounds,
                                const int32_t *kk) {
    const int half = 1 << (PRECISION_BITS - 1);
    for (int yy = 0; yy < rows; yy++) {
        const uint8_t *in = src + (size_t)(yy + y0) * (size_t)src_w * ch;
        uint8_t *o = out + (size_t)yy * (size_t)out_w * ch;
        for (int xx = 0; xx < out_w; xx++) {
            int xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1];
            const int32_t *k = &kk[(size_t)xx * ksize];
            const uint8_t *p = in + (size_t)xmin * ch;
            if (ch == 1) {
                int s0 = half;
                for (int x = 0; x < xmax; x++) s0 += p[x] * k[x];
                o[xx] = clip8(s0);
            } else if (ch == 3) {
                int s0 = half, s1 = half, s2 = half;
                for (int x = 0; x < xmax; x++, p += 3) {
                    s0 += p[0] * k[x];
                    s1 += p[1] * k[x];
                    s2 += p[2] * k[x];
                }
                o[xx * 3 + 0] = clip8(s0);
                o[xx * 3 + 1] = clip8(s1);
                o[xx * 3 + 2] = clip8(s2);
            } else {
                int s0 = half, s1 = half, s2 = half, s3 = half;
                for (int x = 0; x < xmax; x++, p += 4) {
                    s0 += p[0] * k[x];
                    s1 += p[1] * k[x];
                    s2 += p[2] * k[x];
                    s3 += p[3] * k[x];
                }
                o[xx * 4 + 0] = clip8(s0);
                o[xx * 4 + 1] = clip8(s1);
                o[xx * 4 + 2] = clip8(s2);
                o[xx * 4 + 3] = clip8(s3);
            }
        }
    }
}

// Vertical pass: src is w x (any rows), out is w x out_h; bounds are relative to src row 0.
static void resample_vertical(const uint8_t *src, int w, int ch, uint8_t *out, int out_h,
                              int ksize, const int *bounds, const int32_t *kk) {
    const int half = 1 << (PRECISION_BITS - 1);
    const size_t stride = (size_t)w * ch;
    for (int yy = 0; yy < out_h; yy++) {
        const int32_t *k = &kk[(size_t)yy * ksize];
        int ymin = bounds[yy * 2], ymax = bounds[yy * 2 + 1];
        const uint8_t *base = src + (size_t)ymin * stride;
        uint8_t *o = out + (size_t)yy * stride;
        // Same sums as Pillow's per-pixel loop, walked row-major for cache locality.
        for (size_t i = 0; i < stride; i++) {
            int s = half;
            const uint8_t *p = base + i;
            for (int y = 0; y < ymax; y++, p += stride) s += *p * k[y];
            o[i] = clip8(s);
        }
    }
}

// The one plane of an RGB image whose pixels all have R = G = B, or NULL (another image, or no memory).
static uint8_t *gray_plane(const uint8_t *rgb, size_t pixels) {
    uint8_t *plane = malloc(pixels);
    if (plane == NULL) return NULL;
    for (size_t i = 0; i < pixels; i++) {
        const uint8_t *p = rgb + i * 3;
        if (p[0] != p[1] || p[0] != p[2]) {
            free(plane);
            return NULL;
        }
        plane[i] = p[0];
    }
    return plane;
}

#define MULDIV255(a, b, tmp) (tmp = (a) * (b) + 128, ((((tmp) >> 8) + (tmp)) >> 8))

int codec_resize_bicubic(const uint8_t *src, int src_w, int src_h, int channels,
                         uint8_t *dst, int dst_w, int dst_h) {
    if (src == NULL || dst == NULL || src_w <= 0 || src_h <= 0 || dst_w <= 0 || dst_h <= 0 ||
        (channels != 1 && channels != 3 && channels != 4))
        return CODEC_ERR_ARGUMENT;
    const size_t src_bytes = (size_t)src_w * src_h * channels;
    const size_t dst_bytes = (size_t)dst_w * dst_h * channels;
    if (src_w == dst_w && src_h == dst_h) {  // Pillow returns a copy
        memcpy(dst, src, dst_bytes);
        return CODEC_OK;
    }
    // A grey scan stored as RGB (most are): every channel gets the same weights and so the same values,
    // so one plane is resampled, in a third of the time, and copied into the three.
    if (channels == 3) {
        uint8_t *plane = gray_plane(src, (size_t)src_w * src_h);
        uint8_t *small = plane ? malloc((size_t)dst_w * dst_h) : NULL;
        if (small != NULL) {
            int grey = codec_resize_bicubic(plane, src_w, src_h, 1, small, dst_w, dst_h);
            for (size_t i = 0; grey == CODEC_OK && i < (size_t)dst_w * dst_h; i++)
                dst[i * 3] = dst[i * 3 + 1] = dst[i * 3 + 2] = small[i];
            free(plane);
            free(small);
            return grey;
        }
        free(plane);  // not grey (or no memory for the plane): the three channels, as Pillow does
    }

    int rc = CODEC_ERR_NOMEM;
    int *bh = NULL, *bv = NULL;
    int32_t *kh = NULL, *kv = NULL;
    uint8_t *premul = NULL, *tmp = NULL;
    int ksh = precompute_coeffs(src_w, dst_w, &bh, &kh);
    int ksv = precompute_coeffs(src_h, dst_h, &bv, &kv);
    if (ksh == 0 || ksv == 0) goto done;

    // Pillow resizes RGBA as premultiplied RGBa and converts back afterwards.
    const uint8_t *in = src;
    if (channels == 4) {
        premul = malloc(src_bytes);
        if (premul == NULL) goto done;
        unsigned int t;
        for (size_t i = 0; i < src_bytes; i += 4) {
            unsigned int a = src[i + 3];
            premul[i + 0] = (uint8_t)MULDIV255(src[i + 0], a, t);
            premul[i + 1] = (uint8_t)MULDIV255(src[i + 1], a, t);
            premul[i + 2] = (uint8_t)MULDIV255(src[i + 2], a, t);
            premul[i + 3] = (uint8_t)a;
        }
        in = premul;
    }

    int need_h = dst_w != src_w, need_v = dst_h != src_h;
    int ybox_first = bv[0];
    int ybox_last = bv[dst_h * 2 - 2] + bv[dst_h * 2 - 1];
    if (need_h && need_v) {
        // Only the source rows the vertical pass reads are resampled horizontally.
        for (int i = 0; i < dst_h; i++) bv[i * 2] -= ybox_first;
        int rows = ybox_last - ybox_first;
        tmp = malloc((size_t)dst_w * rows * channels);
        if (tmp == NULL) goto done;
        resample_horizontal(in, src_w, channels, ybox_first, rows, tmp, dst_w, ksh, bh, kh);
        resample_vertical(tmp, dst_w, channels, dst, dst_h, ksv, bv, kv);
    } else if (need_h) {
        resample_horizontal(in, src_w, channels, 0, src_h, dst, dst_w, ksh, bh, kh);
    } else {
        resample_vertical(in, src_w, channels, dst, dst_h, ksv, bv, kv);
    }

    if (channels == 4) {  // Pillow 9.4 rgba2rgbA: truncating division, 0 and 255 untouched
        for (size_t i = 0; i < dst_bytes; i += 4) {
            unsigned int a = dst[i + 3];
            if (a != 0 && a != 255) {
                for (int c = 0; c < 3; c++) {
                    unsigned int v = (255u * dst[i + c]) / a;
                    dst[i + c] = (uint8_t)(v > 255 ? 255 : v);
                }
            }
        }
    }
    rc = CODEC_OK;
done:
    free(bh);
    free(bv);
    free(kh);
    free(kv);
    free(premul);
    free(tmp);
    return rc;
}
