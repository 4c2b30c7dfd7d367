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

// One work item of the walk: output column j of channel group c0 (NCHW v4: columns j .. j + V − 1
// of channel c0) of image n, output rows strip·BP_STRIP_ROWS onwards. `map` produces map rows at
// the item's F columns (V lanes each); the blur's padding is resolved here; `vec_store`: the V
// outputs go out as one 16-byte vector (v4), else element by element (v2's channel stores;
// NCHW v4: the lanes from k_first on, so that the tail group leaves the columns of the group
// before it to that group).
template <typename T, typename L, int F, int S, typename Map, typename It>
__device__ __forceinline__ void bp_strip_walk(const BpParams &p, const T *__restrict__ x, T *__restrict__ y, Map &map,
                                              It &it, long long n, long long c0, long long strip, int j,
                                              bool vec_store, int k_first = 0) {
    constexpr int V = Map::lanes;
    const int H = (int)p.h, W = (int)p.w, HM = (int)p.hm, WM = (int)p.wm, HO = (int)p.ho, WO = (int)p.wo;
    const long long C = p.c;
    it.c0 = c0;
    it.valid = L::channels_last ? (int)(C - c0 < V ? C - c0 : V) : 1;
    it.plane = x + L::offset(n, c0, 0, 0, C, H, W);
    it.q0 = j * S - p.pad_left;
#pragma unroll
    for (int v = 0; v < F; ++v) it.qs[v] = (int)bp_source_index(it.q0 + v, WM, p.mode);
    map.begin(it, WM);

    // Zero-initialised only so that no path reads an indeterminate value: every entry is
    // written before it reaches an output.
    float blurred[V] = {}; // map row last_s blurred across (a repeated row is not recomputed)
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
                    float mrow[F][V]; // map row s at the F columns (of each lane)
                    map.row(it, s, s == last_s + 1, mrow);
                    last_s = s;
#pragma unroll
                    for (int k = 0; k < V; ++k) {
                        float acc = 0.f;
#pragma unroll
                        for (int v = 0; v < F; ++v)
                            if (it.qs[v] >= 0) acc += p.tx[v] * mrow[v][k];
                        blurred[k] = acc;
                    }
                }
#pragma unroll
                for (int k = 0; k < V; ++k) row[k] = blurred[k];
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
        T *__restrict__ at = y + L::offset(n, c0, i, j, C, HO, WO);
        if constexpr (Map::wide) {
            if (vec_store) {
                Map::store(at, out);
            } else { // NCHW v4 with rows of WO % V != 0 elements, or the tail: outputs one by one
#pragma unroll
                for (int k = 0; k < V; ++k)
                    if (k >= k_first) bp_st(at + k, bp_from_f32<T>(out[k]));
            }
        } else {
            bp_store_channels<T, V>(at, it.valid, it.pairs, out);
        }
    }
}

