// Strip kernels (v2) for the pooling family: MaxBlurPool2d and BlurPool2d with the window,
// filter and stride fixed at compile time (the presets' common cases), beside the general v1
// kernels in pool.cu that serve every other configuration.
//
// Why: v1 recomputes every tap's window max per output, F² × k² loads and compares each (81
// for timm's 3×3 max + 3-tap blur). Here one thread owns one output column (NCHW) or one
// column of V channels (NHWC) over BP_STRIP_ROWS output rows and walks down the map once, so
// every value it needs is produced once and kept in registers:
//   - per input row: the horizontal max over k columns for each of the F map columns it blurs
//     (hx), loaded as one contiguous span of F + k − 1 pixels away from the edges;
//   - per map row: the vertical max over the last k input rows (a register ring, shifted by
//     one row per map row), then the horizontal blur (row);
//   - per output row: the vertical blur over the last F blurred rows (ring), shifted by s rows.
// Separable max is exact (the same element wins as in PyTorch's row-major scan: the first
// maximum, the last NaN), so only the blur's f32 summation order differs from v1. The blur's
// padding is resolved per map row and per map column with bp_source_index, so reflect,
// replicate and zero padding of any size take the same path as in v1; no shared memory and
// no barriers are needed. NHWC threads take V = 2 channels of f16/bf16 at once (one 4-byte
// load per pixel when C is even and the buffers are 4-byte aligned).
#include "common.cuh"

// Output rows per thread. Mirrored by STRIP_ROWS in src/cuda/mod.rs (it only sizes the grid).
#define BP_STRIP_ROWS 8

__device__ __forceinline__ int bp_min_int(int a, int b) { return a < b ? a : b; }

// PyTorch's max_pool2d step: `v > best || isnan(v)`.
__device__ __forceinline__ float bp_max_step(float best, float v) { return (v > best || v != v) ? v : best; }

// V consecutive channels at `at` as f32; lanes at or past `valid` read as 0 (never stored).
template <typename T, int V>
__device__ __forceinline__ void bp_load_channels(const T *__restrict__ at, int valid, bool pairs, float (&out)[V]) {
    if constexpr (V == 2) {
        if (pairs) {
            const unsigned int w = bp_load_u32(at);
            out[0] = bp_to_f32(T{(unsigned short)(w & 0xffffu)});
            out[1] = bp_to_f32(T{(unsigned short)(w >> 16)});
            return;
        }
    }
#pragma unroll
    for (int k = 0; k < V; ++k) out[k] = k < valid ? bp_to_f32(at[k]) : 0.f;
}

template <typename T, int V>
__device__ __forceinline__ void bp_store_channels(T *__restrict__ at, int valid, bool pairs, const float (&v)[V]) {
    if constexpr (V == 2) {
        if (pairs) {
            const unsigned int lo = bp_from_f32<T>(v[0]).bits, hi = bp_from_f32<T>(v[1]).bits;
            bp_store_u32(at, lo | (hi << 16));
            return;
        }
    }
#pragma unroll
    for (int k = 0; k < V; ++k)
        if (k < valid) at[k] = bp_from_f32<T>(v[k]);
}

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
#pragma unroll
        for (int t = 0; t < F + K - 1; ++t)
            bp_load_channels<T, V>(row + (long long)(qs[0] - mpx + t) * col_stride, valid, pairs, e[t]);
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

// Moves a register ring of R input rows up by one (row 0, the oldest, drops out) so that the
// caller can load the next row into row R − 1.
template <int R, int E, int V>
__device__ __forceinline__ void bp_ring_advance(float (&ring)[R][E][V]) {
#pragma unroll
    for (int a = 0; a + 1 < R; ++a)
#pragma unroll
        for (int e = 0; e < E; ++e)
#pragma unroll
            for (int k = 0; k < V; ++k) ring[a][e][k] = ring[a + 1][e][k];
}

// Channels per thread: NHWC half types take two (one 4-byte word), everything else one.
template <typename T, typename L>
constexpr int bp_strip_lanes = (L::channels_last && sizeof(T) == 2) ? 2 : 1;

