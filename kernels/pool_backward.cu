// Pooling family, backward: input gradients of the dense max, BlurPool2d and the fused
// MaxBlurPool2d (conv_backward.cu has ConvBlurPool2d's).
//
// Every kernel is a gather: each gradient element is computed by one thread (or, for the
// weight and bias reductions, one block) that sums, in a fixed order, every term that reaches
// it. No atomics, so results are bitwise reproducible run to run and stream to stream, in every
// pad mode (PyTorch's reflect/replicate backward scatters with atomics: pytorch#98208).
// Accumulation is f32; gradients are rounded to T once.
//
// Straightforward versions (v1), one thread per gradient element, like the forward v1 kernels.
#include "common.cuh"

// PyTorch's argmax of dense-max window (i, j) (the cell max_pool2d saves as its index): the
// first in-bounds cell to start, then a row-major scan with `v > best || isnan(v)` from -inf.
template <typename T, typename L>
__device__ __forceinline__ void bp_window_argmax(const T *__restrict__ x, const BpParams &p, long long n, long long c,
                                                 int i, int j, int &ay, int &ax) {
    float best = __int_as_float(0xff800000); // -inf
    ay = -1;
    ax = -1;
    for (int a = 0; a < p.mkh; ++a) {
        int y = i + a - p.mpy;
        if (y < 0 || y >= p.h) continue;
        for (int b = 0; b < p.mkw; ++b) {
            int xx = j + b - p.mpx;
            if (xx < 0 || xx >= p.w) continue;
            if (ay < 0) {
                ay = y;
                ax = xx;
            }
            float v = bp_to_f32(bp_ld(x + L::offset(n, c, y, xx, p.c, p.h, p.w)));
            if (v > best || v != v) {
                best = v;
                ay = y;
                ax = xx;
            }
        }
    }
}

// Input gradient of a dense max (stride 1) at input cell (y, x): the windows that contain it and
// chose it as their argmax, each contributing its map gradient: dy at the window itself
// (FUSED = false: dy is the max map's gradient) or the blur's adjoint of dy there (FUSED = true:
// dy is MaxBlurPool2d's output gradient). Windows are visited in a fixed order.
template <typename T, typename L, bool FUSED>
__device__ __forceinline__ float bp_max_gather(const T *__restrict__ x, const T *__restrict__ dy, const BpParams &p,
                                               long long n, long long c, int y, int xx) {
    float acc = 0.f;
    for (int a = 0; a < p.mkh; ++a) {
        int i = y - a + p.mpy;
        if (i < 0 || i >= p.hm) continue;
        for (int b = 0; b < p.mkw; ++b) {
            int j = xx - b + p.mpx;
            if (j < 0 || j >= p.wm) continue;
            int ay, ax;
            bp_window_argmax<T, L>(x, p, n, c, i, j, ay, ax);
            if (ay != y || ax != xx) continue;
            acc += FUSED ? bp_blur_adjoint<T, L>(p, dy, n, c, i, j)
                         : bp_to_f32(bp_ld(dy + L::offset(n, c, i, j, p.cout, p.hm, p.wm)));
        }
    }
    return acc;
}

// Input gradient of a dense max: a = x, c = dy, out = dx. FUSED = false: the dense max alone
// (dy is the max map's gradient, extents hm × wm = ho × wo); FUSED = true: MaxBlurPool2d (dy is
// its output gradient; the max map's gradient, the blur's adjoint of dy, is evaluated where a
// window's argmax needs it and never written).
template <typename T, typename L, bool FUSED>
__device__ __forceinline__ void bp_max_input_grad(const BpParams &p, const void *a, const void *c, void *out) {
    const T *__restrict__ x = (const T *)a;
    const T *__restrict__ dy = (const T *)c;
    T *__restrict__ dx = (T *)out;
    const bp_extents in = bp_input_extents(p);
    BP_GRID_STRIDE_LOOP(idx, p.total_in) {
        long long n, ch, y, xx;
        L::split_in(idx, in, n, ch, y, xx);
        bp_st(dx + idx, bp_from_f32<T>(bp_max_gather<T, L, FUSED>(x, dy, p, n, ch, (int)y, (int)xx)));
    }
}

template <typename T, typename L>
__device__ __forceinline__ void bp_maxpool_bwd_impl(const BpParams p, const void *a, const void *, const void *c,
                                                    const void *, void *out) {
    bp_max_input_grad<T, L, false>(p, a, c, out);
}
BP_INSTANTIATE_BWD(bp_maxpool_bwd)

template <typename T, typename L>
__device__ __forceinline__ void bp_maxblurpool_bwd_impl(const BpParams p, const void *a, const void *,
                                                        const void *c, const void *, void *out) {
    bp_max_input_grad<T, L, true>(p, a, c, out);
}
BP_INSTANTIATE_BWD(bp_maxblurpool_bwd)

// BlurPool2d backward: c = dy, out = dx (the map the blur reads is the input: hm × wm = h × w).
template <typename T, typename L>
__device__ __forceinline__ void bp_blurpool_bwd_impl(const BpParams p, const void *, const void *, const void *c,
                                                     const void *, void *out) {
    const T *__restrict__ dy = (const T *)c;
    T *__restrict__ dx = (T *)out;
    const bp_extents in = bp_input_extents(p);
    BP_GRID_STRIDE_LOOP(idx, p.total_in) {
        long long n, ch, y, xx;
        L::split_in(idx, in, n, ch, y, xx);
        bp_st(dx + idx, bp_from_f32<T>(bp_blur_adjoint<T, L>(p, dy, n, ch, (int)y, (int)xx)));
    }
}
BP_INSTANTIATE_BWD(bp_blurpool_bwd)
