// Convolution family: conv + bias + activation + blur + subsample (ConvBlurPool2d), and
// blur + strided conv + bias + activation (BlurConv2d, composer's blur_first order).
//
// Straightforward fused versions (v1): one thread per output element; the full-resolution
// conv output (ConvBlurPool2d) or blurred map (BlurConv2d) is recomputed where needed and
// never written. Weights are PyTorch's Cout×(Cin/groups)×kh×kw in the activations' dtype;
// accumulation is f32.
#include "common.cuh"

// conv2d at stride 1 (zero padding cpy/cpx, groups) + bias + activation at one point (r, q) of
// the conv map for output channel co.
template <typename T, typename L>
__device__ __forceinline__ float bp_conv_point(const BpParams &p, const T *__restrict__ x, const T *__restrict__ w,
                                               const T *__restrict__ b, long long n, long long co, long long r,
                                               long long q) {
    // Channel counts fit in int (checked on the host): 32-bit division stays inline.
    const int cin_g = (int)p.c / p.groups;
    const int cout_g = (int)p.cout / p.groups;
    const int ci0 = ((int)co / cout_g) * cin_g;
    float acc = p.has_bias ? bp_to_f32(b[co]) : 0.f;
    for (int ci = 0; ci < cin_g; ++ci) {
        const T *wk = w + (co * cin_g + ci) * (long long)(p.ckh * p.ckw);
        for (int a = 0; a < p.ckh; ++a) {
            long long y = r + a - p.cpy;
            if (y < 0 || y >= p.h) continue;
            for (int k = 0; k < p.ckw; ++k) {
                long long xx = q + k - p.cpx;
                if (xx < 0 || xx >= p.w) continue;
                acc += bp_to_f32(wk[a * p.ckw + k]) * bp_to_f32(x[L::offset(n, ci0 + ci, y, xx, p.c, p.h, p.w)]);
            }
        }
    }
    return bp_activate(acc, p.act);
}

// ConvBlurPool2d: y = blur_s(act(conv_1(x) + bias)); the blur pads the conv map (hm, wm).
template <typename T, typename L>
__device__ __forceinline__ void bp_convblurpool_impl(const BpParams p, const T *__restrict__ x,
                                                     const T *__restrict__ w, const T *__restrict__ b,
                                                     T *__restrict__ y) {
    BP_GRID_STRIDE_LOOP(idx, p.total) {
        long long n, co, i, j;
        L::split(idx, p, n, co, i, j);
        float acc = 0.f;
        for (int u = 0; u < p.fy; ++u) {
            long long r = bp_source_index(i * p.sy + u - p.pad_top, p.hm, p.mode);
            if (r < 0) continue;
            for (int v = 0; v < p.fx; ++v) {
                long long q = bp_source_index(j * p.sx + v - p.pad_left, p.wm, p.mode);
                if (q < 0) continue;
                acc += p.ty[u] * p.tx[v] * bp_conv_point<T, L>(p, x, w, b, n, co, r, q);
            }
        }
        y[idx] = bp_from_f32<T>(acc);
    }
}
BP_INSTANTIATE(bp_convblurpool)

// One point (r, q) of the stride-1 blur of input channel ci; (hm, wm) are the blurred map's
// extents and the conv's zero padding lies outside them.
template <typename T, typename L>
__device__ __forceinline__ float bp_blur_point(const BpParams &p, const T *__restrict__ x, long long n, long long ci,
                                               long long r, long long q) {
    float acc = 0.f;
    for (int u = 0; u < p.fy; ++u) {
        long long yy = bp_source_index(r + u - p.pad_top, p.h, p.mode);
        if (yy < 0) continue;
        for (int v = 0; v < p.fx; ++v) {
            long long xx = bp_source_index(q + v - p.pad_left, p.w, p.mode);
            if (xx < 0) continue;
            acc += p.ty[u] * p.tx[v] * bp_to_f32(x[L::offset(n, ci, yy, xx, p.c, p.h, p.w)]);
        }
    }
    return acc;
}

// BlurConv2d: y = act(conv_s(blur_1(x)) + bias).
template <typename T, typename L>
__device__ __forceinline__ void bp_blurconv_impl(const BpParams p, const T *__restrict__ x, const T *__restrict__ w,
                                                 const T *__restrict__ b, T *__restrict__ y) {
    const int cin_g = (int)p.c / p.groups;
    const int cout_g = (int)p.cout / p.groups;
    BP_GRID_STRIDE_LOOP(idx, p.total) {
        long long n, co, i, j;
        L::split(idx, p, n, co, i, j);
        const int ci0 = ((int)co / cout_g) * cin_g;
        float acc = p.has_bias ? bp_to_f32(b[co]) : 0.f;
        for (int ci = 0; ci < cin_g; ++ci) {
            const T *wk = w + (co * cin_g + ci) * (long long)(p.ckh * p.ckw);
            for (int a = 0; a < p.ckh; ++a) {
                long long r = i * p.csy + a - p.cpy;
                if (r < 0 || r >= p.hm) continue;
                for (int k = 0; k < p.ckw; ++k) {
                    long long q = j * p.csx + k - p.cpx;
                    if (q < 0 || q >= p.wm) continue;
                    acc += bp_to_f32(wk[a * p.ckw + k]) * bp_blur_point<T, L>(p, x, n, ci0 + ci, r, q);
                }
            }
        }
        y[idx] = bp_from_f32<T>(bp_activate(acc, p.act));
    }
}
BP_INSTANTIATE(bp_blurconv)