// What a map policy needs to know about the work item: where the (n, c0) plane starts, its
// strides, the thread's output column and the F map columns it blurs (resolved through the
// blur's padding: −1 for a zero-padded column).
template <typename T, int F>
struct bp_strip_item {
    const T *__restrict__ plane;
    long long row_stride, col_stride;
    long long c0;
    int valid; // channels of the group that exist (≤ V)
    bool pairs;
    int q0;    // padded map column of tap 0
    int qs[F];
};

// The map of MaxBlurPool2d (K ≥ 2: K×K max at stride 1) or of BlurPool2d (K = 1: the input):
// hx holds the horizontal maxima of the last K input rows at the F columns.
template <typename T, int K, int F, int V>
struct bp_strip_max_map {
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

// The map of depthwise ConvBlurPool2d (groups = Cin = Cout, a KC×KC kernel at stride 1, any zero
// padding, bias and activation). A map row is Σ_a Σ_b w[a][b]·x[s − cpy + a][q − cpx + b] +
// bias, so away from the side edges the thread keeps the last KC input rows' span of
// F + KC − 1 pixels in registers (xr, slid like hx) and loads each input pixel once; columns
// whose taps reach past the row's ends (or into the blur's column padding) read taps directly.
template <typename T, int KC, int F, int V>
struct bp_strip_dwconv_map {
    static constexpr int E = F + KC - 1;
    const T *__restrict__ w;
    const T *__restrict__ b;
    int cpy, cpx, H, W, act, has_bias;
    bool fast;
    float wk[KC][KC][V], bias[V];
    float xr[KC][E][V]; // fast path: input rows s − cpy .. s − cpy + KC − 1 (0 outside)

    __device__ __forceinline__ bp_strip_dwconv_map(const BpParams &p, const T *__restrict__ w_,
                                                   const T *__restrict__ b_)
        : w(w_), b(b_), cpy(p.cpy), cpx(p.cpx), H((int)p.h), W((int)p.w), act(p.act), has_bias(p.has_bias),
          fast(false), wk{}, bias{}, xr{} {}

    // This channel group's taps and bias (weights are Cout×1×KC×KC; lanes past `valid` get
    // zeros and are never stored).
    __device__ __forceinline__ void begin(const bp_strip_item<T, F> &it, int WM) {
        fast = it.q0 >= 0 && it.q0 + F - 1 < WM && it.q0 - cpx >= 0 && it.q0 - cpx + E - 1 < W;
#pragma unroll
        for (int k = 0; k < V; ++k) {
            const bool live = k < it.valid;
            bias[k] = (live && has_bias) ? bp_to_f32(b[it.c0 + k]) : 0.f;
#pragma unroll
            for (int a = 0; a < KC; ++a)
#pragma unroll
                for (int t = 0; t < KC; ++t)
                    wk[a][t][k] = live ? bp_to_f32(w[((it.c0 + k) * KC + a) * KC + t]) : 0.f;
        }
    }