// The map policy says how many lanes a thread takes (Map::lanes: channels in NHWC, output
// columns in NCHW v4) and whether they travel as vectors (Map::wide, the v4 walk: checked by
// the caller, bp_strip4_fits; Map::store writes a lane's outputs as one vector). NCHW v4 items are groups of Map::lanes output
// columns; a group the vector walk cannot take whole (Map::covers: near the side edges, or past
// the row's end) walks its columns one by one with the v2 map (Map::narrow).
template <typename T, typename L, int F, int S, typename Map>
__device__ __forceinline__ void bp_strip_run(const BpParams &p, const T *__restrict__ x, T *__restrict__ y, Map map) {
    constexpr int V = Map::lanes;
    constexpr bool WIDE = Map::wide;
    constexpr bool COLUMNS = WIDE && !L::channels_last; // NCHW v4: lanes along column groups
    using O = typename bp_pick<WIDE, int, long long>::type;
    const int W = (int)p.w, HO = (int)p.ho, WO = (int)p.wo;
    const long long C = p.c;
    const long long strips = (HO + BP_STRIP_ROWS - 1) / BP_STRIP_ROWS;
    const long long groups = L::channels_last ? (C + V - 1) / V : C;
    // NCHW v4: each row's output columns split into [0, j_left) (too near the left edge for a
    // vector: one column per thread, the v2 walk), G groups of V columns from j_left (the vector
    // walk), at most one tail group (TG) of V columns from j_tail, which overlaps the last group
    // and ends at the last column whose windows lie inside the row (the vector walk, storing
    // only its columns past the groups), and the rest, [j_edge, WO) (the right edge: one column
    // per thread again), so that edge columns cost one v2 column walk each, side by side with
    // the groups, not eight in a row, and only the columns whose windows leave the row take it.
    int j_left = 0, G = 0, j_tail = -1, j_edge = 0;
    if constexpr (COLUMNS) {
        j_left = map.first_column(p);
        G = map.groups_from(p, j_left);
        j_tail = map.tail_from(p, j_left, G);
        j_edge = j_tail >= 0 ? j_tail + V : j_left + G * V;
    }
    const int TG = j_tail >= 0 ? 1 : 0;
    // NCHW v4 items come in chunks of 32 rows (image, channel, strip): first the chunk's vector
    // items (G groups and TG tails per row, the tail last in its row), then its edge columns
    // (EC per row), so that a warp runs one walk (bar the last chunk's seams) — lanes of both
    // walks in one warp would run them one after the other — while a row's groups and edges
    // still run close together (in L2 and L1). The tail shares its row's warp: its loads fall
    // in the sectors its row's last group requests at the same time (a section of tails alone,
    // 32 rows a warp, touched 32 lines a request: modeled 5 points of copy slower at 56×56);
    // only its span's shift (bp_strip4_span::load) and its stores diverge from the groups'.
    const long long EC = COLUMNS ? (long long)j_left + ((long long)WO - j_edge) : 0; // edge columns per row
    const long long per_row = (long long)G + TG + EC;
    const long long rows = p.n * (COLUMNS ? C : groups) * strips;
    const long long chunk_items = 32 * per_row;
    const long long items = COLUMNS ? rows * per_row : rows * WO;
    if (items == 0) return;
    const double rcp_strips = 1.0 / (double)strips, rcp_groups = 1.0 / (double)groups;
    const double rcp_g = G + TG > 0 ? 1.0 / (double)(G + TG) : 0.0, rcp_e = EC > 0 ? 1.0 / (double)EC : 0.0;
    const double rcp_chunk = COLUMNS ? 1.0 / (double)chunk_items : 0.0;
    bp_strip_item<T, F, O> it;
    it.col_stride = (O)L::col_stride(C);
    it.row_stride = (O)W * it.col_stride;
    it.pairs = !WIDE && V == 2 && C % 2 == 0 && (reinterpret_cast<unsigned long long>(x) & 3) == 0 &&
               (reinterpret_cast<unsigned long long>(y) & 3) == 0;
    // NCHW v4 stores 16-byte vectors when every group of y starts 16-byte aligned.
    const bool vec_store =
        !COLUMNS || (WO % V == 0 && j_left % V == 0 && (reinterpret_cast<unsigned long long>(y) & 15) == 0);

    BP_GRID_STRIDE_LOOP(idx, items) {
        long long n, c0, rest, strip, jl;
        if constexpr (COLUMNS) { // lanes along a row's groups of V columns and tail, or its edge columns
            long long chunk, li, row;
            bp_divmod(idx, chunk_items, rcp_chunk, chunk, li);
            const long long rc = rows - 32 * chunk < 32 ? rows - 32 * chunk : 32; // rows in this chunk
            const bool vec = li < rc * (G + TG); // a group or the tail
            if (!vec) li -= rc * (G + TG);
            bp_divmod(li, vec ? G + TG : EC, vec ? rcp_g : rcp_e, row, jl);
#if BP_GATE_VARIANT == 2
            // The performance gates' uncoalesced variant (model/, never in the library): lanes
            // along rows, so neighbouring lanes read rows BP_STRIP_ROWS · S apart.
            bp_divmod(li, rc, 1.0 / (double)rc, jl, row);
#endif
            bp_divmod(32 * chunk + row, strips, rcp_strips, rest, strip);
            bp_divmod(rest, C, p.rcp_c, n, c0);
            if (vec) { // one call site for groups and tails: the vector walk inlined twice spilled
                const bool tail = jl == G;
                const int j = tail ? j_tail : j_left + (int)jl * V;
                bp_strip_walk<T, L, F, S>(p, x, y, map, it, n, c0, strip, j, vec_store && !tail,
                                          tail ? j_left + G * V - j_tail : 0);
            } else {
                const int e = (int)jl; // an edge column
                const int j = e < j_left ? e : j_edge + (e - j_left);
                auto one = map.narrow(p); // the v2 map of the same geometry
                bp_strip_item<T, F, long long> it1;
                it1.col_stride = 1;
                it1.row_stride = W;
                it1.pairs = false;
                bp_strip_walk<T, L, F, S>(p, x, y, one, it1, n, c0, strip, j, false);
            }
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
            bp_strip_walk<T, L, F, S>(p, x, y, map, it, n, c0, strip, (int)jl, vec_store);
        }
    }
}

