// The strip walk (v2) shared by the strip kernels of pool_forward.cu (MaxBlurPool2d, BlurPool2d)
// and conv_forward.cu (depthwise ConvBlurPool2d): window, filter and stride fixed at compile
// time (the presets' common cases), beside the general v1 kernels that serve every other
// configuration. A map policy (max map, depthwise conv map; in their family's file) produces
// map rows; this walk blurs and subsamples them.
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
#pragma once
#include "common.cuh"

// Output rows per thread. Mirrored by STRIP_ROWS in src/cuda/plan.rs (it only sizes the grid).
#define BP_STRIP_ROWS 8

__device__ __forceinline__ int bp_min_int(int a, int b) { return a < b ? a : b; }

#if BP_GATE_VARIANT == 1
// 0 or 1 from a loaded value, through a compare neither nvcc nor ptxas can fold (an `and` with
// 0 they fold away): the serialised variant of the gates, whose SASS is read, never run.
// The emulator's trace of the variant takes 0 (its addresses stay the library's).
__device__ __forceinline__ long long bp_gate_zero(float v) {
#ifdef BP_HOST_EMULATION
    (void)v;
    return 0;
#else
    return (__float_as_uint(v) >> 16) == 0xffffu ? 1 : 0; // a NaN pattern every dtype can hold
#endif
}
#endif

// V consecutive channels at `at` as f32; lanes at or past `valid` read as 0 (never stored).
template <typename T, int V>
__device__ __forceinline__ void bp_load_channels(const T *__restrict__ at, int valid, bool pairs,
                                                 float (&out)[V] BP_SITE) {
    if constexpr (V == 2) {
        if (pairs) {
            const unsigned int w = bp_load_u32(at BP_SITE_FWD);
            out[0] = bp_to_f32(T{(unsigned short)(w & 0xffffu)});
            out[1] = bp_to_f32(T{(unsigned short)(w >> 16)});
            return;
        }
    }
#pragma unroll
    for (int k = 0; k < V; ++k) out[k] = k < valid ? bp_to_f32(bp_ld(at + k BP_SITE_FWD)) : 0.f;
}