    __device__ __forceinline__ void row(const bp_strip_item<T, F> &it, int s, bool follows, float (&m)[F][V]) {
        float z[F][V];
#pragma unroll
        for (int v = 0; v < F; ++v)
#pragma unroll
            for (int k = 0; k < V; ++k) z[v][k] = bias[k];
        if (fast) {
            const int y_last = s - cpy + KC - 1;
            for (int yy = follows ? y_last : s - cpy; yy <= y_last; ++yy) {
                bp_ring_advance(xr);
                const bool inside = yy >= 0 && yy < H;
                const T *__restrict__ rowp = it.plane + (long long)(inside ? yy : 0) * it.row_stride;
#pragma unroll
                for (int e = 0; e < E; ++e) {
                    float px[V];
                    bp_load_channels<T, V>(rowp + (long long)(it.q0 - cpx + e) * it.col_stride, it.valid, it.pairs,
                                           px);
#pragma unroll
                    for (int k = 0; k < V; ++k) xr[KC - 1][e][k] = inside ? px[k] : 0.f;
                }
            }
#pragma unroll
            for (int a = 0; a < KC; ++a)
#pragma unroll
                for (int v = 0; v < F; ++v)
#pragma unroll
                    for (int t = 0; t < KC; ++t)
#pragma unroll
                        for (int k = 0; k < V; ++k) z[v][k] += wk[a][t][k] * xr[a][v + t][k];
        } else {
#pragma unroll
            for (int a = 0; a < KC; ++a) {
                const int yy = s - cpy + a;
                if (yy < 0 || yy >= H) continue;
                const T *__restrict__ rowp = it.plane + (long long)yy * it.row_stride;
#pragma unroll
                for (int v = 0; v < F; ++v) {
                    if (it.qs[v] < 0) continue;
#pragma unroll
                    for (int t = 0; t < KC; ++t) {
                        const int col = it.qs[v] - cpx + t;
                        if (col < 0 || col >= W) continue;
                        float px[V];
                        bp_load_channels<T, V>(rowp + (long long)col * it.col_stride, it.valid, it.pairs, px);
#pragma unroll
                        for (int k = 0; k < V; ++k) z[v][k] += wk[a][t][k] * px[k];
                    }
                }
            }
        }
#pragma unroll
        for (int v = 0; v < F; ++v)
#pragma unroll
            for (int k = 0; k < V; ++k) m[v][k] = bp_activate(z[v][k], act);
    }
};

// The strip walk shared by every map: item split, blur-padding resolution, the ring of blurred
// map rows and the stores. `map` produces map rows at the thread's F columns; F×F filter at
// stride S in both directions, taps and padding from the parameter block as in v1.
template <typename T, typename L, int F, int S, typename Map>
__device__ __forceinline__ void bp_strip_run(const BpParams &p, const T *__restrict__ x, T *__restrict__ y, Map map) {
    constexpr int V = bp_strip_lanes<T, L>;
    const int H = (int)p.h, W = (int)p.w, HM = (int)p.hm, WM = (int)p.wm, HO = (int)p.ho, WO = (int)p.wo;
    const long long C = p.c;
    const long long strips = (HO + BP_STRIP_ROWS - 1) / BP_STRIP_ROWS;
    const long long groups = L::channels_last ? (C + V - 1) / V : C;
    const long long items = p.n * groups * strips * WO;
    if (items == 0) return;
    const double rcp_strips = 1.0 / (double)strips, rcp_groups = 1.0 / (double)groups;
    bp_strip_item<T, F> it;
    it.col_stride = L::col_stride(C);
    it.row_stride = (long long)W * it.col_stride;
    it.pairs = V == 2 && C % 2 == 0 && (reinterpret_cast<unsigned long long>(x) & 3) == 0 &&
               (reinterpret_cast<unsigned long long>(y) & 3) == 0;

    BP_GRID_STRIDE_LOOP(idx, items) {
        long long n, c0, rest, strip, jl;
        if (L::channels_last) { // lanes along channel groups
            long long g;
            bp_divmod(idx, groups, rcp_groups, rest, g);
            c0 = g * V;
            bp_divmod(rest, WO, p.rcp_wo, rest, jl);
            bp_divmod(rest, strips, rcp_strips, n, strip);
        } else { // lanes along output columns
            bp_divmod(idx, WO, p.rcp_wo, rest, jl);
            bp_divmod(rest, strips, rcp_strips, rest, strip);
            bp_divmod(rest, C, p.rcp_c, n, c0);
        }
        const int j = (int)jl;
        it.c0 = c0;
        it.valid = L::channels_last ? (int)(C - c0 < V ? C - c0 : V) : 1;
        it.plane = x + L::offset(n, c0, 0, 0, C, H, W);
        it.q0 = j * S - p.pad_left;
#pragma unroll
        for (int v = 0; v < F; ++v) it.qs[v] = (int)bp_source_index(it.q0 + v, WM, p.mode);
        map.begin(it, WM);

        // Zero-initialised only so that no path reads an indeterminate value: every entry is
        // written before it reaches an output.
        float mrow[F][V] = {}; // the map row last_s at the F columns
        float ring[F][V] = {}; // blurred map rows R − F + 1 .. R (padded coordinates)
        int last_s = -2;       // no map row yet (−1 is the zero-padding marker)
        const int i_begin = (int)strip * BP_STRIP_ROWS;
        const int i_end = bp_min_int(HO, i_begin + BP_STRIP_ROWS);
        int r_next = i_begin * S - p.pad_top;
        for (int i = i_begin; i < i_end; ++i) {
            for (const int r_last = i * S - p.pad_top + F - 1; r_next <= r_last; ++r_next) {
                float row[V];
                const int s = (int)bp_source_index(r_next, HM, p.mode);
                if (s < 0) {
#pragma unroll
                    for (int k = 0; k < V; ++k) row[k] = 0.f;
                } else {
                    if (s != last_s) {
                        map.row(it, s, s == last_s + 1, mrow);
                        last_s = s;
                    }
#pragma unroll
                    for (int k = 0; k < V; ++k) {
                        float acc = 0.f;
#pragma unroll
                        for (int v = 0; v < F; ++v)
                            if (it.qs[v] >= 0) acc += p.tx[v] * mrow[v][k];
                        row[k] = acc;
                    }
                }
#pragma unroll
                for (int u = 0; u + 1 < F; ++u)
#pragma unroll
                    for (int k = 0; k < V; ++k) ring[u][k] = ring[u + 1][k];
#pragma unroll
                for (int k = 0; k < V; ++k) ring[F - 1][k] = row[k];
            }
            // ring[u] now holds padded map row i·S − pad_top + u.
            float out[V];
#pragma unroll
            for (int k = 0; k < V; ++k) {
                float acc = 0.f;
#pragma unroll
                for (int u = 0; u < F; ++u) acc += p.ty[u] * ring[u][k];
                out[k] = acc;
            }
            bp_store_channels<T, V>(y + L::offset(n, c0, i, j, C, HO, WO), it.valid, it.pairs, out);
        }
    }
}

// Entry points NAME_<dtype>_<layout> for one (window, filter, stride) specialisation; the
// host picks them in src/cuda (StripShape) when an operator matches exactly.
#define BP_STRIP_VARIANT(NAME, K, F, S)                                                                   \
    template <typename T, typename L>                                                                     \
    __device__ __forceinline__ void NAME##_impl(const BpParams p, const T *__restrict__ x, const T *, const T *, \
                                                T *__restrict__ y) {                                      \
        bp_strip_run<T, L, F, S>(p, x, y, bp_strip_max_map<T, K, F, bp_strip_lanes<T, L>>(p));              \
    }                                                                                                     \
    BP_INSTANTIATE(NAME)

