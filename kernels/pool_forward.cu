// Pooling family, forward: dense max, blur + subsample, and the fused max + blur + subsample.
//
// v1 (general): one thread per output element, grid-stride over 64-bit indices; the output
// index is split in the output's own layout so consecutive threads write consecutive addresses
// (NHWC: channels, NCHW: columns). Each output recomputes the window maxima it needs instead of
// reading a max map, so the max map never reaches memory. Every configuration.
// v2 (strip): the presets' windows, filters and strides (see strip.cuh), compared against v1
// on the same data.
#include "strip.cuh"

// ---- v1 --------------------------------------------------------------------------------------

// Dense max, stride 1 (the first half of the unfused "separate max + blur" path).
// Output extents (ho, wo) = (h + 2·mpy − mkh + 1, w + 2·mpx − mkw + 1).
template <typename T, typename L>
__device__ __forceinline__ void bp_maxpool_impl(const BpParams p, const T *__restrict__ x, const T *, const T *,
                                                T *__restrict__ y) {
    BP_GRID_STRIDE_LOOP(idx, p.total) {
        long long n, c, i, j;
        L::split(idx, p, n, c, i, j);
        bp_st(y + idx, bp_from_f32<T>(bp_window_max<T, L>(x, p, n, c, i, j)));
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
        bp_st(y + idx, bp_from_f32<T>(bp_blur_at(p, i, j, p.hm, p.wm, bp_tensor_map<T, L>{x, n, c})));
    }
}
BP_INSTANTIATE(bp_blurpool)

// The max map of MaxBlurPool2d, evaluated from the input where a blur tap reads it.
template <typename T, typename L>
struct bp_max_map {
    const T *__restrict__ x;
    long long n, c;
    __device__ __forceinline__ float operator()(const BpParams &p, long long r, long long q) const {
        return bp_window_max<T, L>(x, p, n, c, r, q);
    }
};

// Fused MaxBlurPool2d: the blur's padding applies to the max map (extents hm, wm); each tap's
// max is taken from the input on the fly, so the max map is never written.
template <typename T, typename L>
__device__ __forceinline__ void bp_maxblurpool_impl(const BpParams p, const T *__restrict__ x, const T *,
                                                    const T *, T *__restrict__ y) {
    BP_GRID_STRIDE_LOOP(idx, p.total) {
        long long n, c, i, j;
        L::split(idx, p, n, c, i, j);
        bp_st(y + idx, bp_from_f32<T>(bp_blur_at(p, i, j, p.hm, p.wm, bp_max_map<T, L>{x, n, c})));
    }
}
BP_INSTANTIATE(bp_maxblurpool)

// ---- v2: strip kernels --------------------------------------------------------------------

// One input row's horizontal maxima for the F map columns a thread blurs: hv[v] = max over
// b < K of row[qs[v] − mpx + b] (−inf outside the row, PyTorch's max padding). `fast` says the
// F map columns are consecutive, inside the map, and their windows inside the row, so one span
// of F + K − 1 pixels serves them all.
template <typename T, int K, int F, int V>
__device__ __forceinline__ void bp_strip_hmax(const T *__restrict__ row, long long col_stride, const int (&qs)[F],
                                              int mpx, int W, bool fast, int valid, bool pairs, float (&hv)[F][V]) {
    const float neg_inf = __int_as_float(0xff800000);
    if (fast) {
        float e[F + K - 1][V];
#if BP_GATE_VARIANT == 1
        // The performance gates' serialised variant (model/, never in the library): each load's
        // address depends on the value of the one before, so no two are in flight at once.
        long long dep = 0;
#pragma unroll
        for (int t = 0; t < F + K - 1; ++t) {
            bp_load_channels<T, V>(row + (long long)(qs[0] - mpx + t) * col_stride + dep, valid, pairs, e[t]);
            dep = bp_gate_zero(e[t][0]);
        }
#else
#pragma unroll
        for (int t = 0; t < F + K - 1; ++t)
            bp_load_channels<T, V>(row + (long long)(qs[0] - mpx + t) * col_stride, valid, pairs, e[t]);
#endif
#pragma unroll
        for (int v = 0; v < F; ++v)
#pragma unroll
            for (int k = 0; k < V; ++k) {
                float best = neg_inf;
#pragma unroll
                for (int b = 0; b < K; ++b) best = bp_max_step(best, e[v + b][k]);
                hv[v][k] = best;
            }
        return;
    }
#pragma unroll
    for (int v = 0; v < F; ++v) {
#pragma unroll
        for (int k = 0; k < V; ++k) hv[v][k] = neg_inf;
        if (qs[v] < 0) continue; // a zero-padded map column: never blurred
#pragma unroll
        for (int b = 0; b < K; ++b) {
            const int col = qs[v] - mpx + b;
            if (col < 0 || col >= W) continue;
            float e[V];
            bp_load_channels<T, V>(row + (long long)col * col_stride, valid, pairs, e);
#pragma unroll
            for (int k = 0; k < V; ++k) hv[v][k] = bp_max_step(hv[v][k], e[k]);
        }
    }
}