// ---- v4: the walk over 16-byte channel vectors ----------------------------------------------

// Whether the v4 walk may take this launch. NHWC: C a multiple of the vector's elements, x and y
// 16-byte aligned, and one image's H·W·C below 2^31 (the walk's offsets
// inside an image are int). The host plans v4 only when the shape qualifies
// (src/cuda/plan.rs); the pointers are checked here, once per launch, and a launch that fails
// takes the v2 walk instead (same results; see tests/emulated.rs).
//
// NCHW: W a multiple of the vector's elements (so every input row starts 16-byte aligned) and x
// 16-byte aligned, one plane's H·W below 2^31; y may have any alignment (the walk then stores
// element by element).
template <typename T, typename L>
__device__ __forceinline__ bool bp_strip4_fits(const BpParams &p, const void *x, const void *y) {
    const unsigned long long bits = reinterpret_cast<unsigned long long>(x) |
                                    (L::channels_last ? reinterpret_cast<unsigned long long>(y) : 0ull);
    if (L::channels_last) return p.c % bp_vec_elems<T> == 0 && (bits & 15) == 0 && p.h * p.w * p.c < (1LL << 31);
    return p.w % bp_vec_elems<T> == 0 && (bits & 15) == 0 && p.h * p.w < (1LL << 31);
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

// The NCHW v4 maps' split of a row's output columns (bp_strip_run): lanes of V columns from j
// whose M map columns and E input columns (a window of K, padding pk before) lie inside the row
// take the vector walk; the others take the v2 walk one column at a time.
template <int V, int F, int S, int K, int M, int E>
struct bp_strip4_columns {
    int pad_left, pk, W, WO, WM;
    __device__ __forceinline__ bp_strip4_columns(const BpParams &p, int pk_)
        : pad_left(p.pad_left), pk(pk_), W((int)p.w), WO((int)p.wo), WM((int)p.wm) {}
    // Whether the lane's V output columns from j all exist and read only inside the row.
    __device__ __forceinline__ bool covers(const BpParams &, int j) const {
        const int q0 = j * S - pad_left;
        return j + V <= WO && q0 >= 0 && q0 + M - 1 < WM && q0 - pk >= 0 && q0 - pk + E - 1 < W;
    }
    // The first output column whose map and input columns start inside the row.
    __device__ __forceinline__ int first_column(const BpParams &) const {
        const int lead = pad_left + (pk > 0 ? pk : 0);
        return (lead + S - 1) / S;
    }
    // Exclusive end of the columns whose windows end inside the map and the row.
    __device__ __forceinline__ int interior_end() const {
        int end = WO;
        end = bp_min_int(end, (WM - F + pad_left) / S + 1);
        end = bp_min_int(end, (W - F - K + 1 + pad_left + pk) / S + 1);
        return end;
    }
    // How many whole groups of V columns from j the vector walk takes (every one covers()).
    __device__ __forceinline__ int groups_from(const BpParams &p, int j) const {
        const int g = (interior_end() - j) / V;
        return g > 0 && covers(p, j) && covers(p, j + (g - 1) * V) ? g : 0;
    }
    // The first column of the tail group: the V columns that end at the last one whose windows
    // lie inside the row, when that column lies past the g whole groups from j (the vector walk
    // takes them, storing only the columns past the groups); −1 when there is none.
    __device__ __forceinline__ int tail_from(const BpParams &p, int j, int g) const {
        const int end = interior_end(), jt = end - V;
        return g > 0 && end > j + g * V && covers(p, jt) ? jt : -1;
    }
};

// E consecutive elements of an NCHW row from element c0 ≥ 0 onwards, packed into 32-bit words
// (two halves or one float each; the v4 NCHW maps). Read as the 16-byte chunks that hold them
// (NC at most, all issued before any use; the row must start 16-byte aligned: W a multiple of
// the vector's elements), then shifted into place: the span's start inside its first chunk,
// o = c0 mod V, is the same for every lane of a launch (c0 = S·V·g − pad_left − the map's
// padding), so one uniform branch picks a shift whose moves are fixed at compile time.
template <typename T, int E>
struct bp_strip4_span {
    static constexpr int V = bp_vec_elems<T>;
    static constexpr int PER = sizeof(T) == 4 ? 1 : 2;     // elements per 32-bit word
    static constexpr int EW = (E + PER - 1) / PER + 1;     // words of the shifted span (+1 slack)
    static constexpr int NC = (E + 2 * V - 2) / V;         // chunks a span starting anywhere spans
    static constexpr int CW = 4 * NC;                      // their words

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

    // The chunk words cw shifted left by SH elements into x (x[0] starts with element SH).
    template <int SH> static __device__ __forceinline__ void shift(const unsigned (&cw)[CW], unsigned (&x)[EW]) {
#pragma unroll
        for (int i = 0; i < EW; ++i) {
            const int w = SH / PER + i;
            const unsigned lo = w < CW ? cw[w] : 0u, hi = w + 1 < CW ? cw[w + 1] : 0u;
            x[i] = (PER == 1 || SH % 2 == 0) ? lo : (lo >> 16) | (hi << 16);
        }
    }

    // Elements c0 .. c0 + E − 1 of `row` into x.
    static __device__ __forceinline__ void load(const T *__restrict__ row, int c0, unsigned (&x)[EW]) {
        const int o = c0 % V; // the same in every lane
        const T *__restrict__ base = row + (c0 - o);
        unsigned cw[CW];
#pragma unroll
        for (int k = 0; k < NC; ++k) {
            // Chunks past the span are not read (they may lie past the row's end).
            bp_u128 v = {{0u, 0u, 0u, 0u}};
#if BP_GATE_VARIANT == 1
            // The gates' serialised variant (model/, never in the library), as in bp_strip_hmax.
            const int dep = k > 0 ? (int)bp_gate_zero(__uint_as_float(cw[4 * k - 4])) : 0;
            if (k * V < o + E) v = bp_load_u128(base + k * V + dep);
#else
            if (k * V < o + E) v = bp_load_u128(base + k * V);
#endif
#pragma unroll
            for (int w = 0; w < 4; ++w) cw[4 * k + w] = v.v[w];
        }
        switch (o) { // uniform across the launch
        case 0: shift<0>(cw, x); break;
        case 1: shift<1>(cw, x); break;
        case 2: shift<2>(cw, x); break;
        case 3: shift<3>(cw, x); break;
        case 4: shift<4 % V>(cw, x); break;
        case 5: shift<5 % V>(cw, x); break;
        case 6: shift<6 % V>(cw, x); break;
        default: shift<7 % V>(cw, x); break;
        }
    }
};