// antialiased-cnns (MaxPool2d(2, 1) + BlurPool filt 4), timm aa (3×3 max + filt 3), kornia and
// composer (2×2 max + filt 3); BlurPool2d with filters 3 (timm) and 4 (antialiased-cnns).
BP_STRIP_VARIANT(bp_maxblurpool_k2f4s2, 2, 4, 2)
BP_STRIP_VARIANT(bp_maxblurpool_k3f3s2, 3, 3, 2)
BP_STRIP_VARIANT(bp_maxblurpool_k2f3s2, 2, 3, 2)
BP_STRIP_VARIANT(bp_blurpool_f3s2, 1, 3, 2)
BP_STRIP_VARIANT(bp_blurpool_f4s2, 1, 4, 2)

#define BP_STRIP_DW_VARIANT(NAME, KC, F, S)                                                              \
    template <typename T, typename L>                                                                    \
    __device__ __forceinline__ void NAME##_impl(const BpParams p, const T *__restrict__ x,               \
                                                const T *__restrict__ w, const T *__restrict__ b,        \
                                                T *__restrict__ y) {                                     \
        bp_strip_run<T, L, F, S>(p, x, y, bp_strip_dwconv_map<T, KC, F, bp_strip_lanes<T, L>>(p, w, b));   \
    }                                                                                                    \
    BP_INSTANTIATE(NAME)

// Depthwise 3×3 conv (MobileNet-style blocks; antialiased-cnns' and timm's ConvBlurPool order)
// with filters 3 and 4 at stride 2.
BP_STRIP_DW_VARIANT(bp_convblurpool_dw3f3s2, 3, 3, 2)
BP_STRIP_DW_VARIANT(bp_convblurpool_dw3f4s2, 3, 4, 2)