template <typename T, int V>
__device__ __forceinline__ void bp_store_channels(T *__restrict__ at, int valid, bool pairs,
                                                  const float (&v)[V] BP_SITE) {
    if constexpr (V == 2) {
        if (pairs) {
            const unsigned int lo = bp_from_f32<T>(v[0]).bits, hi = bp_from_f32<T>(v[1]).bits;
            bp_store_u32(at, lo | (hi << 16) BP_SITE_FWD);
            return;
        }
    }
#pragma unroll
    for (int k = 0; k < V; ++k)
        if (k < valid) bp_st(at + k, bp_from_f32<T>(v[k]) BP_SITE_FWD);
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
template <typename T, int F, typename O = long long>
struct bp_strip_item {
    const T *__restrict__ plane;
    O row_stride, col_stride; // O: int in the v4 walk (one image's H·W·C < 2^31), else long long
    long long c0;
    int valid; // channels of the group that exist (≤ V)
    bool pairs;
    int q0;    // padded map column of tap 0
    int qs[F];
};

// The strip walk shared by every map: item split, blur-padding resolution, the ring of blurred
// map rows and the stores. `map` produces map rows at the thread's F columns; F×F filter at
// stride S in both directions, taps and padding from the parameter block as in v1.
template <bool B, typename A, typename C> struct bp_pick { using type = A; };
template <typename A, typename C> struct bp_pick<false, A, C> { using type = C; };

// ---- NCHW v4: the edges of a row on the vector path -------------------------------------
// An NCHW v4 lane holds map row s at M = S·(V − 1) + F consecutive map columns q0 … q0 + M − 1
// as m[v][k] = column q0 + S·k + v (entry e = S·k + v; entries with two names, v ≥ S, hold the
// same column). At a row's ends some of those columns lie outside the map, in the blur's
// padding; their values come from columns inside it, which the lane holds too (reflect reaches
// 2·pad entries in).

// The most padding columns on either side an NCHW v4 lane fills in: 3, the presets' 1 or 2 with
// room (antialiased-cnns' filter 4 pads 1 and 2; timm's, kornia's and composer's filter 3 pad
// 1). Each side is a launch-uniform switch over 1 … 3, below; wider pads take v2 (the plan and
// bp_strip4_fits), which keeps those switches, and the code the performance model counts as
// if every case ran, small.
#define BP_STRIP4_MAX_PAD 3

// Entry e of the lane's map columns (one of its names).
template <int F, int S, int V>
__device__ __forceinline__ float bp_strip4_entry(const float (&m)[F][V], int e) {
    const int k = e / S < V - 1 ? e / S : V - 1;
    return m[e - S * k][k];
}

// The first P entries are map columns −P … −1: reflect reads entry 2P − e, replicate entry P,
// zero padding is 0 (the walk adds every tap of a v4 lane). Indices are compile-time once
// unrolled; the sources are columns inside the map, never written here.
template <int F, int S, int V, int P>
__device__ __forceinline__ void bp_strip4_pad_left(float (&m)[F][V], int mode) {
#pragma unroll
    for (int k = 0; k < V; ++k)
#pragma unroll
        for (int v = 0; v < F; ++v) {
            const int e = S * k + v;
            if (e >= P) continue;
            const float reflect = bp_strip4_entry<F, S, V>(m, 2 * P - e);
            const float replicate = bp_strip4_entry<F, S, V>(m, P);
            m[v][k] = mode == BP_PAD_REFLECT ? reflect : (mode == BP_PAD_REPLICATE ? replicate : 0.f);
        }
}

// The last R entries are map columns WM … WM + R − 1 (entry M − R is column WM): reflect reads
// entry 2(M − R − 1) − e, replicate entry M − R − 1, zero padding is 0.
template <int F, int S, int V, int R>
__device__ __forceinline__ void bp_strip4_pad_right(float (&m)[F][V], int mode) {
    constexpr int M = S * (V - 1) + F, L = M - R;
#pragma unroll
    for (int k = 0; k < V; ++k)
#pragma unroll
        for (int v = 0; v < F; ++v) {
            const int e = S * k + v;
            if (e < L) continue;
            const float reflect = bp_strip4_entry<F, S, V>(m, 2 * (L - 1) - e);
            const float replicate = bp_strip4_entry<F, S, V>(m, L - 1);
            m[v][k] = mode == BP_PAD_REFLECT ? reflect : (mode == BP_PAD_REPLICATE ? replicate : 0.f);
        }
}

// The lane's columns left of the map (pad_l of them) and right of it (pad_r), each at most
// BP_STRIP4_MAX_PAD (bp_strip4_fits): a switch per side whose cases are the same in every
// row's first (last) group (bp_mark: the model counts the case taken).
template <int F, int S, int V, int M>
__device__ __forceinline__ void bp_strip4_pad_columns(float (&m)[F][V], int pad_l, int pad_r, int mode) {
    static_assert(M == S * (V - 1) + F && S <= F, "entries S·k + v, v < F, cover 0 … M − 1");
    static_assert(2 * BP_STRIP4_MAX_PAD <= M - 1, "the lane holds the reflection of its padding");
    switch (pad_l) {
    case 0: break;
    case 1: bp_mark(); bp_strip4_pad_left<F, S, V, 1>(m, mode); break;
    case 2: bp_mark(); bp_strip4_pad_left<F, S, V, 2>(m, mode); break;
    default: bp_mark(); bp_strip4_pad_left<F, S, V, 3>(m, mode); break;
    }
    switch (pad_r) {
    case 0: break;
    case 1: bp_mark(); bp_strip4_pad_right<F, S, V, 1>(m, mode); break;
    case 2: bp_mark(); bp_strip4_pad_right<F, S, V, 2>(m, mode); break;
    default: bp_mark(); bp_strip4_pad_right<F, S, V, 3>(m, mode); break;
    }
}

// Where an NCHW v4 item's outputs go: from lane k_first on (the tail group leaves the columns
// of the group before it to that group), in stores of `bytes` each (16: one vector; 8, 4 or 2
// where the row length or y's alignment do not allow 16; bp_strip4_store_columns).
struct bp_strip4_store {
    int k_first, bytes;
};

// An NCHW v4 lane's V outputs from lane st.k_first on, in stores of st.bytes (k_first is a
// multiple of the store's elements, and `at` of its width: bp_strip_run).
template <typename T, int V>
__device__ __forceinline__ void bp_strip4_store_columns(T *__restrict__ at, const float (&out)[V],
                                                        const bp_strip4_store &st) {
    const bp_u128 v = bp_vec_from_f32<T>(out);
    if (st.bytes == 16) {
        bp_store_u128(at, v);
    } else if (st.bytes == 8) {
#pragma unroll
        for (int h = 0; h < 2; ++h)
            if (h * V / 2 >= st.k_first) bp_store_u64(at + h * V / 2, bp_u64{{v.v[2 * h], v.v[2 * h + 1]}});
    } else if (sizeof(T) == 4 || st.bytes == 4) {
#pragma unroll
        for (int w = 0; w < 4; ++w)
            if (w * V / 4 >= st.k_first) bp_store_u32(at + w * V / 4, v.v[w]);
    } else {
#pragma unroll
        for (int k = 0; k < V; ++k)
            if (k >= st.k_first) bp_st(at + k, bp_from_f32<T>(out[k]));
    }
}

// One work item of the walk: output column j of channel group c0 (NCHW v4: columns j .. j + V − 1
// of channel c0) of image n, output rows strip·BP_STRIP_ROWS onwards. `map` produces map rows at
// the item's F columns (V lanes each); the blur's padding is resolved here (NCHW v4: the lanes'
// map columns outside the map are filled in by bp_strip4_pad_columns); NHWC v4 stores a
// 16-byte vector per output, NCHW v4 as `st` says, v2 element by element.
template <typename T, typename L, int F, int S, typename Map, typename It>
__device__ __forceinline__ void bp_strip_walk(const BpParams &p, const T *__restrict__ x, T *__restrict__ y, Map &map,
                                              It &it, long long n, long long c0, long long strip, int j,
                                              bp_strip4_store st = {0, 16}) {
    constexpr int V = Map::lanes;
    constexpr bool COLUMNS = Map::wide && !L::channels_last; // NCHW v4: lanes along output columns
    const int H = (int)p.h, W = (int)p.w, HM = (int)p.hm, WM = (int)p.wm, HO = (int)p.ho, WO = (int)p.wo;
    const long long C = p.c;
    it.c0 = c0;
    it.valid = L::channels_last ? (int)(C - c0 < V ? C - c0 : V) : 1;
    it.plane = x + L::offset(n, c0, 0, 0, C, H, W);
    it.q0 = j * S - p.pad_left;
    if constexpr (!COLUMNS) { // NCHW v4 lanes differ in their columns: bp_strip4_pad_columns
#pragma unroll
        for (int v = 0; v < F; ++v) it.qs[v] = (int)bp_source_index(it.q0 + v, WM, p.mode);
    }
    map.begin(it, WM);
    // NCHW v4: how many of the lanes' map columns lie left of the map (pad_l) and right of it
    // (pad_r); only a row's first and last items have any.
    int pad_l = 0, pad_r = 0;
    if constexpr (COLUMNS) {
        pad_l = it.q0 < 0 ? -it.q0 : 0;
        pad_r = it.q0 + Map::M > WM ? it.q0 + Map::M - WM : 0;
    }

    // Zero-initialised only so that no path reads an indeterminate value: every entry is
    // written before it reaches an output.
    float blurred[V] = {}; // map row last_s blurred across (a repeated row is not recomputed)
    // acc[d]: output row i + d's sum so far. A padded map row r is tap r − (i + d)·S + pad_top
    // of output rows i + d, d < P, so each row is added into the P sums it belongs to as it is
    // read, in row order (the order the ring of the last F rows this replaced added them in),
    // holding P rows of sums instead of F rows of map: 8 to 16 registers fewer.
    constexpr int P = (F + S - 1) / S;
    float acc[P][V] = {};
    int last_s = -2; // no map row yet (−1 is the zero-padding marker)
    const int i_begin = (int)strip * BP_STRIP_ROWS;
    const int i_end = bp_min_int(HO, i_begin + BP_STRIP_ROWS);
    int r_next = i_begin * S - p.pad_top;
    for (int i = i_begin; i < i_end; ++i) {
        const int r_first = i * S - p.pad_top; // output row i's first padded map row
        for (const int r_last = r_first + F - 1; r_next <= r_last; ++r_next) {
            float row[V];
            const int s = (int)bp_source_index(r_next, HM, p.mode);
            if (s < 0) {
#pragma unroll
                for (int k = 0; k < V; ++k) row[k] = 0.f;
            } else {
                if (s != last_s) {
                    float mrow[F][V]; // map row s at the F columns (of each lane)
                    map.row(it, s, s == last_s + 1, mrow);
                    last_s = s;
                    if constexpr (COLUMNS) {
                        if (pad_l | pad_r) bp_strip4_pad_columns<F, S, V, Map::M>(mrow, pad_l, pad_r, p.mode);
                    }
#pragma unroll
                    for (int k = 0; k < V; ++k) {
                        float a = 0.f;
#pragma unroll
                        for (int v = 0; v < F; ++v)
                            // NCHW v4: the lanes' columns differ, and the padding is in mrow
                            if (COLUMNS || it.qs[v] >= 0) a += p.tx[v] * mrow[v][k];
                        blurred[k] = a;
                    }
                }
#pragma unroll
                for (int k = 0; k < V; ++k) row[k] = blurred[k];
            }
#pragma unroll
            for (int d = 0; d < P; ++d) {
                const int u = r_next - r_first - d * S; // the row's tap in output row i + d
                if (u < 0 || u >= F) continue;          // (rows between windows where F < S)
                float t = p.ty[0];                      // p.ty[u], without indexing by a variable
#pragma unroll
                for (int v = 1; v < F; ++v) t = u == v ? p.ty[v] : t;
#pragma unroll
                for (int k = 0; k < V; ++k) acc[d][k] += t * row[k];
            }
        }
        // acc[0] now holds output row i whole; the others move up a row.
        float out[V];
#pragma unroll
        for (int k = 0; k < V; ++k) out[k] = acc[0][k];
#pragma unroll
        for (int d = 0; d + 1 < P; ++d)
#pragma unroll
            for (int k = 0; k < V; ++k) acc[d][k] = acc[d + 1][k];
#pragma unroll
        for (int k = 0; k < V; ++k) acc[P - 1][k] = 0.f;
        T *__restrict__ at = y + L::offset(n, c0, i, j, C, HO, WO);
        if constexpr (COLUMNS) {
            bp_strip4_store_columns<T, V>(at, out, st);
        } else if constexpr (Map::wide) {
            Map::store(at, out);
        } else {
            bp_store_channels<T, V>(at, it.valid, it.pairs, out);
        }
    }
}

// The map policy says how many lanes a thread takes (Map::lanes: channels in NHWC, output
// columns in NCHW v4) and whether they travel as vectors (Map::wide, the v4 walk: checked by
// the caller, bp_strip4_fits; Map::store writes a lane's outputs as one vector in NHWC).
template <typename T, typename L, int F, int S, typename Map>
__device__ __forceinline__ void bp_strip_run(const BpParams &p, const T *__restrict__ x, T *__restrict__ y, Map map) {
    constexpr int V = Map::lanes;
    constexpr bool WIDE = Map::wide;
    constexpr bool COLUMNS = WIDE && !L::channels_last; // NCHW v4: lanes along column groups
    using O = typename bp_pick<WIDE, int, long long>::type;
    const int W = (int)p.w, WO = (int)p.wo;
    const long long C = p.c;
    const long long strips = (p.ho + BP_STRIP_ROWS - 1) / BP_STRIP_ROWS;
    const long long groups = L::channels_last ? (C + V - 1) / V : C;
    // NCHW v4: every item is a group of V output columns, at j = 0, V, 2V, … and, where WO is
    // not a multiple of V, a tail group at WO − V (overlapping the group before it, whose
    // columns it leaves to it); bp_strip4_fits guarantees WO ≥ V. A group whose windows reach
    // past the row's ends reads the map's fill for the chunks outside the row
    // (bp_strip4_span::load) and gets its map columns outside the map from the blur's padding
    // (bp_strip4_pad_columns), so no column needs a walk of its own.
    const long long per_row = COLUMNS ? (WO + V - 1) / V : WO; // items per (image, group, strip)
    const long long rows = p.n * groups * strips;
    const long long items = rows * per_row;
    if (items == 0) return;
    const double rcp_strips = 1.0 / (double)strips, rcp_groups = 1.0 / (double)groups;
    const double rcp_per_row = 1.0 / (double)per_row;
    bp_strip_item<T, F, O> it;
    it.col_stride = (O)L::col_stride(C);
    it.row_stride = (O)W * it.col_stride;
    it.pairs = !WIDE && V == 2 && C % 2 == 0 && (reinterpret_cast<unsigned long long>(x) & 3) == 0 &&
               (reinterpret_cast<unsigned long long>(y) & 3) == 0;
    // NCHW v4 stores: the widest of 16, 8, 4 bytes that every row of y and y itself allow
    // (groups start at multiples of V, the tail's first stored column at a multiple of the
    // same width), else element by element.
    int store_bytes = (int)sizeof(T);
    if constexpr (COLUMNS) {
        const unsigned long long ya = reinterpret_cast<unsigned long long>(y);
        for (int b = 16; b > (int)sizeof(T); b /= 2)
            if (((long long)WO * (long long)sizeof(T)) % b == 0 && ya % b == 0) {
                store_bytes = b;
                break;
            }
    }

    BP_GRID_STRIDE_LOOP(idx, items) {
        long long n, c0, rest, strip, jl;
        if constexpr (COLUMNS) { // lanes along a row's groups, rows one after the other
            long long row;
            bp_divmod(idx, per_row, rcp_per_row, row, jl);
#if BP_GATE_VARIANT == 2
            // The performance gates' uncoalesced variant (model/, never in the library): lanes
            // along rows, so neighbouring lanes read rows BP_STRIP_ROWS · S apart.
            bp_divmod(idx, rows, 1.0 / (double)rows, jl, row);
#endif
            bp_divmod(row, strips, rcp_strips, rest, strip);
            bp_divmod(rest, C, p.rcp_c, n, c0);
            int j = (int)jl * V, k_first = 0;
            if (j + V > WO) { // the tail group
                k_first = j - (WO - V);
                j = WO - V;
            }
            bp_strip_walk<T, L, F, S>(p, x, y, map, it, n, c0, strip, j, bp_strip4_store{k_first, store_bytes});
        } else {
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
#if BP_GATE_VARIANT == 2
            // The performance gates' uncoalesced variant (model/, never in the library): lanes
            // along strips, so neighbouring lanes read rows BP_STRIP_ROWS · S apart.
            {
                long long g;
                bp_divmod(idx, strips, rcp_strips, rest, strip);
                bp_divmod(rest, WO, p.rcp_wo, rest, jl);
                bp_divmod(rest, groups, rcp_groups, n, g);
                c0 = L::channels_last ? g * V : g;
            }
#endif
            bp_strip_walk<T, L, F, S>(p, x, y, map, it, n, c0, strip, (int)jl);
        }
    }
}

// ---- v4: the walk over 16-byte channel vectors ----------------------------------------------

// Whether the v4 walk may take this launch, and with what: the bytes of the row chunks it reads
// (NCHW 16 or 8; NHWC 16), 0 for no (the v2 walk). NHWC: C a multiple of the vector's
// elements, x and y 16-byte aligned, and one image's H·W·C below 2^31 (the walk's offsets
// inside an image are int). NCHW: W a multiple of the chunk's elements (so every input row
// starts chunk-aligned and every chunk lies wholly inside or outside a row) and x aligned to
// the chunk: 16 bytes where W % 8 halves (4 floats) == 0, else 8 bytes where W % 4 (2) == 0;
// one plane's H·W below 2^31, at least one group of V outputs a row (WO ≥ V), the blur's
// padding columns a lane must fill at most BP_STRIP4_MAX_PAD on each side (pad_left, and the
// last output's overhang past the map), and the map's own padding `pk` (max or conv) at most W;
// y may have any alignment (the stores narrow to what it allows). The host plans v4 only when
// the shape qualifies (src/cuda/plan.rs, the same rule); the pointers are checked here, once
// per launch, and a launch that fails takes a narrower chunk or the v2 walk instead (same
// results; see tests/emulated.rs).
template <typename T, typename L, int F, int S>
__device__ __forceinline__ int bp_strip4_fits(const BpParams &p, const void *x, const void *y, int pk) {
    const unsigned long long xa = reinterpret_cast<unsigned long long>(x);
    if (L::channels_last) {
        const unsigned long long bits = xa | reinterpret_cast<unsigned long long>(y);
        return p.c % bp_vec_elems<T> == 0 && (bits & 15) == 0 && p.h * p.w * p.c < (1LL << 31) ? 16 : 0;
    }
    constexpr int V = bp_vec_elems<T>, PM = BP_STRIP4_MAX_PAD;
    const long long overhang = S * (p.wo - 1) + F - p.pad_left - p.wm; // past the map's last column
    if (!(p.h * p.w < (1LL << 31) && p.wo >= V && p.pad_left <= PM && overhang <= PM && pk <= p.w)) return 0;
    if (p.w % V == 0 && (xa & 15) == 0) return 16;
    if (p.w % (V / 2) == 0 && (xa & 7) == 0) return 8;
    return 0;
}

// load_near's `near` for an NCHW v4 item whose padded map column of tap 0 is q0 (so output
// column j = (q0 + pad_left) / S): bit 0, the lane before holds the group whose own chunks
// hold this span's left outer chunk; bit 1, the lane after holds the one whose own chunks
// hold its right outer chunk (the walk's items run along a row's groups, lane after lane);
// bit 2, sharing at all (x spans at most 4 GiB, so the 32-bit address tags are unique).
// Groups j − V and j + V are the usual neighbours. A row's tail group (WO − V, where WO is
// not a multiple of V) overlaps the group before it; where it starts exactly one CB-byte chunk
// after it (S·(WO mod V) elements of CB bytes), its left outer chunk is that group's first own
// chunk and that group's right outer chunk is the tail's last own chunk, so those two share
// too: bit 3, send the first own chunk's words right (the group before the tail); bit 4, send
// the last own chunk's words left (the tail). Other tails expect no neighbour.
template <typename T, int S, int V, int CB = 16>
__device__ __forceinline__ unsigned bp_strip4_near(const BpParams &p, int q0) {
    const unsigned long long elems =
        (unsigned long long)p.n * (unsigned long long)p.c * (unsigned long long)p.h * (unsigned long long)p.w;
    if (elems > 0xffffffffull / sizeof(T)) return 0u; // x's bytes must fit 32 bits
    const int j = (q0 + p.pad_left) / S, WO = (int)p.wo;
    const unsigned lane = threadIdx.x % 32u;
    const bool group = j % V == 0; // not the tail group
    const bool pair = S * (WO % V) * (int)sizeof(T) == CB; // a tail one chunk after its group
    const bool tail = !group && pair;                       // a tail that shares
    const bool before = group && pair && j + 2 * V > WO;    // the group before it
    const bool left = lane > 0 && ((group && j >= V) || tail);
    const bool right = lane < 31 && ((group && j + 2 * V <= WO) || before);
    return 4u | (left ? 1u : 0u) | (right ? 2u : 0u) | (before ? 8u : 0u) | (tail ? 16u : 0u);
}

// The v4 maps' ring of K input rows' horizontal maxima (N elements of type E each, packed):
// map row s is the max over input rows s − mpy .. s − mpy + K − 1, so slide the ring by one row
// when s follows the last one, else refill it; rows outside the image are `pad` (−inf), the
// others come from map.hmax(it, yy, row).
template <int K, int N, typename E, typename Map, typename It>
__device__ __forceinline__ void bp_strip4_slide(const Map &map, const It &it, E (&hx)[K][N], int s, bool follows,
                                                int mpy, int H, E pad) {
    const int y_last = s - mpy + K - 1;
    for (int yy = follows ? y_last : s - mpy; yy <= y_last; ++yy) {
#pragma unroll
        for (int a = 0; a + 1 < K; ++a)
#pragma unroll
            for (int i = 0; i < N; ++i) hx[a][i] = hx[a + 1][i];
        if (yy < 0 || yy >= H) {
#pragma unroll
            for (int i = 0; i < N; ++i) hx[K - 1][i] = pad;
        } else {
            map.hmax(it, yy, hx[K - 1]);
        }
    }
}

// The v4 maps' output store: a lane's 16-byte vector of outputs.
template <typename T> struct bp_vec_store16 {
    static __device__ __forceinline__ void store(T *__restrict__ at, const float (&out)[bp_vec_elems<T>]) {
        bp_store_u128(at, bp_vec_from_f32<T>(out));
    }
};

// −inf in every element of a vector (the max's padding).
template <typename T> __device__ __forceinline__ bp_u128 bp_vec_neg_inf() {
    const unsigned w = bp_word_neg_inf<T>();
    return bp_u128{{w, w, w, w}};
}

// E consecutive elements of an NCHW row from element c0 onwards (c0 may be negative and the span
// may end past the row: elements outside the row read as the `fill` word's), packed into 32-bit
// words (two halves or one float each; the v4 NCHW maps). Read as the CB-byte chunks that hold
// them (CB = 16, or 8 where rows start only 8-byte aligned: NC at most, all issued before any
// use; the row starts CB-byte aligned and W is a multiple of the chunk's elements, so a chunk is
// wholly inside the row, loaded, or wholly outside, never loaded), then shifted into place: the
// span's start inside its first chunk, o = c0 mod CE, is the same for every group of a launch
// (c0 = S·V·g − pad_left − the map's padding; a row's tail group has its own), and
// bp_strip4_span::shift moves the words into place without a branch.
template <typename T, int E, int CB = 16>
struct bp_strip4_span {
    static_assert(CB == 16 || CB == 8, "16- or 8-byte chunks");
    static constexpr int CE = CB / (int)sizeof(T);     // elements per chunk
    static constexpr int CWD = CB / 4;                 // words per chunk
    static constexpr int PER = sizeof(T) == 4 ? 1 : 2; // elements per 32-bit word
    static constexpr int EW = (E + PER - 1) / PER + 1; // words of the shifted span (+1 slack)
    static constexpr int NC = (E + 2 * CE - 2) / CE;   // chunks a span starting anywhere spans
    static constexpr int CW = CWD * NC;                // their words

    // Element pair (or float) i of the span shifted by b elements: elements PER·i + b onwards.
    static __device__ __forceinline__ unsigned at(const unsigned (&x)[EW], int i, int b) {
        if (PER == 1) return x[i + b];
        const int e = 2 * i + b, w = e / 2;
        return e % 2 == 0 ? x[w] : (x[w] >> 16) | (x[w + 1] << 16);
    }

    // Element e of the span as f32.
    static __device__ __forceinline__ float elem(const unsigned (&x)[EW], int e) {
        if constexpr (PER == 1) {
            return __uint_as_float(x[e]);
        } else {
            return bp_to_f32(T{(unsigned short)(x[e / 2] >> (16 * (e % 2)))});
        }
    }

    // The chunk words cw shifted left by o elements into x (x[0] starts with element o), without
    // a branch: by 2 and by 1 words (a select each; 16-byte chunks only need the 2), then by half
    // a word (a funnel shift of 0 or 16 bits). The groups of a launch share o, but a row's tail
    // group has its own, and a switch over o (the first version) ran two cases in every warp
    // holding a tail, and made the performance model count all eight as run.
    static __device__ __forceinline__ void shift(const unsigned (&cw)[CW], int o, unsigned (&x)[EW]) {
        const int wq = o / PER; // whole words, 0 … CWD − 1
        const unsigned half = PER == 2 ? 16u * (unsigned)(o % 2) : 0u;
        unsigned t[EW + 2], u[EW + 1];
#pragma unroll
        for (int i = 0; i < EW + 2; ++i) {
            const unsigned by0 = i < CW ? cw[i] : 0u, by2 = i + 2 < CW ? cw[i + 2] : 0u;
            t[i] = (CWD > 2 && (wq & 2)) ? by2 : by0;
        }
#pragma unroll
        for (int i = 0; i < EW + 1; ++i) u[i] = (wq & 1) ? t[i + 1] : t[i];
#pragma unroll
        for (int i = 0; i < EW; ++i)
            x[i] = PER == 1 ? u[i] : (unsigned)(((unsigned long long)u[i + 1] << 32 | u[i]) >> half);
    }

    // Chunk k (CB bytes) at `at`, or `fill` where `load` is false.
    static __device__ __forceinline__ void chunk(const T *__restrict__ at, bool load, unsigned fill,
                                                 unsigned (&w)[CWD] BP_SITE) {
        if constexpr (CB == 16) {
            bp_u128 v = {{fill, fill, fill, fill}};
            if (load) v = bp_load_u128(at BP_SITE_FWD);
#pragma unroll
            for (int i = 0; i < 4; ++i) w[i] = v.v[i];
        } else {
            bp_u64 v = {{fill, fill}};
            if (load) v = bp_load_u64(at BP_SITE_FWD);
#pragma unroll
            for (int i = 0; i < 2; ++i) w[i] = v.v[i];
        }
    }

    // Elements c0 .. c0 + E − 1 of `row` (W elements) into x, `fill` outside the row.
    static __device__ __forceinline__ void load(const T *__restrict__ row, int c0, int W, unsigned fill,
                                                unsigned (&x)[EW]) {
        const int o = ((c0 % CE) + CE) % CE; // the same in every group
        const int first = (c0 - o) / CE;     // the first chunk (negative left of the row)
        const unsigned chunks = (unsigned)(W / CE);
        unsigned cw[CW];
#pragma unroll
        for (int k = 0; k < NC; ++k) {
            // Chunks past the span are not read, nor chunks outside the row.
            const bool inside = (unsigned)(first + k) < chunks;
            unsigned w[CWD];
#if BP_GATE_VARIANT == 1
            // The gates' serialised variant (model/, never in the library), as in bp_strip_hmax.
            const int dep = k > 0 ? (int)bp_gate_zero(__uint_as_float(cw[CWD * k - CWD])) : 0;
            chunk(row + (first + k) * CE + dep, k * CE < o + E && inside, fill, w);
#else
            chunk(row + (first + k) * CE, k * CE < o + E && inside, fill, w);
#endif
#pragma unroll
            for (int i = 0; i < CWD; ++i) cw[CWD * k + i] = w[i];
        }
        shift(cw, o, x);
    }

    // NSW words at `at` (4 or 8 bytes, aligned as such), or `fill` where `load` is false.
    template <int NSW>
    static __device__ __forceinline__ void words(const T *__restrict__ at, bool load, unsigned fill,
                                                 unsigned (&w)[NSW] BP_SITE) {
        static_assert(NSW == 1 || NSW == 2, "one or two words");
        if constexpr (NSW == 1) {
            w[0] = load ? bp_load_u32(at BP_SITE_FWD) : fill;
        } else {
            bp_u64 v = {{fill, fill}};
            if (load) v = bp_load_u64(at BP_SITE_FWD);
            w[0] = v.v[0];
            w[1] = v.v[1];
        }
    }

    // One side of load_near where a neighbour was expected (`expected`): the neighbour's words
    // where its tag matched (`ok`), else the repair load of the N words at `at`.
    template <int N>
    static __device__ __forceinline__ void take(bool expected, bool ok, const unsigned (&got)[N],
                                                const T *__restrict__ at, unsigned fill, unsigned (&w)[N]) {
        if (!expected) return;
        if (ok) {
#pragma unroll
            for (int i = 0; i < N; ++i) w[i] = got[i];
        } else {
            words<N>(at, true, fill, w); // the repair load
        }
    }

    // As load, but the span's outer chunks come from the neighbouring lanes where they can
    // (notes/kernels.md, tenth and eleventh rounds). A lane's own chunks are the D after its
    // first (its group's S·V input columns, at a chunk boundary when o > 0); the chunk before
    // them is the left lane's last own chunk, the chunk after them the right lane's first, when
    // those lanes hold the neighbouring groups of the same row (or, by bits 3 and 4 of `near`,
    // the left lane's first and the right lane's last, for a tail group one chunk after the
    // group before it: bp_strip4_near). Of those outer chunks the span needs only the last
    // words of the left one and the first of the right one: at most NL and NR words (1 or 2,
    // worked out for a left reach of LP elements, the presets' pads), else this is load.
    // `near` (bit 0 left, bit 1 right) says which side the lane expects a neighbour on; on the
    // other sides it loads just those words (4 or 8 bytes), issued with its own chunks. Then
    // each lane sends words of one own chunk to the left and of one to the right, each with a
    // tag: the byte address (low 32 bits) of that chunk, odd (matching nothing) where it lies
    // past the row. A lane takes a neighbour's words only where that lane is in the mask and
    // its tag is the address of the chunk the lane needs; otherwise it loads them after all
    // (the repair load). So any split of the warp gives the same span, with more loads.
    // The tags are unique only while x spans at most 4 GiB: bit 2 of `near` enables the
    // sharing (bp_strip4_near); without it, or at o = 0, this is load exactly.
    template <int D, int LP>
    static __device__ __forceinline__ void load_near(const T *__restrict__ row, int c0, int W, unsigned fill,
                                                     unsigned near, unsigned (&x)[EW]) {
        // The words a side the span needs where it reaches LP elements left of its own chunks
        // (the presets' pads: o = OT): NL of the left chunk, NR of the right one.
        constexpr int OT = (CE - LP % CE) % CE;
        constexpr int NL = CWD - OT / PER;
        constexpr int NR0 = (OT + E - (NC - 1) * CE + PER - 1) / PER;
        constexpr int NR = NR0 < 1 ? 1 : NR0;
        // Spans of at most D + 1 chunks (BlurPool's: one outer chunk, on one side or the other),
        // reaches that need more than two words a side, and 8-byte chunks are loaded as they
        // are: rows of 8-byte chunks (W % 8 == 4 halves, e.g. 28) are short, a request spans
        // few lines, and the model had them lose more to the shuffles than they saved (f16
        // MaxBlurPool 64×512×28×28 on the H200 45 → 37 % of copy).
        if constexpr (CB != 16 || NC != D + 2 || OT == 0 || NL > 2 || NR > 2) {
            load(row, c0, W, fill, x);
        } else {
            const int o = ((c0 % CE) + CE) % CE;
            // The words of the outer chunks this span needs: from o / PER on (left), and up to
            // its last element (right); other pads than the presets' may need more.
            const int need_l = CWD - o / PER;
            const int need_r = (o + E - (NC - 1) * CE + PER - 1) / PER;
            if (!(near & 4u) || o == 0 || need_l > NL || need_r > NR) {
                load(row, c0, W, fill, x);
                return;
            }
            const int first = (c0 - o) / CE;
            const unsigned chunks = (unsigned)(W / CE);
            const bool in_l = (unsigned)first < chunks;
            const bool in_r = (unsigned)(first + NC - 1) < chunks && need_r > 0;
            const T *__restrict__ at_l = row + first * CE + (CWD - NL) * PER; // the left words
            const T *__restrict__ at_r = row + (first + NC - 1) * CE;         // the right words
            unsigned cw[CW];
            unsigned from_l[NL], from_r[NR];
            // dep: 0, but for the gates' serialised variant (model/, never in the library), as in
            // load: each load's address then waits for the one before.
            int dep = 0;
            words<NL>(at_l, in_l && !(near & 1u), fill, from_l);
            bool own_last = false;
#pragma unroll
            for (int k = 1; k <= D; ++k) {
                const bool inside = (unsigned)(first + k) < chunks;
                if (k == D) own_last = inside;
#if BP_GATE_VARIANT == 1
                dep = (int)bp_gate_zero(__uint_as_float(k == 1 ? from_l[0] : cw[CWD * k - CWD]));
#endif
                unsigned w[CWD];
                chunk(row + (first + k) * CE + dep, inside, fill, w);
#pragma unroll
                for (int i = 0; i < CWD; ++i) cw[CWD * k + i] = w[i];
            }
#if BP_GATE_VARIANT == 1
            dep = (int)bp_gate_zero(__uint_as_float(cw[CWD * D]));
#endif
            words<NR>(at_r + dep, in_r && !(near & 2u), fill, from_r);
            const unsigned lane = threadIdx.x % 32u;
            // The own chunks' first and last addresses (the tags), odd where past the row.
            const unsigned own = (unsigned)reinterpret_cast<unsigned long long>(row + (first + 1) * CE);
            const unsigned own_end = own + (unsigned)((D - 1) * CB);
            const unsigned tag_first = (unsigned)(first + 1) < chunks ? own : own | 1u;
            const unsigned tag_last = own_last ? own_end : own_end | 1u;
            // What goes right: the last own chunk's last NL words, or the first's (bit 3, the
            // group before a sharing tail); left: the first own chunk's first NR words, or the
            // last's (bit 4, a sharing tail); each with the address of its chunk.
            const bool first_right = (near & 8u) != 0u, last_left = (near & 16u) != 0u;
            const unsigned m = bp_activemask();
            const unsigned tag_l = bp_shfl_up(m, first_right ? tag_first : tag_last); // from the left lane
            const unsigned tag_r = bp_shfl_down(m, last_left ? tag_last : tag_first); // from the right lane
            unsigned got_l[NL], got_r[NR];
#pragma unroll
            for (int i = 0; i < NL; ++i)
                got_l[i] = bp_shfl_up(m, first_right ? cw[2 * CWD - NL + i] : cw[CWD * (D + 1) - NL + i]);
#pragma unroll
            for (int i = 0; i < NR; ++i) got_r[i] = bp_shfl_down(m, last_left ? cw[CWD * D + i] : cw[CWD + i]);
            // The outer chunks this span needs are at own − CB (left) and own_end + CB (right).
            const bool ok_l = lane > 0 && (m >> (lane - 1) & 1u) && tag_l == own - (unsigned)CB;
            const bool ok_r = lane < 31 && (m >> (lane + 1) & 1u) && tag_r == own_end + (unsigned)CB;
            take<NL>(in_l && (near & 1u), ok_l, got_l, at_l, fill, from_l);
            take<NR>(in_r && (near & 2u), ok_r, got_r, at_r, fill, from_r);
            // The outer chunks: their needed words, `fill` for the rest (never read).
#pragma unroll
            for (int i = 0; i < CWD; ++i) {
                const int l = i - (CWD - NL);
                cw[i] = l >= 0 ? from_l[l >= 0 ? l : 0] : fill;
                cw[CWD * (NC - 1) + i] = i < NR ? from_r[i < NR ? i : 0] : fill;
            }
            shift(cw, o, x);
        }
    }
};