// The map of MaxBlurPool2d (K ≥ 2: K×K max at stride 1) or of BlurPool2d (K = 1: the input):
// hx holds the horizontal maxima of the last K input rows at the F columns.
template <typename T, int K, int F, int V>
struct bp_strip_max_map {
    static constexpr int lanes = V;
    static constexpr bool wide = false;
    int mpy, mpx, H, W;
    bool fast;
    float hx[K][F][V];

    __device__ __forceinline__ bp_strip_max_map(const BpParams &p)
        : mpy(K > 1 ? p.mpy : 0), mpx(K > 1 ? p.mpx : 0), H((int)p.h), W((int)p.w), fast(false), hx{} {}

    __device__ __forceinline__ void begin(const bp_strip_item<T, F> &it, int WM) {
        fast = it.q0 >= 0 && it.q0 + F - 1 < WM && it.q0 - mpx >= 0 && it.q0 - mpx + F + K - 2 < W;
    }

    // Map row s at the F columns into m; `follows` says s is the row after the last one.
    __device__ __forceinline__ void row(const bp_strip_item<T, F> &it, int s, bool follows, float (&m)[F][V]) {
        const float neg_inf = __int_as_float(0xff800000);
        // Map row s is the max over input rows s − mpy .. s − mpy + K − 1: slide the ring by one
        // row when s follows the last one, else refill it.
        const int y_last = s - mpy + K - 1;
        for (int yy = follows ? y_last : s - mpy; yy <= y_last; ++yy) {
            bp_ring_advance(hx);
            if (yy < 0 || yy >= H) {
#pragma unroll
                for (int v = 0; v < F; ++v)
#pragma unroll
                    for (int k = 0; k < V; ++k) hx[K - 1][v][k] = neg_inf;
            } else {
                bp_strip_hmax<T, K, F, V>(it.plane + (long long)yy * it.row_stride, it.col_stride, it.qs, mpx, W,
                                          fast, it.valid, it.pairs, hx[K - 1]);
            }
        }
#pragma unroll
        for (int v = 0; v < F; ++v)
#pragma unroll
            for (int k = 0; k < V; ++k) {
                float best = neg_inf;
#pragma unroll
                for (int a = 0; a < K; ++a) best = bp_max_step(best, hx[a][v][k]);
                m[v][k] = best;
            }
    }
};

// Entry points NAME_<dtype>_<layout> for one (window, filter, stride) specialisation; the
// host picks them in src/cuda (StripShape) when an operator matches exactly.
#define BP_STRIP_VARIANT(NAME, K, F, S)                                                                   \
    template <typename T, typename L>                                                                     \
    __device__ __forceinline__ void NAME##_impl(const BpParams p, const T *__restrict__ x, const T *, const T *, \
                                                T *__restrict__ y) {                                      \
        bp_strip_run<T, L, F, S>(p, x, y, bp_strip_max_map<T, K, F, bp_strip_lanes<T, L>>(p));              \
    }                                                                                                     \
    BP_INSTANTIATE(NAME)

// ---- v4: strip kernels over 16-byte channel vectors (NHWC) ------------------------------------

