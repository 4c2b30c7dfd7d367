// Pooling family: dense max, blur + subsample, and the fused max + blur + subsample.
//
// One thread per output element, grid-stride over 64-bit indices; the output index is split in
// the output's own layout so consecutive threads write consecutive addresses (NHWC: channels,
// NCHW: columns). These are the straightforward fused versions (v1): each output recomputes the
// window maxima it needs instead of reading a max map, so the max map never reaches memory.
// Tiled / vectorised versions are compared against these on the same data.
#include "common.cuh"

// Dense max, stride 1 (the first half of the unfused "separate max + blur" path).
// Output extents (ho, wo) = (h + 2·mpy − mkh + 1, w + 2·mpx − mkw + 1).
template <typename T, typename L>
__device__ __forceinline__ void bp_maxpool_impl(const BpParams p, const T *__restrict__ x, const T *, const T *,
                                                T *__restrict__ y) {
    BP_GRID_STRIDE_LOOP(idx, p.total) {
        long long n, c, i, j;
        L::split(idx, p, n, c, i, j);
        y[idx] = bp_from_f32<T>(bp_window_max<T, L>(x, p, n, c, i, j));
    }
}
BP_INSTANTIATE(bp_maxpool)

// Blur + subsample: only the kept outputs are computed. Reads a map of extents (hm, wm) — the
// input itself for BlurPool2d, or the dense max map in the unfused path.
template <typename T, typename L>
__device__ __forceinline__ void bp_blurpool_impl(const BpParams p, const T *__restrict__ x, const T *, const T *,
                                                 T *__restrict__ y) {
    BP_GRID_STRIDE_LOOP(idx, p.total) {
        long long n, c, i, j;
        L::split(idx, p, n, c, i, j);
        float acc = 0.f;
        for (int u = 0; u < p.fy; ++u) {
            long long r = bp_source_index(i * p.sy + u - p.pad_top, p.hm, p.mode);
            if (r < 0) continue;
            for (int v = 0; v < p.fx; ++v) {
                long long q = bp_source_index(j * p.sx + v - p.pad_left, p.wm, p.mode);
                if (q < 0) continue;
                acc += p.ty[u] * p.tx[v] * bp_to_f32(x[L::offset(n, c, r, q, p.c, p.hm, p.wm)]);
            }
        }
        y[idx] = bp_from_f32<T>(acc);
    }
}
BP_INSTANTIATE(bp_blurpool)

// Fused MaxBlurPool2d: the blur's padding applies to the max map (extents hm, wm); each tap's
// max is taken from the input on the fly, so the max map is never written.
template <typename T, typename L>
__device__ __forceinline__ void bp_maxblurpool_impl(const BpParams p, const T *__restrict__ x, const T *,
                                                    const T *, T *__restrict__ y) {
    BP_GRID_STRIDE_LOOP(idx, p.total) {
        long long n, c, i, j;
        L::split(idx, p, n, c, i, j);
        float acc = 0.f;
        for (int u = 0; u < p.fy; ++u) {
            long long r = bp_source_index(i * p.sy + u - p.pad_top, p.hm, p.mode);
            if (r < 0) continue;
            for (int v = 0; v < p.fx; ++v) {
                long long q = bp_source_index(j * p.sx + v - p.pad_left, p.wm, p.mode);
                if (q < 0) continue;
                acc += p.ty[u] * p.tx[v] * bp_window_max<T, L>(x, p, n, c, r, q);
            }
        }
        y[idx] = bp_from_f32<T>(acc);
    }
}
BP_INSTANTIATE(bp_maxblurpool)