// The map of v4 (the same rows as bp_strip_max_map): a lane takes 8 f16/bf16 or 4 f32 channels
// as one 16-byte vector per pixel. The horizontal maxima of the last K input rows stay packed
// (hx, one vector per map column), maxed with max.NaN (exact: the max of stored values is a
// stored value, so no rounding), and only the map row's F columns are widened to f32 for the
// blur. Away from the side edges one input row's F + K − 1 span vectors are loaded together,
// before any of them is used, so that they are in flight at once (the v2 walk's
// per-pixel branches on `pairs` serialised them).
template <typename T, int K, int F>
struct bp_strip4_max_map : bp_vec_store16<T> {
    static constexpr int lanes = bp_vec_elems<T>;
    static constexpr bool wide = true;
    int mpy, mpx, H, W;
    bool fast;
    bp_u128 hx[K][F];

    __device__ __forceinline__ bp_strip4_max_map(const BpParams &p)
        : mpy(K > 1 ? p.mpy : 0), mpx(K > 1 ? p.mpx : 0), H((int)p.h), W((int)p.w), fast(false), hx{} {}

    __device__ __forceinline__ void begin(const bp_strip_item<T, F, int> &it, int WM) {
        fast = it.q0 >= 0 && it.q0 + F - 1 < WM && it.q0 - mpx >= 0 && it.q0 - mpx + F + K - 2 < W;
    }

    // Input row yy's horizontal maxima at the F map columns into h (−inf for a column of the
    // blur's zero padding, which is never blurred, and for pixels outside the row).
    __device__ __forceinline__ void hmax(const bp_strip_item<T, F, int> &it, int yy, bp_u128 (&h)[F]) const {
        const T *__restrict__ row = it.plane + yy * it.row_stride;
        if (fast) {
            bp_u128 e[F + K - 1];
#if BP_GATE_VARIANT == 1
            // The gates' serialised variant (model/, never in the library), as in bp_strip_hmax.
            int dep = 0;
#pragma unroll
            for (int t = 0; t < F + K - 1; ++t) {
                e[t] = bp_load_u128(row + (it.qs[0] - mpx + t) * it.col_stride + dep);
                dep = (int)bp_gate_zero(__uint_as_float(e[t].v[0]));
            }
#else
#pragma unroll
            for (int t = 0; t < F + K - 1; ++t) e[t] = bp_load_u128(row + (it.qs[0] - mpx + t) * it.col_stride);
#endif
#pragma unroll
            for (int v = 0; v < F; ++v) {
                h[v] = e[v];
#pragma unroll
                for (int b = 1; b < K; ++b) h[v] = bp_vec_max_nan<T>(h[v], e[v + b]);
            }
            return;
        }
#pragma unroll
        for (int v = 0; v < F; ++v) {
            h[v] = bp_vec_neg_inf<T>();
            if (it.qs[v] < 0) continue;
#pragma unroll
            for (int b = 0; b < K; ++b) {
                const int col = it.qs[v] - mpx + b;
                if (col < 0 || col >= W) continue;
                h[v] = bp_vec_max_nan<T>(h[v], bp_load_u128(row + col * it.col_stride));
            }
        }
    }

    __device__ __forceinline__ void row(const bp_strip_item<T, F, int> &it, int s, bool follows,
                                        float (&m)[F][lanes]) {
        bp_strip4_slide(*this, it, hx, s, follows, mpy, H, bp_vec_neg_inf<T>());
#pragma unroll
        for (int v = 0; v < F; ++v) {
            bp_u128 best = hx[0][v];
#pragma unroll
            for (int a = 1; a < K; ++a) best = bp_vec_max_nan<T>(best, hx[a][v]);
            bp_vec_to_f32<T>(best, m[v]);
        }
    }
};

// The map of v4 in NCHW: a lane takes V = 8 (f16/bf16) or 4 (f32) consecutive output columns
// (bp_strip_run: groups from column 0, and a tail group), whose M = S·(V − 1) + F map columns
// need E = M + K − 1 input columns of a row, read as one packed span (bp_strip4_span,
// strip.cuh: the CB-byte chunks that hold them, 16 or 8 bytes, all issued before any use, −inf
// for the chunks outside the row, which is the max's padding, shifted into place).
// The maxima stay packed (two halves or one float per 32-bit word, max.NaN). Map columns
// outside the map (the blur's padding) are filled in by the walk (bp_strip4_pad_columns).
template <typename T, int K, int F, int S, int CB = 16>
struct bp_strip4_nchw_max_map {
    static constexpr int lanes = bp_vec_elems<T>; // output columns per lane
    static constexpr bool wide = true;
    static constexpr int M = S * (lanes - 1) + F; // map columns
    static constexpr int E = M + K - 1;           // input columns
    using span = bp_strip4_span<T, E, CB>;        // a row's input columns, packed
    static constexpr int PER = span::PER;         // elements per 32-bit word
    static constexpr int MW = (M + PER - 1) / PER; // words of M map columns
    static constexpr int D = S * lanes * (int)sizeof(T) / CB; // a group's own chunks
    // The spans from the neighbouring lanes for the 2×2 and 3×3 max alike, at 20 warps per SM
    // (96 registers: under the 24-warp caps, 80, the 2×2 max spilled 34–86 bytes with them;
    // notes/kernels.md, tenth and twelfth rounds). BlurPool's spans (D + 1 chunks) never share.
    static constexpr bool SHARE = K >= 2;
    const BpParams &p;
    int mpy, mpx, H, W;
    unsigned near = 0;  // the item's neighbouring lanes (bp_strip4_near)
    unsigned hx[K][MW]; // horizontal maxima of the last K input rows at the M map columns

    __device__ __forceinline__ bp_strip4_nchw_max_map(const BpParams &p_)
        : p(p_), mpy(K > 1 ? p_.mpy : 0), mpx(K > 1 ? p_.mpx : 0), H((int)p_.h), W((int)p_.w), hx{} {}

    __device__ __forceinline__ void begin(const bp_strip_item<T, F, int> &it, int) {
        near = bp_strip4_near<T, S, lanes, CB>(p, it.q0);
    }

    // Input row yy's span (bp_strip4_span::load_near: the outer chunks from the neighbouring
    // lanes where they can), reduced by the max across.
    __device__ __forceinline__ void hmax(const bp_strip_item<T, F, int> &it, int yy, unsigned (&h)[MW]) const {
        unsigned x[span::EW];
        if constexpr (SHARE) {
            span::template load_near<D, (F - 1) / 2 + (K - 1) / 2>(it.plane + yy * it.row_stride, it.q0 - mpx, W, bp_word_neg_inf<T>(), near, x);
        } else {
            span::load(it.plane + yy * it.row_stride, it.q0 - mpx, W, bp_word_neg_inf<T>(), x);
        }
#pragma unroll
        for (int i = 0; i < MW; ++i) {
            unsigned best = span::at(x, i, 0);
#pragma unroll
            for (int b = 1; b < K; ++b) best = bp_word_max_nan<T>(best, span::at(x, i, b));
            h[i] = best;
        }
    }

    __device__ __forceinline__ void row(const bp_strip_item<T, F, int> &it, int s, bool follows,
                                        float (&m)[F][lanes]) {
        bp_strip4_slide(*this, it, hx, s, follows, mpy, H, bp_word_neg_inf<T>());
        unsigned best[MW];
#pragma unroll
        for (int i = 0; i < MW; ++i) {
            best[i] = hx[0][i];
#pragma unroll
            for (int a = 1; a < K; ++a) best[i] = bp_word_max_nan<T>(best[i], hx[a][i]);
        }
        // m[v][k]: map column S·k + v of the lane's first.
#pragma unroll
        for (int v = 0; v < F; ++v)
#pragma unroll
            for (int k = 0; k < lanes; ++k) {
                const int e = S * k + v;
                if constexpr (PER == 1) {
                    m[v][k] = __uint_as_float(best[e]);
                } else {
                    m[v][k] = bp_to_f32(T{(unsigned short)(best[e / 2] >> (16 * (e % 2)))});
                }
            }
    }
};

// The v4 walk over channel vectors (NHWC) or column groups in 16- or 8-byte row chunks (NCHW)
// where bp_strip4_fits says so, else the v2 walk of the same geometry.
template <typename T, typename L, int K, int F, int S>
__device__ __forceinline__ void bp_strip4_pool_run(const BpParams &p, const T *__restrict__ x, T *__restrict__ y) {
    const int cb = bp_strip4_fits<T, L, F, S>(p, x, y, K > 1 ? p.mpx : 0);
    using v2 = bp_strip_max_map<T, K, F, bp_strip_lanes<T, L>>;
    using nchw16 = bp_strip4_nchw_max_map<T, K, F, S, 16>;
    using nchw8 = bp_strip4_nchw_max_map<T, K, F, S, 8>;
    // Each walk on its mark's line: the performance model counts a walk no lane took as never
    // run (its copies share their source lines with the walks that ran).
    if constexpr (L::channels_last) {
        if (cb == 16) {
            bp_mark(); bp_strip_run<T, L, F, S>(p, x, y, bp_strip4_max_map<T, K, F>(p));
        } else {
            bp_mark(); bp_strip_run<T, L, F, S>(p, x, y, v2(p));
        }
    } else {
        if (cb == 16) {
            bp_mark(); bp_strip_run<T, L, F, S>(p, x, y, nchw16(p));
        } else if (cb == 8) {
            bp_mark(); bp_strip_run<T, L, F, S>(p, x, y, nchw8(p));
        } else {
            bp_mark(); bp_strip_run<T, L, F, S>(p, x, y, v2(p));
        }
    }
}

// Entry points NAME_<dtype>_<layout> of one v4 specialisation at blocks of THREADS: the v4 walk
// where bp_strip4_fits, else (unaligned buffers) the v2 walk of the same geometry. Registers
// capped, in warps per SM, as far as ptxas fits them without spilling on sm_80–90 (measured on
// this code, since the walk's partial sums): 24 warps (80 registers) for BlurPool2d in both
// layouts; MaxBlurPool, whose NCHW spans come from the neighbouring lanes (load_near: the 3×3
// max spilled up to 100 bytes at 80, the 2×2 max 34–86), runs 20 warps in NCHW (96 registers:
// blocks of 128, so that 20 warps are whole blocks); 16 warps (128) in NHWC, whose ring of
// packed maxima (92–122) does not fit 80.
#define BP_STRIP4_VARIANT(NAME, K, F, S, THREADS)                                                         \
    template <typename T, typename L>                                                                     \
    __device__ __forceinline__ void NAME##_impl(const BpParams p, const T *__restrict__ x, const T *, const T *, \
                                                T *__restrict__ y) {                                      \
        bp_strip4_pool_run<T, L, K, F, S>(p, x, y);                                                       \
    }                                                                                                     \
    BP_INSTANTIATE_BOUNDED_WARPS(NAME, THREADS, (K) == 1 ? 24 : 20, (K) == 1 ? 24 : 20, (K) == 1 ? 24 : 16, (K) == 1 ? 24 : 16)

BP_STRIP4_VARIANT(bp_maxblurpool_k2f4s2_v4, 2, 4, 2, 128)
BP_STRIP4_VARIANT(bp_maxblurpool_k3f3s2_v4, 3, 3, 2, 128)
BP_STRIP4_VARIANT(bp_maxblurpool_k2f3s2_v4, 2, 3, 2, 128)
BP_STRIP4_VARIANT(bp_blurpool_f3s2_v4, 1, 3, 2, 256)
BP_STRIP4_VARIANT(bp_blurpool_f4s2_v4, 1, 4, 2, 256)

// antialiased-cnns (MaxPool2d(2, 1) + BlurPool filt 4), timm aa (3×3 max + filt 3), kornia and
// composer (2×2 max + filt 3); BlurPool2d with filters 3 (timm) and 4 (antialiased-cnns).
BP_STRIP_VARIANT(bp_maxblurpool_k2f4s2, 2, 4, 2)
BP_STRIP_VARIANT(bp_maxblurpool_k3f3s2, 3, 3, 2)
BP_STRIP_VARIANT(bp_maxblurpool_k2f3s2, 2, 3, 2)
BP_STRIP_VARIANT(bp_blurpool_f3s2, 1, 3, 2)
BP_STRIP_VARIANT(bp_blurpool_f4s2, 1, 4, 2)
