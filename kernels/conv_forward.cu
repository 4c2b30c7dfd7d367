// Convolution family, forward: conv + bias + activation + blur + subsample (ConvBlurPool2d), and
// blur + strided conv + bias + activation (BlurConv2d, composer's blur_first order). Weights are
// PyTorch's Cout×(Cin/groups)×kh×kw in the activations' dtype; accumulation is f32.
//
// v1 (general): one thread per output element; the full-resolution conv output (ConvBlurPool2d)
// or blurred map (BlurConv2d) is recomputed where needed and never written. Every configuration.
// v2 (strip): depthwise ConvBlurPool2d with the presets' 3×3 kernel, filters and stride (the
// strip walk of strip.cuh over a depthwise conv map).
// v3 (tensor cores): dense 3×3 ConvBlurPool2d in f16/bf16 on sm_80+.
#include "strip.cuh"

// ---- v1 --------------------------------------------------------------------------------------

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
    float acc = p.has_bias ? bp_to_f32(bp_ld(b + co)) : 0.f;
    for (int ci = 0; ci < cin_g; ++ci) {
        const T *wk = w + (co * cin_g + ci) * (long long)(p.ckh * p.ckw); // kh·kw < 2^31: Conv2dSpec::new
        for (int a = 0; a < p.ckh; ++a) {
            long long y = r + a - p.cpy;
            if (y < 0 || y >= p.h) continue;
            for (int k = 0; k < p.ckw; ++k) {
                long long xx = q + k - p.cpx;
                if (xx < 0 || xx >= p.w) continue;
                acc += bp_to_f32(bp_ld(wk + (a * p.ckw + k))) * bp_to_f32(bp_ld(x + L::offset(n, ci0 + ci, y, xx, p.c, p.h, p.w)));
            }
        }
    }
    return bp_activate(acc, p.act);
}

// The conv map of ConvBlurPool2d for output channel co, evaluated where a blur tap reads it.
template <typename T, typename L>
struct bp_conv_map {
    const T *__restrict__ x;
    const T *__restrict__ w;
    const T *__restrict__ b;
    long long n, co;
    __device__ __forceinline__ float operator()(const BpParams &p, long long r, long long q) const {
        return bp_conv_point<T, L>(p, x, w, b, n, co, r, q);
    }
};

// ConvBlurPool2d: y = blur_s(act(conv_1(x) + bias)); the blur pads the conv map (hm, wm).
template <typename T, typename L>
__device__ __forceinline__ void bp_convblurpool_impl(const BpParams p, const T *__restrict__ x,
                                                     const T *__restrict__ w, const T *__restrict__ b,
                                                     T *__restrict__ y) {
    BP_GRID_STRIDE_LOOP(idx, p.total) {
        long long n, co, i, j;
        L::split(idx, p, n, co, i, j);
        bp_st(y + idx, bp_from_f32<T>(bp_blur_at(p, i, j, p.hm, p.wm, bp_conv_map<T, L>{x, w, b, n, co})));
    }
}
BP_INSTANTIATE(bp_convblurpool)

// The input as the map a stride-1 blur reads (extents c, h, w): BlurConv2d's blur.
template <typename T, typename L>
struct bp_input_map {
    const T *__restrict__ x;
    long long n, c;
    __device__ __forceinline__ float operator()(const BpParams &p, long long r, long long q) const {
        return bp_to_f32(bp_ld(x + L::offset(n, c, r, q, p.c, p.h, p.w)));
    }
};

// One point (r, q) of the stride-1 blur of input channel ci (the blur's stride is 1 for
// BlurConv2d, the conv has the stride); (hm, wm) are the blurred map's extents and the conv's
// zero padding lies outside them.
template <typename T, typename L>
__device__ __forceinline__ float bp_blur_point(const BpParams &p, const T *__restrict__ x, long long n, long long ci,
                                               long long r, long long q) {
    return bp_blur_at(p, r, q, p.h, p.w, bp_input_map<T, L>{x, n, ci});
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
        float acc = p.has_bias ? bp_to_f32(bp_ld(b + co)) : 0.f;
        for (int ci = 0; ci < cin_g; ++ci) {
            const T *wk = w + (co * cin_g + ci) * (long long)(p.ckh * p.ckw); // kh·kw < 2^31: Conv2dSpec::new
            for (int a = 0; a < p.ckh; ++a) {
                long long r = i * p.csy + a - p.cpy;
                if (r < 0 || r >= p.hm) continue;
                for (int k = 0; k < p.ckw; ++k) {
                    long long q = j * p.csx + k - p.cpx;
                    if (q < 0 || q >= p.wm) continue;
                    acc += bp_to_f32(bp_ld(wk + (a * p.ckw + k))) * bp_blur_point<T, L>(p, x, n, ci0 + ci, r, q);
                }
            }
        }
        bp_st(y + idx, bp_from_f32<T>(bp_activate(acc, p.act)));
    }
}
BP_INSTANTIATE(bp_blurconv)

// ---- v2: depthwise strip kernels ----------------------------------------------------------

// The map of depthwise ConvBlurPool2d (groups = Cin = Cout, a KC×KC kernel at stride 1, any zero
// padding, bias and activation). A map row is Σ_a Σ_b w[a][b]·x[s − cpy + a][q − cpx + b] +
// bias, so away from the side edges the thread keeps the last KC input rows' span of
// F + KC − 1 pixels in registers (xr, slid like hx) and loads each input pixel once; columns
// whose taps reach past the row's ends (or into the blur's column padding) read taps directly.
template <typename T, int KC, int F, int V>
struct bp_strip_dwconv_map {
    static constexpr int lanes = V;
    static constexpr bool wide = false;
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
            bias[k] = (live && has_bias) ? bp_to_f32(bp_ld(b + (it.c0 + k))) : 0.f;
#pragma unroll
            for (int a = 0; a < KC; ++a)
#pragma unroll
                for (int t = 0; t < KC; ++t)
                    wk[a][t][k] = live ? bp_to_f32(bp_ld(w + (((it.c0 + k) * KC + a) * KC + t))) : 0.f;
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

// ---- v4: depthwise strip kernels over 16-byte vectors ----------------------------------------

// The map of depthwise v4 in NHWC (the rows of bp_strip_dwconv_map): a lane takes 4 channels
// per pixel, one 16-byte (f32) or 8-byte (f16/bf16) chunk. Its 4·KC² taps and 4 biases stay in
// registers as f32, loaded once per item as KC² chunks (the taps of 4 consecutive channels are
// 4·KC² consecutive elements; v2 loaded them element by element, 33 sectors a request) when w
// and b are chunk-aligned, else element by element.
// Each input row is loaded and widened once and added into the KC map rows it belongs to
// (acc: partial sums of map rows s .. s + KC − 1 at the F columns), so a map row costs one
// input row's E chunk loads and E·4 conversions, not KC rows'; the next input row's chunks are
// loaded before this row's arithmetic (pre), so two rows' loads are in flight. Taps are summed
// in v2's order (rows, then columns, ascending).
// Why 4 channels and not a 16-byte vector of 8 halves: the partial sums and taps of 8 channels
// (2 × 72 floats) took ptxas to 255 registers and 5.8 KB of spills; a first version with 8
// halves that re-read all KC rows per map row fitted (204 registers, 8 warps per SM), but the
// model gave it 61 / 44 % of copy (H100 / H200, f16), latency-bound at 3.1 loads in flight.
// This one (168–214 registers, also 8 warps) keeps 8.7 in flight (notes/kernels.md).
template <typename T, int KC, int F>
struct bp_strip4_dwconv_map {
    static constexpr int lanes = 4;                      // channels per lane
    static constexpr bool wide = true;
    static constexpr int E = F + KC - 1;
    static constexpr int NW = lanes * (int)sizeof(T) / 4; // 32-bit words of a chunk: 2 or 4
    struct chunk {
        unsigned v[NW];
    };
    static __device__ __forceinline__ chunk ld(const T *__restrict__ at BP_SITE) {
        chunk c;
        if constexpr (NW == 4) {
            const bp_u128 x = bp_load_u128(at BP_SITE_FWD);
#pragma unroll
            for (int i = 0; i < 4; ++i) c.v[i] = x.v[i];
        } else {
            const bp_u64 x = bp_load_u64(at BP_SITE_FWD);
            c.v[0] = x.v[0];
            c.v[1] = x.v[1];
        }
        return c;
    }
    static __device__ __forceinline__ void to_f32(const chunk &c, float (&out)[lanes]) {
#pragma unroll
        for (int k = 0; k < lanes; ++k) {
            if constexpr (sizeof(T) == 4) {
                out[k] = __uint_as_float(c.v[k]);
            } else {
                out[k] = bp_to_f32(T{(unsigned short)(c.v[k / 2] >> (16 * (k % 2)))});
            }
        }
    }
    static __device__ __forceinline__ void store(T *__restrict__ at, const float (&out)[lanes]) {
        if constexpr (sizeof(T) == 4) {
            bp_store_u128(at, bp_vec_from_f32<T>(out));
        } else {
            bp_u64 r;
#pragma unroll
            for (int w = 0; w < 2; ++w)
                r.v[w] = (unsigned)bp_from_f32<T>(out[2 * w]).bits |
                         ((unsigned)bp_from_f32<T>(out[2 * w + 1]).bits << 16);
            bp_store_u64(at, r);
        }
    }

    const T *__restrict__ w;
    const T *__restrict__ b;
    int cpy, cpx, H, W, act, has_bias;
    bool fast, wvec;
    int pre_row;                  // the input row held in pre (−1: none)
    float wk[KC][KC][lanes], bias[lanes];
    float acc[KC][F][lanes];      // partial sums of map rows s .. s + KC − 1
    chunk pre[E];                 // the next input row's span (fast path)

    __device__ __forceinline__ bp_strip4_dwconv_map(const BpParams &p, const T *__restrict__ w_,
                                                    const T *__restrict__ b_)
        : w(w_), b(b_), cpy(p.cpy), cpx(p.cpx), H((int)p.h), W((int)p.w), act(p.act), has_bias(p.has_bias),
          fast(false),
          wvec(((reinterpret_cast<unsigned long long>(w_) |
                 (p.has_bias ? reinterpret_cast<unsigned long long>(b_) : 0ull)) & (4 * NW - 1)) == 0),
          pre_row(-1), wk{}, bias{}, acc{}, pre{} {}

    // This channel group's taps and biases (weights are Cout×1×KC×KC, C a multiple of 4).
    __device__ __forceinline__ void begin(const bp_strip_item<T, F, int> &it, int WM) {
        fast = it.q0 >= 0 && it.q0 + F - 1 < WM && it.q0 - cpx >= 0 && it.q0 - cpx + E - 1 < W;
        pre_row = -1;
        constexpr int TAPS = KC * KC;
        const T *__restrict__ base = w + it.c0 * TAPS;
        if (wvec) {
            chunk v[TAPS]; // element q·4 + e: channel (q·4 + e) / TAPS, tap (q·4 + e) % TAPS
#pragma unroll
            for (int q = 0; q < TAPS; ++q) v[q] = ld(base + q * lanes);
#pragma unroll
            for (int q = 0; q < TAPS; ++q) {
                float f[lanes];
                to_f32(v[q], f);
#pragma unroll
                for (int e = 0; e < lanes; ++e) {
                    const int i = q * lanes + e, tap = i % TAPS;
                    wk[tap / KC][tap % KC][i / TAPS] = f[e];
                }
            }
            if (has_bias) to_f32(ld(b + it.c0), bias);
        } else {
#pragma unroll
            for (int k = 0; k < lanes; ++k) {
                bias[k] = has_bias ? bp_to_f32(bp_ld(b + (it.c0 + k))) : 0.f;
#pragma unroll
                for (int a = 0; a < KC; ++a)
#pragma unroll
                    for (int t = 0; t < KC; ++t) wk[a][t][k] = bp_to_f32(bp_ld(base + (k * KC + a) * KC + t));
            }
        }
    }

    // Loads the fast path's span of input row yy (inside the image) into e.
    __device__ __forceinline__ void load_span(const bp_strip_item<T, F, int> &it, int yy, chunk (&e)[E]) const {
        const T *__restrict__ rowp = it.plane + yy * it.row_stride;
#pragma unroll
        for (int t = 0; t < E; ++t) e[t] = ld(rowp + (it.q0 - cpx + t) * it.col_stride);
    }

    // Adds input row yy, tap row I of map row s (so tap row I − a of map row s + a) into acc;
    // `next`: an input row to prefetch into pre meanwhile (−1: none).
    template <int I>
    __device__ __forceinline__ void add_row(const bp_strip_item<T, F, int> &it, int yy, int next) {
        if (yy < 0 || yy >= H) return; // the conv's zero padding
        if (fast) {
            chunk e[E];
            if (yy == pre_row) {
#pragma unroll
                for (int t = 0; t < E; ++t) e[t] = pre[t];
            } else {
                load_span(it, yy, e);
            }
            pre_row = -1;
            if (next >= 0 && next < H) {
                load_span(it, next, pre);
                pre_row = next;
            }
#pragma unroll
            for (int t = 0; t < E; ++t) {
                float px[lanes];
                to_f32(e[t], px);
#pragma unroll
                for (int a = 0; a < KC; ++a) {
                    if (I - a < 0 || I - a >= KC) continue;
#pragma unroll
                    for (int v = 0; v < F; ++v) {
                        const int tap = t - v; // map column v reads input column v + tap
                        if (tap < 0 || tap >= KC) continue;
#pragma unroll
                        for (int k = 0; k < lanes; ++k) acc[a][v][k] += wk[I - a][tap][k] * px[k];
                    }
                }
            }
        } else {
            const T *__restrict__ rowp = it.plane + yy * it.row_stride;
#pragma unroll
            for (int v = 0; v < F; ++v) {
                if (it.qs[v] < 0) continue;
#pragma unroll
                for (int t = 0; t < KC; ++t) {
                    const int col = it.qs[v] - cpx + t;
                    if (col < 0 || col >= W) continue;
                    float px[lanes];
                    to_f32(ld(rowp + col * it.col_stride), px);
#pragma unroll
                    for (int a = 0; a < KC; ++a) {
                        if (I - a < 0 || I - a >= KC) continue;
#pragma unroll
                        for (int k = 0; k < lanes; ++k) acc[a][v][k] += wk[I - a][t][k] * px[k];
                    }
                }
            }
        }
    }

    // Map row s: when s follows the last one, acc already holds its first KC − 1 input rows.
    __device__ __forceinline__ void row(const bp_strip_item<T, F, int> &it, int s, bool follows,
                                        float (&m)[F][lanes]) {
        static_assert(KC >= 2 && KC <= 3, "the refill is written out for KC 2 and 3");
        const int y0 = s - cpy; // map row s reads input rows y0 .. y0 + KC − 1
        if (!follows) {
#pragma unroll
            for (int a = 0; a < KC; ++a)
#pragma unroll
                for (int v = 0; v < F; ++v)
#pragma unroll
                    for (int k = 0; k < lanes; ++k) acc[a][v][k] = bias[k];
            pre_row = -1;
            add_row<0>(it, y0, -1);
            if constexpr (KC > 2) add_row<1>(it, y0 + 1, -1);
        }
        add_row<KC - 1>(it, y0 + KC - 1, y0 + KC);
#pragma unroll
        for (int v = 0; v < F; ++v)
#pragma unroll
            for (int k = 0; k < lanes; ++k) m[v][k] = bp_activate(acc[0][v][k], act);
        // Map row s + 1's sums move to slot 0, and so on; the last slot starts again.
#pragma unroll
        for (int a = 0; a + 1 < KC; ++a)
#pragma unroll
            for (int v = 0; v < F; ++v)
#pragma unroll
                for (int k = 0; k < lanes; ++k) acc[a][v][k] = acc[a + 1][v][k];
#pragma unroll
        for (int v = 0; v < F; ++v)
#pragma unroll
            for (int k = 0; k < lanes; ++k) acc[KC - 1][v][k] = bias[k];
    }
};

// The map of depthwise v4 in NCHW: a lane takes V = 8 (f16/bf16) or 4 (f32) consecutive output
// columns of one channel, as the v4 max map does (bp_strip4_nchw_max_map: the same groups and
// the same packed row span, bp_strip4_span, with 0 for the chunks outside the row, the conv's
// zero padding), with the conv's KC×KC taps in place of the max: the M = S·(V − 1) + F map
// columns of a map row from E = M + KC − 1 input columns of each of its KC input rows. The taps
// are uniform across a channel plane (KC² scalar registers, broadcast loads); each input row is
// read once into KC rows of partial sums, as in NHWC.
template <typename T, int KC, int F, int S, int CB = 16>
struct bp_strip4_nchw_dwconv_map : bp_vec_store16<T> {
    static constexpr int lanes = bp_vec_elems<T>; // output columns per lane
    static constexpr bool wide = true;
    static constexpr int M = S * (lanes - 1) + F; // map columns
    static constexpr int E = M + KC - 1;          // input columns
    using span = bp_strip4_span<T, E, CB>; // 16- or 8-byte row chunks (bp_strip4_fits)
    static constexpr int D = S * lanes * (int)sizeof(T) / CB; // a group's own chunks
    const BpParams &p;
    const T *__restrict__ w;
    const T *__restrict__ b;
    int cpy, cpx, H, W, act, has_bias;
    unsigned near = 0; // the item's neighbouring lanes (bp_strip4_near)
    float wk[KC][KC], bias;
    float acc[KC][M]; // partial sums of map rows s .. s + KC − 1 at the M map columns

    __device__ __forceinline__ bp_strip4_nchw_dwconv_map(const BpParams &p, const T *__restrict__ w_,
                                                         const T *__restrict__ b_)
        : p(p), w(w_), b(b_), cpy(p.cpy), cpx(p.cpx), H((int)p.h), W((int)p.w), act(p.act), has_bias(p.has_bias),
          wk{}, bias(0.f), acc{} {}

    // The channel's taps and bias (it.c0 is the channel in NCHW), and the item's neighbours.
    __device__ __forceinline__ void begin(const bp_strip_item<T, F, int> &it, int) {
        near = bp_strip4_near<T, S, lanes, CB>(p, it.q0);
        bias = has_bias ? bp_to_f32(bp_ld(b + it.c0)) : 0.f;
#pragma unroll
        for (int a = 0; a < KC; ++a)
#pragma unroll
            for (int t = 0; t < KC; ++t) wk[a][t] = bp_to_f32(bp_ld(w + (it.c0 * KC + a) * KC + t));
    }

    // Adds input row yy, tap row I of map row s (so tap row I − a of map row s + a) into acc.
    template <int I> __device__ __forceinline__ void add_row(const bp_strip_item<T, F, int> &it, int yy) {
        if (yy < 0 || yy >= H) return; // zero padding rows of the conv
        unsigned x[span::EW];
        span::template load_near<D, (F - 1) / 2 + (KC - 1) / 2>(it.plane + yy * it.row_stride, it.q0 - cpx, W, 0u, near, x);
#pragma unroll
        for (int e = 0; e < E; ++e) {
            const float xf = span::elem(x, e);
#pragma unroll
            for (int a = 0; a < KC; ++a) {
                if (I - a < 0 || I - a >= KC) continue;
#pragma unroll
                for (int t = 0; t < KC; ++t) {
                    const int col = e - t; // map column col reads input column col + t
                    if (col >= 0 && col < M) acc[a][col] += wk[I - a][t] * xf;
                }
            }
        }
    }

    // Map row s from the partial sums, as in bp_strip4_dwconv_map: each input row's chunks are
    // read once per map row, not KC times.
    __device__ __forceinline__ void row(const bp_strip_item<T, F, int> &it, int s, bool follows,
                                        float (&m)[F][lanes]) {
        static_assert(KC >= 2 && KC <= 3, "the refill is written out for KC 2 and 3");
        const int y0 = s - cpy;
        if (!follows) {
#pragma unroll
            for (int a = 0; a < KC; ++a)
#pragma unroll
                for (int i = 0; i < M; ++i) acc[a][i] = bias;
            add_row<0>(it, y0);
            if constexpr (KC > 2) add_row<1>(it, y0 + 1);
        }
        add_row<KC - 1>(it, y0 + KC - 1);
        // m[v][k]: map column S·k + v of the lane's first.
#pragma unroll
        for (int v = 0; v < F; ++v)
#pragma unroll
            for (int k = 0; k < lanes; ++k) m[v][k] = bp_activate(acc[0][S * k + v], act);
#pragma unroll
        for (int a = 0; a + 1 < KC; ++a)
#pragma unroll
            for (int i = 0; i < M; ++i) acc[a][i] = acc[a + 1][i];
#pragma unroll
        for (int i = 0; i < M; ++i) acc[KC - 1][i] = bias;
    }
};

// The entry points: the v4 walk where bp_strip4_fits says so (NCHW in 16- or 8-byte row
// chunks), else (unaligned x or y, or rows of an odd multiple of 2 halves) the v2 walk of the
// same geometry. The block's threads and the blocks per SM ptxas must fit are the variant's
// last two numbers (build.rs reads them; the launch takes its block from there): the taps and
// partial sums take 155–214 registers, so filter 3 runs blocks of 128, 3 per SM (≤ 168
// registers, 12 warps, no spills); filter 4 at that cap spills 44–184 bytes in NHWC and keeps
// one block of 256 (8 warps). Two blocks of 256 (128 registers) spill in every variant.
template <typename T, typename L, int KC, int F, int S>
__device__ __forceinline__ void bp_strip4_dw_run(const BpParams &p, const T *__restrict__ x, const T *__restrict__ w,
                                                 const T *__restrict__ b, T *__restrict__ y) {
    const int cb = bp_strip4_fits<T, L, F, S>(p, x, y, p.cpx);
    using v2 = bp_strip_dwconv_map<T, KC, F, bp_strip_lanes<T, L>>;
    using nchw16 = bp_strip4_nchw_dwconv_map<T, KC, F, S, 16>;
    using nchw8 = bp_strip4_nchw_dwconv_map<T, KC, F, S, 8>;
    // Each walk on its mark's line (see bp_strip4_pool_run).
    if constexpr (L::channels_last) {
        if (cb == 16) {
            bp_mark(); bp_strip_run<T, L, F, S>(p, x, y, bp_strip4_dwconv_map<T, KC, F>(p, w, b));
        } else {
            bp_mark(); bp_strip_run<T, L, F, S>(p, x, y, v2(p, w, b));
        }
    } else {
        if (cb == 16) {
            bp_mark(); bp_strip_run<T, L, F, S>(p, x, y, nchw16(p, w, b));
        } else if (cb == 8) {
            bp_mark(); bp_strip_run<T, L, F, S>(p, x, y, nchw8(p, w, b));
        } else {
            bp_mark(); bp_strip_run<T, L, F, S>(p, x, y, v2(p, w, b));
        }
    }
}

#define BP_STRIP4_DW_VARIANT(NAME, KC, F, S, THREADS, MIN_BLOCKS)                                        \
    template <typename T, typename L>                                                                    \
    __device__ __forceinline__ void NAME##_impl(const BpParams p, const T *__restrict__ x,               \
                                                const T *__restrict__ w, const T *__restrict__ b,        \
                                                T *__restrict__ y) {                                     \
        bp_strip4_dw_run<T, L, KC, F, S>(p, x, w, b, y);                                                 \
    }                                                                                                    \
    BP_INSTANTIATE_BOUNDED_THREADS(NAME, THREADS, MIN_BLOCKS)

BP_STRIP4_DW_VARIANT(bp_convblurpool_dw3f3s2_v4, 3, 3, 2, 128, 3)
BP_STRIP4_DW_VARIANT(bp_convblurpool_dw3f4s2_v4, 3, 4, 2, 256, 1)

// ---- v3: tensor cores ----------------------------------------------------------------------
//
// Dense ConvBlurPool2d on the tensor cores (v3), f16 and bf16 on sm_80+: a 3×3 conv (groups 1,
// stride 1, any zero padding) + bias + activation + blur (F taps, stride 2, any pad mode and
// padding) + subsample, with the conv output kept in shared memory.
//
// Why: v1 (conv.cu) recomputes each conv point for every blur tap that reads it (F² times) on
// the FP32 pipes. Here a block owns an 8×8 tile of output pixels × 32 output channels and
//   1. computes the conv map under the tile's blur footprint once, as an implicit GEMM on
//      mma.sync.m16n8k16 (f32 accumulation): M = the map tile's pixels ((7·2 + F)², padded to
//      16s), N = 32 output channels, K = 9 taps × Cin, staged 16 input channels at a time
//      (input tile with its conv halo and the weights, both channel-innermost in shared memory,
//      24 halves per pixel so the fragment loads of the 8 rows of an mma are bank-conflict free);
//   2. adds bias, applies the activation and stores the map tile in shared memory as f32
//      (exactly what v1 blurs, up to the order of the conv's sums);
//   3. blurs and subsamples it into the 8×8×32 outputs.
// The blur's padding is resolved per output row/column with bp_source_index, as in v1; the map
// rows a tile reads are the image of one interval under that mapping, hence one interval of at
// most (8 − 1)·2 + F rows, which is the tile computed (from its smallest row r0). Map rows past
// the map's end are computed from zero padding and never read.

#define BP_TC_OUT 8   // output tile: BP_TC_OUT × BP_TC_OUT pixels
#define BP_TC_COUT 32 // output channels per block: 4 mma n-tiles
#define BP_TC_KC 16   // input channels per stage: one mma k-step per tap
#define BP_TC_PIX 24  // halves per staged pixel / weight row: 16 + 8 of padding (48 bytes)
#define BP_TC_WARPS 8 // 256 threads (the launch layer's BLOCK)

// TO: the output tile's side (8: v3 and v4; v4 also 7, which the host picks where 7 × 7 tiles
// cover the output in as few tiles, e.g. outputs of 28 or 14: src/cuda/plan.rs tc4_tile_side).
template <int F, int TO = BP_TC_OUT> struct bp_tc_dims {
    static_assert(TO >= 1 && TO <= BP_TC_OUT, "the epilogue's ownership is an 8 × 8 tile");
    static constexpr int MH = (TO - 1) * 2 + F;        // map tile rows = columns
    static constexpr int M = MH * MH;                  // map tile pixels (GEMM rows)
    static constexpr int MCH = (M + 15) / 16;          // m16 chunks
    static constexpr int CHUNKS = (MCH + BP_TC_WARPS - 1) / BP_TC_WARPS; // per warp, at most
    static constexpr int IH = MH + 2;                  // input tile rows = columns (conv halo)
    // Words a map pixel, at most (bp_tc_map_stride): 40, or 36 where 40 would pass 48 KB.
    static constexpr int MAP_STRIDE = M * 40 * 4 <= 48 * 1024 ? 40 : 36;
    static constexpr int IN_HALVES = IH * IH * BP_TC_PIX;
    static constexpr int STAGE_HALVES = IN_HALVES + 9 * BP_TC_COUT * BP_TC_PIX;
    static constexpr int MAP_FLOATS = M * MAP_STRIDE;
    static constexpr int SMEM_FLOATS = MAP_FLOATS > STAGE_HALVES / 2 ? MAP_FLOATS : STAGE_HALVES / 2;
    static_assert(SMEM_FLOATS * 4 <= 48 * 1024, "static shared memory is limited to 48 KB");
};

// The block's shared memory: the staged input and weights during the conv, then the map tile
// (16-byte aligned for the 8-channel stores).
template <int F> struct alignas(16) bp_tc_smem {
    float f[bp_tc_dims<F>::SMEM_FLOATS];
};

// d += A·B for one m16n8k16 fragment set (layout in emu/cpp/emu.h).
template <typename T>
__device__ __forceinline__ void bp_tc_mma(const unsigned (&a)[4], const unsigned (&b)[2], float (&d)[4] BP_SITE) {
#if defined(BP_HOST_EMULATION)
    bp_emu_mma_m16n8k16(bp_is_bf16<T>::value, a, b, d BP_SITE_FWD);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    if constexpr (bp_is_bf16<T>::value) {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
            "{%0, %1, %2, %3};"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    } else {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
            "{%0, %1, %2, %3};"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
#else
    // Built for an arch without m16n8k16 (BLURPOOL_CUDA_ARCHS below 80): the host never
    // launches this kernel there (Kernels::tensor_cores).
    __trap();
#endif
}

// Smallest source index any of the tile's n outputs from o0 read along one axis (0 if all of
// them read only zero padding). At stride 2 with taps ≥ 2 (the kernels' filters 3 and 4) the
// padded coordinates they read are every one of a..b (callers pass taps = F ≥ 3: the
// specialisations' filters, build.rs), so the smallest source is in closed
// form: the interval's part inside 0..len starts at max(a, 0); reflect maps a part below 0 to
// 1.. −a (smallest −min(b, −1)) and one past the end to 2(len − 1) − b.. len − 2; replicate
// maps them to 0 and len − 1; zero padding reads nothing there. (A loop over the n × taps
// reads, in 64 bits, took ≈ 20 % of the wgmma kernel's instructions, modeled.) In 32 bits:
// the host checks the extents below 2^30 and the pads below 2^20 (src/cuda/plan.rs
// tensor_core_kernel).
__device__ __forceinline__ int bp_tc_first_source(int o0, int n, int taps, int pad, long long len_, int mode) {
    const int len = (int)len_;
    const int a = 2 * o0 - pad, b = 2 * (o0 + n - 1) + taps - 1 - pad;
    int first = len;
    if (a < len && b >= 0) first = a > 0 ? a : 0;
    if (mode == BP_PAD_REFLECT) {
        if (a < 0) {
            const int r = b < -1 ? -b : 1;
            first = r < first ? r : first;
        }
        if (b >= len) {
            const int r = 2 * (len - 1) - b;
            first = r < first ? r : first;
        }
    } else if (mode == BP_PAD_REPLICATE) {
        if (a < 0) first = 0;
        if (b >= len) first = len - 1 < first ? len - 1 : first;
    }
    return first == len ? 0 : first;
}

// Stages input channels ci0..ci0+15 of the tile whose top-left input pixel is (iy0, ix0) as
// in_s[pixel][channel] (zero outside the image and past C).
template <typename T, typename L, int F>
__device__ __forceinline__ void bp_tc_stage_input(const BpParams &p, const T *__restrict__ x, long long n, int iy0,
                                                  int ix0, int ci0, bool vec8, unsigned short *in_s) {
    using D = bp_tc_dims<F>;
    const int C = (int)p.c, H = (int)p.h, W = (int)p.w;
    if (L::channels_last && vec8) {
        // 8 channels (16 bytes) per load: C % 8 == 0 and x 16-byte aligned.
        for (int u = threadIdx.x; u < D::IH * D::IH * 2; u += blockDim.x) {
            const int pix = u >> 1, half = u & 1, iy = iy0 + pix / D::IH, ix = ix0 + pix % D::IH;
            const int ci = ci0 + 8 * half;
            bp_u128 v = {{0u, 0u, 0u, 0u}};
            if (iy >= 0 && iy < H && ix >= 0 && ix < W && ci < C)
                v = bp_load_u128(x + L::offset(n, ci, iy, ix, C, H, W));
            bp_store_u128(in_s + pix * BP_TC_PIX + 8 * half, v);
        }
        return;
    }
    for (int e = threadIdx.x; e < D::IH * D::IH * BP_TC_KC; e += blockDim.x) {
        // Consecutive threads read consecutive addresses: channels (NHWC) or columns (NCHW).
        int pix, k;
        if (L::channels_last) {
            pix = e / BP_TC_KC;
            k = e % BP_TC_KC;
        } else {
            pix = e % (D::IH * D::IH);
            k = e / (D::IH * D::IH);
        }
        const int iy = iy0 + pix / D::IH, ix = ix0 + pix % D::IH, ci = ci0 + k;
        unsigned short v = 0;
        if (iy >= 0 && iy < H && ix >= 0 && ix < W && ci < C) v = bp_ld(x + L::offset(n, ci, iy, ix, C, H, W)).bits;
        bp_st(in_s + (pix * BP_TC_PIX + k), v);
    }
}

// Stages weights of output channels co0..co0+31, input channels ci0..ci0+15 as
// w_s[tap][output channel][input channel] (zero past Cout and C). PyTorch's OIHW order makes a
// run of 16 × 9 consecutive elements per output channel, read by consecutive threads.
template <typename T>
__device__ __forceinline__ void bp_tc_stage_weights(const BpParams &p, const T *__restrict__ w, int co0, int ci0,
                                                    unsigned short *w_s) {
    const int C = (int)p.c, CO = (int)p.cout;
    for (int e = threadIdx.x; e < BP_TC_COUT * BP_TC_KC * 9; e += blockDim.x) {
        const int tap = e % 9, k = (e / 9) % BP_TC_KC, nl = e / (9 * BP_TC_KC);
        const int co = co0 + nl, ci = ci0 + k;
        unsigned short v = 0;
        if (co < CO && ci < C) v = bp_ld(w + (((long long)co * C + ci) * 9 + tap)).bits;
        bp_st(w_s + ((tap * BP_TC_COUT + nl) * BP_TC_PIX + k), v);
    }
}

// One block's tile: image n, outputs (i0.., j0..) of which ni × nj lie inside the output,
// output channels co0.. (Cout tile ct), and the first map row r0 and column c0 its blur reads.
struct bp_tc_tile {
    long long n;
    int ct, i0, j0, co0, ni, nj, r0, c0;
};

template <int CO = BP_TC_COUT, int TO = BP_TC_OUT>
__device__ __forceinline__ long long bp_tc_tile_count(const BpParams &p) {
    const long long tiles_y = (p.ho + TO - 1) / TO, tiles_x = (p.wo + TO - 1) / TO;
    return p.n * tiles_y * tiles_x * ((p.cout + CO - 1) / CO);
}

// Tile `tile` of bp_tc_tile_count. Consecutive tiles differ in output channels first, so
// blocks running together share their input tile in L2. CO: output channels a block; TO: the
// tile's side in outputs.
template <int CO = BP_TC_COUT, int TO = BP_TC_OUT>
__device__ __forceinline__ bp_tc_tile bp_tc_decode_tile(const BpParams &p, long long tile, int taps) {
    const int HO = (int)p.ho, WO = (int)p.wo;
    const long long tiles_y = (HO + TO - 1) / TO, tiles_x = (WO + TO - 1) / TO;
    const long long cout_tiles = (p.cout + CO - 1) / CO;
    bp_tc_tile tl;
    tl.ct = (int)(tile % cout_tiles);
    tile /= cout_tiles;
    const int tx = (int)(tile % tiles_x);
    tile /= tiles_x;
    const int ty = (int)(tile % tiles_y);
    tl.n = tile / tiles_y;
    tl.i0 = ty * TO;
    tl.j0 = tx * TO;
    tl.co0 = tl.ct * CO;
    tl.ni = HO - tl.i0 < TO ? HO - tl.i0 : TO;
    tl.nj = WO - tl.j0 < TO ? WO - tl.j0 : TO;
    tl.r0 = bp_tc_first_source(tl.i0, tl.ni, taps, p.pad_top, p.hm, p.mode);
    tl.c0 = bp_tc_first_source(tl.j0, tl.nj, taps, p.pad_left, p.wm, p.mode);
    return tl;
}

// Where map pixel (rr, qq) of the tile (row rr, column qq, both from its first) keeps channel nl
// in the f32 map tile, in words: bp_tc_map_row(rr) + bp_tc_map_col(qq, nl), a pixel's channels
// consecutive, bp_tc_map_stride<L, F>() words a pixel:
//   NHWC: 8 mod 32 (40; 36 where 40 would pass 48 KB: F = 4), so that a half-warp's float2
//   stores of the accumulators (4 consecutive pixels × 4 channel pairs) fall in distinct banks
//   (at 36: 2-way) with the channel offsets as immediates, and the blur's reads (32 channels of
//   one pixel) are one wavefront;
//   NCHW: 33, so that the blur's reads (one channel of 8 × 4 outputs) spread over the banks.
// A block of CO = 64 or 128 channels (v4, dynamic shared memory): CO + 8 (8 mod 32) in NHWC,
// CO + 4 (4 mod 32) in NCHW: even, so that both the accumulators' stores and the blur's reads
// go two channels at a time as float2 (8 pixels 4 words apart × 4 channel pairs, and 8 columns
// 2 pixels = 8 words apart × 4 pairs: every bank twice, 2 wavefronts for 256 bytes, the
// least). (With one float a lane the stride was odd, 67: the reads took 1 wavefront, but as
// many requests as floats.)
template <typename L, int F, int CO = BP_TC_COUT> __device__ __forceinline__ constexpr int bp_tc_map_stride() {
    static_assert(CO % 32 == 0, "whole 32-channel groups");
    return L::channels_last ? (CO == BP_TC_COUT ? bp_tc_dims<F>::MAP_STRIDE : CO + 8)
                            : (CO == BP_TC_COUT ? CO + 1 : CO + 4);
}
template <typename L, int F, int CO = BP_TC_COUT, int TO = BP_TC_OUT>
__device__ __forceinline__ int bp_tc_map_row(int rr) {
    return rr * bp_tc_dims<F, TO>::MH * bp_tc_map_stride<L, F, CO>();
}
template <typename L, int F, int CO = BP_TC_COUT> __device__ __forceinline__ int bp_tc_map_col(int qq, int nl) {
    return qq * bp_tc_map_stride<L, F, CO>() + nl;
}

// The accumulators (mma D fragments of this warp's m16 chunks, rows past M dropped) + bias,
// activated, into the f32 map tile map_s: a lane's two adjacent channels of an n-tile at a time
// (one float2 store in NHWC), their bias loaded once for both of the chunk's rows, or −0 (which
// adds nothing to any value, −0 included) where there is none. CO: the block's output channels
// (CO / 8 n-tiles, every warp all of them); TO: the tile's side in outputs; PITCH: GEMM rows a
// map row (MH: row m is map pixel (m / MH, m % MH); the wgmma kernel's rows run over the input
// tile's pitch, and its rows of columns ≥ MH are dropped).
template <typename L, int F, int CO, int TO, int PITCH, typename T>
__device__ __forceinline__ void bp_tc_store_map(const BpParams &p,
                                                const float (&acc)[bp_tc_dims<F, TO>::CHUNKS][CO / 8][4],
                                                const T *__restrict__ b, float *map_s, const bp_tc_tile &tl) {
    using D = bp_tc_dims<F, TO>;
    static_assert(PITCH >= D::MH, "a map row fits its pitch");
    constexpr int ROWS = (D::MH - 1) * PITCH + D::MH, MCH = (ROWS + 15) / 16; // GEMM rows, m16 chunks
    const int COUT = (int)p.cout;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const bp_act_clamp act = bp_act_bounds(p.act);
#pragma unroll
    for (int ch = 0; ch < D::CHUNKS; ++ch) {
        if (warp + BP_TC_WARPS * ch >= MCH) break;
#pragma unroll
        for (int nt = 0; nt < CO / 8; ++nt) {
            const int nl = nt * 8 + 2 * t; // this lane's channels nl, nl + 1 in n-tile nt
            float bias[2];
#pragma unroll
            for (int j = 0; j < 2; ++j)
                bias[j] = p.has_bias && tl.co0 + nl + j < COUT ? bp_to_f32(bp_ld(b + (tl.co0 + nl + j))) : -0.f;
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int m = (warp + BP_TC_WARPS * ch) * 16 + g + 8 * h; // rows g, g + 8: e = 2h, 2h + 1
                const int rr = m / PITCH, qq = m % PITCH;
                if (m >= ROWS || qq >= D::MH) continue;
                float *px = map_s + bp_tc_map_row<L, F, CO, TO>(rr);
                const float v0 = bp_activate(acc[ch][nt][2 * h] + bias[0], act);
                const float v1 = bp_activate(acc[ch][nt][2 * h + 1] + bias[1], act);
                if constexpr (L::channels_last || CO != BP_TC_COUT) { // an even stride: float2
                    const bp_u64 pair = {{__float_as_uint(v0), __float_as_uint(v1)}};
                    bp_store_u64(px + bp_tc_map_col<L, F, CO>(qq, nl), pair);
                } else {
                    bp_st(px + bp_tc_map_col<L, F, CO>(qq, nl), v0);
                    bp_st(px + bp_tc_map_col<L, F, CO>(qq, nl + 1), v1);
                }
            }
        }
    }
}

// The epilogue both tensor-core forwards share: the accumulators + bias, activated, into the f32
// map tile map_s (bp_tc_store_map; it overwrites the staging area, hence the barrier first),
// then the blur + subsample of the tile from it, with the sources of a thread's output column
// (NCHW: and row) worked out once a tile, not per output (notes/kernels.md). CO: the block's
// output channels (32: v3; v4: BP_TC4_COUT; its wgmma kernel BP_TCW_COUT); TO: the tile's side
// in outputs (8, or 7 in v4: the threads of the 8th row and column own no output then, as at the
// image's last tiles); PITCH: the GEMM rows a map row (bp_tc_store_map).
template <typename T, typename L, int F, int CO = BP_TC_COUT, int TO = BP_TC_OUT,
          int PITCH = bp_tc_dims<F, TO>::MH>
__device__ __forceinline__ void bp_tc_epilogue(const BpParams &p,
                                               const float (&acc)[bp_tc_dims<F, TO>::CHUNKS][CO / 8][4],
                                               const T *__restrict__ b, T *__restrict__ y, float *map_s,
                                               const bp_tc_tile &tl) {
    constexpr int THREADS = BP_TC_WARPS * 32; // the launch's block (src/cuda/plan.rs BLOCK)
    static_assert(BP_TC_OUT == 8 && TO <= BP_TC_OUT && CO % 32 == 0 && THREADS == 256,
                  "the output ownership below");
    const int COUT = (int)p.cout, HO = (int)p.ho, WO = (int)p.wo, HM = (int)p.hm, WM = (int)p.wm;
    const int sy = p.sy, sx = p.sx;
    const int tid = (int)threadIdx.x, warp = tid / 32, lane = tid % 32;
    __syncthreads(); // everyone is done with the staging area
    bp_tc_store_map<L, F, CO, TO, PITCH>(p, acc, b, map_s, tl);
    __syncthreads();
    // The blur + subsample. Thread tid owns CO / 4 outputs of the tile, in an order that makes
    // consecutive threads write consecutive addresses: NHWC column tid / 32, channels
    // CPL·(tid % 32).. (below), rows 0..7; NCHW row tid / 32, column tid % 8, a channel a turn
    // (below). The blur is summed as bp_blur_at sums it (rows outer, columns inner, zero-padded
    // cells skipped, (ty[u]·tx[v])·map: the same bits), over sources worked out in 32 bits
    // (bp_source_index in 64 bits, per tap, was 30 % of the kernel's instructions).
    const int lj = L::channels_last ? warp % BP_TC_OUT : tid % BP_TC_OUT;
    if (lj >= tl.nj) return; // no barrier follows in this tile
    const int j = tl.j0 + lj;
    // NHWC: CPL = CO / 32 channels a lane, consecutive (2, 4: read as one float2 or float4, one
    // request for 2 or 4 wavefronts where single float loads would be that many requests of one).
    constexpr int CPL = CO / 32;
    static_assert(CPL == 1 || CPL == 2 || CPL == 4, "a float, float2 or float4 a tap");
    const int nl0 = CPL * lane; // NHWC
    int col[F]; // the tap columns' words (NCHW: without the channel), −1 for a zero-padded cell
#pragma unroll
    for (int v = 0; v < F; ++v) {
        const int q = bp_source_index32(j * sx + v - p.pad_left, WM, p.mode);
        col[v] = q < 0 ? -1 : bp_tc_map_col<L, F, CO>(q - tl.c0, L::channels_last ? nl0 : 0);
    }
    if constexpr (L::channels_last) {
        // NHWC: the thread's 8 × CPL outputs are rows k of one column, channels nl0.. nl0 +
        // CPL − 1. At stride 2 (the tile's geometry) output k + 1's tap rows 0..F − 3 are output
        // k's rows 2..F − 1 (the same padded coordinates, hence the same sources and cells):
        // they stay in registers, and each output after the first loads 2 tap rows (F = 3: 51
        // loads for 8 outputs, not 72). The sums keep bp_blur_at's order and bits, a channel
        // at a time. A zero-padded cell is 0 here and summed: w·0 adds ±0, which leaves any sum
        // but −0 unchanged, and the sum, from +0, is never −0 (round to nearest); so the skips
        // of bp_blur_at need no tests. Channels past Cout read the map's zero-weight channels
        // (inside the tile) and are not stored.
        if (tl.co0 + nl0 >= COUT) return;
        // The lane's channels inside Cout (1..CPL), and its CPL channels in one 4- or 8-byte store
        // where they all are and y's groups of CPL are that aligned.
        const int own = COUT - (tl.co0 + nl0) < CPL ? COUT - (tl.co0 + nl0) : CPL;
        const bool group_store = CPL > 1 && own == CPL && COUT % CPL == 0 &&
                                 (reinterpret_cast<unsigned long long>(y) & (2 * CPL - 1)) == 0;
        float cell[F][F][CPL]; // output k's cells
#pragma unroll
        for (int k = 0; k < BP_TC_OUT; ++k) {
            if (k >= tl.ni) break; // the same for the whole block
            const int i = tl.i0 + k;
#pragma unroll
            for (int u = 0; u < F; ++u) {
                if (k > 0 && u < F - 2) { // output k − 1's row u + 2
#pragma unroll
                    for (int v = 0; v < F; ++v)
#pragma unroll
                        for (int c = 0; c < CPL; ++c) cell[u][v][c] = cell[u + 2][v][c];
                    continue;
                }
                const int r = bp_source_index32(i * sy + u - p.pad_top, HM, p.mode);
                const float *row = map_s + bp_tc_map_row<L, F, CO, TO>(r >= 0 ? r - tl.r0 : 0);
#pragma unroll
                for (int v = 0; v < F; ++v) {
                    const bool inside = r >= 0 && col[v] >= 0;
                    if constexpr (CPL == 4) {
                        const bp_u128 q = inside ? bp_load_u128(row + col[v]) : bp_u128{{0u, 0u, 0u, 0u}};
#pragma unroll
                        for (int c = 0; c < 4; ++c) cell[u][v][c] = __uint_as_float(q.v[c]);
                    } else if constexpr (CPL == 2) {
                        const bp_u64 q = inside ? bp_load_u64(row + col[v]) : bp_u64{{0u, 0u}};
                        cell[u][v][0] = __uint_as_float(q.v[0]);
                        cell[u][v][1] = __uint_as_float(q.v[1]);
                    } else {
                        cell[u][v][0] = inside ? bp_ld(row + col[v]) : 0.f;
                    }
                }
            }
            float sum[CPL];
#pragma unroll
            for (int c = 0; c < CPL; ++c) {
                sum[c] = 0.f;
#pragma unroll
                for (int u = 0; u < F; ++u)
#pragma unroll
                    for (int v = 0; v < F; ++v) sum[c] += p.ty[u] * p.tx[v] * cell[u][v][c];
            }
            T *at = y + L::offset(tl.n, tl.co0 + nl0, i, j, COUT, HO, WO);
            if constexpr (CPL > 1) {
                if (group_store) {
                    unsigned word[CPL / 2];
#pragma unroll
                    for (int c = 0; c < CPL / 2; ++c)
                        word[c] = (unsigned)bp_from_f32<T>(sum[2 * c]).bits |
                                  (unsigned)bp_from_f32<T>(sum[2 * c + 1]).bits << 16;
                    if constexpr (CPL == 4)
                        bp_store_u64(at, bp_u64{{word[0], word[1]}});
                    else
                        bp_store_u32(at, word[0]);
                    continue;
                }
            }
#pragma unroll
            for (int c = 0; c < CPL; ++c)
                if (c < own) bp_st(at + c, bp_from_f32<T>(sum[c]));
        }
    } else {
        // NCHW: warp w owns output row w, lane (lj, q = lane / 8) column lj; the row's sources
        // are worked out once. v4 (CO 64, 128): two channels a lane and turn (below). v3 (CO =
        // 32, an odd stride): in turn k (CO / 4 of them) lane (lj, q) owns channel
        // 2·(k % 8) + 32·(k / 8) + (q % 2) + 16·(q / 2): a warp's blur read is 8 map columns ×
        // channels {c, c + 1, c + 16, c + 17}, 32 distinct banks at the map's stride of 1 mod 32
        // (4 rows × 8 columns of one channel took 3.9 wavefronts), and its store 4 runs of 8
        // outputs.
        static_assert(BP_TC_WARPS == BP_TC_OUT, "a warp a tile row");
        if (warp >= tl.ni) return; // the same for the whole warp; no barrier follows in this tile
        const int i = tl.i0 + warp;
        const int q = lane / BP_TC_OUT, qoff = (q & 1) + 16 * (q >> 1);
        int rows[F]; // the tap rows' words, −1 for a zero-padded row
#pragma unroll
        for (int u = 0; u < F; ++u) {
            const int r = bp_source_index32(i * sy + u - p.pad_top, HM, p.mode);
            rows[u] = r < 0 ? -1 : bp_tc_map_row<L, F, CO, TO>(r - tl.r0);
        }
        if constexpr (CO != BP_TC_COUT) {
            // v4 (an even stride): in turn k lane (lj, q) owns channels nl = 8k + 2q and nl + 1
            // of column lj and reads both per tap as one float2; the sums are bp_blur_at's, a
            // channel at a time. Each channel's stores are 4 runs of 8 outputs, as below.
#pragma unroll 1
            for (int k = 0; k < CO / 8; ++k) {
                const int nl = 8 * k + 2 * q;
                if (tl.co0 + nl >= COUT) continue;
                float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
                for (int u = 0; u < F; ++u) {
                    if (rows[u] < 0) continue;
                    const float *row = map_s + rows[u] + nl;
#pragma unroll
                    for (int v = 0; v < F; ++v) {
                        if (col[v] < 0) continue;
                        const bp_u64 pair = bp_load_u64(row + col[v]);
                        const float w = p.ty[u] * p.tx[v];
                        sum0 += w * __uint_as_float(pair.v[0]);
                        sum1 += w * __uint_as_float(pair.v[1]);
                    }
                }
                T *at = y + L::offset(tl.n, tl.co0 + nl, i, j, COUT, HO, WO);
                bp_st(at, bp_from_f32<T>(sum0));
                if (tl.co0 + nl + 1 < COUT) bp_st(at + (long long)HO * WO, bp_from_f32<T>(sum1));
            }
            return;
        }
#pragma unroll 1
        for (int k = 0; k < CO / 4; ++k) {
            const int nl = 2 * (k % 8) + 32 * (k / 8) + qoff;
            if (tl.co0 + nl >= COUT) continue;
            float sum = 0.f;
#pragma unroll
            for (int u = 0; u < F; ++u) {
                if (rows[u] < 0) continue;
                const float *row = map_s + rows[u] + nl;
#pragma unroll
                for (int v = 0; v < F; ++v) {
                    if (col[v] < 0) continue;
                    sum += p.ty[u] * p.tx[v] * bp_ld(row + col[v]);
                }
            }
            bp_st(y + L::offset(tl.n, tl.co0 + nl, i, j, COUT, HO, WO), bp_from_f32<T>(sum));
        }
    }
}

template <typename T, typename L, int F>
__device__ __forceinline__ void bp_convblurpool_tc_run(const BpParams p, const T *__restrict__ x,
                                                       const T *__restrict__ w, const T *__restrict__ b,
                                                       T *__restrict__ y) {
    using D = bp_tc_dims<F>;
    __shared__ bp_tc_smem<F> smem;
    unsigned short *in_s = reinterpret_cast<unsigned short *>(smem.f);
    unsigned short *w_s = in_s + D::IN_HALVES;
    float *map_s = smem.f; // reuses the staging area once the conv is done

    const int C = (int)p.c;
    const long long tiles = bp_tc_tile_count(p);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const bool vec8 = C % 8 == 0 && (reinterpret_cast<unsigned long long>(x) & 15) == 0;

    // This thread's GEMM rows (map tile pixels) in each of its m16 chunks: g and g + 8, as
    // offsets of their top-left conv tap in the staged input tile. Rows past M repeat the last
    // pixel (their results are dropped).
    int pix_lo[D::CHUNKS], pix_hi[D::CHUNKS];
#pragma unroll
    for (int ch = 0; ch < D::CHUNKS; ++ch) {
        const int m0 = (warp + BP_TC_WARPS * ch) * 16 + g;
        const int lo = m0 < D::M ? m0 : D::M - 1, hi = m0 + 8 < D::M ? m0 + 8 : D::M - 1;
        pix_lo[ch] = (lo / D::MH) * D::IH + lo % D::MH;
        pix_hi[ch] = (hi / D::MH) * D::IH + hi % D::MH;
    }

    BP_BLOCK_STRIDE_LOOP(tile, tiles) {
        const bp_tc_tile tl = bp_tc_decode_tile(p, tile, F);

        float acc[D::CHUNKS][4][4];
#pragma unroll
        for (int ch = 0; ch < D::CHUNKS; ++ch)
#pragma unroll
            for (int nt = 0; nt < 4; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[ch][nt][e] = 0.f;

        for (int ci0 = 0; ci0 < C; ci0 += BP_TC_KC) {
            __syncthreads(); // everyone is done with the previous stage (or tile's map)
            bp_tc_stage_input<T, L, F>(p, x, tl.n, tl.r0 - p.cpy, tl.c0 - p.cpx, ci0, vec8, in_s);
            bp_tc_stage_weights<T>(p, w, tl.co0, ci0, w_s);
            __syncthreads();
#pragma unroll 1
            for (int tap = 0; tap < 9; ++tap) {
                const int toff = (tap / 3) * D::IH + tap % 3;
                unsigned bf[4][2];
#pragma unroll
                for (int nt = 0; nt < 4; ++nt) {
                    const unsigned short *wb = w_s + (tap * BP_TC_COUT + nt * 8 + g) * BP_TC_PIX + 2 * t;
                    bf[nt][0] = bp_load_u32(wb);
                    bf[nt][1] = bp_load_u32(wb + 8);
                }
#pragma unroll
                for (int ch = 0; ch < D::CHUNKS; ++ch) {
                    if (warp + BP_TC_WARPS * ch >= D::MCH) break; // the same for the whole warp
                    const unsigned short *lo = in_s + (pix_lo[ch] + toff) * BP_TC_PIX + 2 * t;
                    const unsigned short *hi = in_s + (pix_hi[ch] + toff) * BP_TC_PIX + 2 * t;
                    const unsigned af[4] = {bp_load_u32(lo), bp_load_u32(hi), bp_load_u32(lo + 8),
                                            bp_load_u32(hi + 8)};
#pragma unroll
                    for (int nt = 0; nt < 4; ++nt) bp_tc_mma<T>(af, bf[nt], acc[ch][nt]);
                }
            }
        }

        bp_tc_epilogue<T, L, F>(p, acc, b, y, map_s, tl);
    }
}

#define BP_TC_VARIANT(NAME, F)                                                                             \
    template <typename T, typename L>                                                                      \
    __device__ __forceinline__ void NAME##_impl(const BpParams p, const T *__restrict__ x,                 \
                                                const T *__restrict__ w, const T *__restrict__ b,          \
                                                T *__restrict__ y) {                                       \
        bp_convblurpool_tc_run<T, L, F>(p, x, w, b, y);                                                    \
    }                                                                                                      \
    BP_INSTANTIATE_HALF_TYPES(NAME)

// 3×3 conv with the two preset filter sizes at stride 2: timm / kornia (3) and
// antialiased-cnns (4).
BP_TC_VARIANT(bp_convblurpool_tc_k3f3s2, 3)
BP_TC_VARIANT(bp_convblurpool_tc_k3f4s2, 4)

// ---- v4: tensor cores, staged with cp.async, fragments by ldmatrix ------------------------
//
// The v3 tile (8×8 outputs a block, the conv map under the blur footprint as an implicit GEMM
// on mma.sync.m16n8k16, then the blur from an f32 map tile in shared memory) with its staging
// rebuilt, because v3's staging was the bottleneck the SASS showed, and twice the channels:
//   - weights are pre-packed by bp_pack_tc4_weights (a launch of its own, queued just before
//     this kernel by the host into a buffer it allocates) into exactly the image a stage needs:
//     [Cout tile][16-channel stage][tap][64 output channels][16 input channels], zero past Cout
//     and C, so a stage's weights are 1152 contiguous 16-byte chunks copied with cp.async;
//   - the input tile (with its conv halo) is staged with 16-byte cp.async in NHWC when C % 8
//     == 0 and x is 16-byte aligned (zero fill outside the image and past C), element by
//     element otherwise (NCHW: the tile is transposed to channel-innermost on the way);
//   - two stage buffers: stage s + 1 is issued before the mma of stage s, one barrier a stage;
//   - a staged pixel (or weight row) is 16 halves = 32 bytes with its two 16-byte halves
//     swapped on every other group of 4 rows (bp_tc4_at), so the 8 rows an ldmatrix reads fall
//     in distinct banks, for any 8 consecutive rows, with no padding (v3 padded rows to 48
//     bytes); A and B fragments come from ldmatrix.x4: per tap and warp 4 (B) + ≤ 3 (A)
//     shared-load instructions for 24 mma, against v3's 20 for 12;
//   - the staged input tile's rows are BP_TC4_PITCH = 24 pixels apart (a multiple of 8), so a
//     tap's row offset leaves the swizzle bit of a pixel unchanged: a lane works out its A
//     addresses once a tap column, and steps them by constants over the column's tap rows
//     (bp_tc4_mma_stage; a tap loop that rebuilt them was ≈ 80 instructions for 12 mma).
// Block shape: 64 output channels (BP_TC4_COUT; v3 has 32), every warp all 8 n-tiles of its
// m16 chunks, so an A fragment feeds 8 mma and a staged input tile serves 64 channels (at 32,
// A fragments and input staging were 108 of the 199.5 µs the model's LSU bound gave, notes/
// kernels.md). Its 96 accumulators take one block of 256 threads an SM (__launch_bounds__
// (256, 1)); two stages (33–34 KB each) and the 64-channel f32 map tile (83 / 93 KB for F = 3
// / 4) are dynamic shared memory: bp_tc4_dims<F, TO>::SMEM_BYTES, which src/cuda/plan.rs
// computes the same (the launch layer raises the kernel's limit to it).
// Output tiles of 8 × 8 or 7 × 7 (TO): 7 where it covers the output in as few tiles (outputs of
// 28, 14, 7), so that no GEMM rows go to a partial tile's outside (8 × 8 tiles over 28 outputs
// compute 31 % of theirs there); a side-7 tile has 15–16 m16 chunks (2 a warp, 64 accumulators)
// and needs 65 / 74 KB.

#define BP_TC4_COUT 64 // output channels per block (src/cuda/plan.rs TC4_COUT)
#define BP_TC4_NT (BP_TC4_COUT / 8) // mma n-tiles a warp
#define BP_TC4_ROW 16 // halves per staged pixel / weight row
#define BP_TC4_W_HALVES (9 * BP_TC4_COUT * BP_TC4_ROW) // one stage's weights (9216 halves, 18 KB)
#define BP_TC4_PITCH 24 // staged input pixels a tile row: a multiple of 8 (the swizzle's period)

template <int F, int TO> struct bp_tc4_dims {
    using D = bp_tc_dims<F, TO>;
    static_assert(D::IH <= BP_TC4_PITCH && BP_TC4_PITCH % 8 == 0, "a tile row fits its pitch");
    static constexpr int IN_HALVES = D::IH * BP_TC4_PITCH * BP_TC4_ROW;
    static constexpr int STAGE_HALVES = IN_HALVES + BP_TC4_W_HALVES;
    static constexpr int STAGING_FLOATS = STAGE_HALVES; // two stages of halves
    // The map tile at NHWC's stride (NCHW's, CO + 3, is smaller).
    static constexpr int MAP_FLOATS = D::M * (BP_TC4_COUT + 8);
    static constexpr int SMEM_FLOATS = MAP_FLOATS > STAGING_FLOATS ? MAP_FLOATS : STAGING_FLOATS;
    // The dynamic shared memory a launch gives (src/cuda/plan.rs tc4_shared_bytes: the same).
    static constexpr int SMEM_BYTES = SMEM_FLOATS * 4;
    static_assert(SMEM_BYTES <= 99 * 1024, "fits the opt-in shared memory of every sm_86+ SM");
    static_assert(IN_HALVES % 8 == 0, "the weights of a stage start 16-byte aligned");
};

// Offset (in halves) of 16-byte half `half` (0: elements 0–7, 1: 8–15) of staged row `row`.
__device__ __forceinline__ int bp_tc4_at(int row, int half) {
    return row * BP_TC4_ROW + ((half ^ (row >> 2)) & 1) * 8;
}

// The weight image (OIHW → [Cout tile][stage][tap][64][16], zeros past Cout and C): one thread
// per packed element, consecutive threads writing consecutive elements. x: the OIHW weights;
// y: the packed buffer of bp_tc4_packed_len elements (src/cuda/plan.rs computes the same).
template <typename T, typename L>
__device__ __forceinline__ void bp_pack_tc4_weights_impl(const BpParams p, const T *__restrict__ w,
                                                         const T *__restrict__, const T *__restrict__,
                                                         T *__restrict__ packed) {
    const long long C = p.c, CO = p.cout, stages = (C + BP_TC_KC - 1) / BP_TC_KC;
    const long long total = (CO + BP_TC4_COUT - 1) / BP_TC4_COUT * stages * BP_TC4_W_HALVES;
    BP_GRID_STRIDE_LOOP(e, total) {
        const int k = (int)(e % BP_TC4_ROW), nl = (int)(e / BP_TC4_ROW % BP_TC4_COUT);
        const int tap = (int)(e / (BP_TC4_ROW * BP_TC4_COUT) % 9);
        const long long blk = e / BP_TC4_W_HALVES, s = blk % stages, ct = blk / stages;
        const long long co = ct * BP_TC4_COUT + nl, ci = s * BP_TC_KC + k;
        T v = bp_from_f32<T>(0.f);
        if (co < CO && ci < C) v = bp_ld(w + ((co * C + ci) * 9 + tap));
        bp_st(packed + e, v);
    }
}
BP_INSTANTIATE_HALF_TYPES(bp_pack_tc4_weights)

// Channels c8..c8+7 of input pixel (iy, ix) of image n in NCHW as one 16-byte staged row (8
// loads a plane apart, each a row segment across a warp whose lanes take consecutive pixels;
// zeros outside the image, `inside` false, and past C): the v4 kernels' NCHW staging.
template <typename T, typename L>
__device__ __forceinline__ bp_u128 bp_tc_gather8_nchw(const BpParams &p, const T *__restrict__ x, long long n,
                                                      int c8, int iy, int ix, bool inside) {
    const int C = (int)p.c, H = (int)p.h, W = (int)p.w;
    const T *at = x + L::offset(n, inside ? c8 : 0, inside ? iy : 0, inside ? ix : 0, C, H, W);
    const long long plane = (long long)H * W;
    unsigned short v[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) v[e] = inside && c8 + e < C ? bp_ld(at + e * plane).bits : (unsigned short)0;
    bp_u128 q;
#pragma unroll
    for (int e = 0; e < 4; ++e) q.v[e] = (unsigned)v[2 * e] | (unsigned)v[2 * e + 1] << 16;
    return q;
}

// Issues the copies of stage `ci0` (input channels ci0..ci0+15) into one stage buffer: the
// input tile whose top-left input pixel is (iy0, ix0) and the stage's packed weights `ws`.
template <typename T, typename L, int F, int TO>
__device__ __forceinline__ void bp_tc4_stage(const BpParams &p, const T *__restrict__ x, long long n, int iy0,
                                             int ix0, int ci0, bool async_x, const unsigned short *__restrict__ ws,
                                             unsigned short *in_s, unsigned short *w_s) {
    using D = bp_tc_dims<F, TO>;
    constexpr int THREADS = BP_TC_WARPS * 32; // the launch's block (src/cuda/plan.rs BLOCK)
    constexpr int W_CHUNKS = BP_TC4_W_HALVES / 8, X_CHUNKS = D::IH * D::IH * 2;
    const int C = (int)p.c, H = (int)p.h, W = (int)p.w;
    // Unrolled at the block's size, so each thread's copies of a stage (4–5 of weights, 3–4 of
    // input) issue back to back, all in flight until the wait before the next stage.
#pragma unroll
    for (int k = 0; k < (W_CHUNKS + THREADS - 1) / THREADS; ++k) {
        const int u = (int)threadIdx.x + k * THREADS;
        if (u < W_CHUNKS) bp_cp_async16(w_s + bp_tc4_at(u >> 1, u & 1), ws + 8 * u, true);
    }
    if (L::channels_last && async_x) {
#pragma unroll
        for (int k = 0; k < (X_CHUNKS + THREADS - 1) / THREADS; ++k) {
            const int u = (int)threadIdx.x + k * THREADS;
            if (u >= X_CHUNKS) break;
            const int pix = u >> 1, half = u & 1, ty = pix / D::IH, tx = pix % D::IH;
            const int iy = iy0 + ty, ix = ix0 + tx, ci = ci0 + 8 * half;
            const bool inside = iy >= 0 && iy < H && ix >= 0 && ix < W && ci < C;
            bp_cp_async16(in_s + bp_tc4_at(ty * BP_TC4_PITCH + tx, half),
                          inside ? x + L::offset(n, ci, iy, ix, C, H, W) : x, inside);
        }
    } else if constexpr (!L::channels_last) {
        // NCHW: a thread stages 8 channels of one pixel, consecutive threads consecutive pixels
        // (each of its 8 loads is a row segment across the warp), and stores them as one 16-byte
        // half (an element at a time, the transposition cost 5.2 wavefronts a 2-byte store).
        for (int u = threadIdx.x; u < X_CHUNKS; u += blockDim.x) {
            const int pix = u % (D::IH * D::IH), half = u / (D::IH * D::IH);
            const int ty = pix / D::IH, tx = pix % D::IH, iy = iy0 + ty, ix = ix0 + tx;
            const bool inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
            bp_store_u128(in_s + bp_tc4_at(ty * BP_TC4_PITCH + tx, half),
                          bp_tc_gather8_nchw<T, L>(p, x, n, ci0 + 8 * half, iy, ix, inside));
        }
    } else {
        // NHWC where 16-byte copies do not apply (C % 8 ≠ 0 or x not 16-byte aligned): an
        // element at a time, consecutive threads consecutive channels.
        for (int e = threadIdx.x; e < D::IH * D::IH * BP_TC_KC; e += blockDim.x) {
            const int pix = e / BP_TC_KC, k = e % BP_TC_KC;
            const int ty = pix / D::IH, tx = pix % D::IH, iy = iy0 + ty, ix = ix0 + tx, ci = ci0 + k;
            unsigned short v = 0;
            if (iy >= 0 && iy < H && ix >= 0 && ix < W && ci < C) v = bp_ld(x + L::offset(n, ci, iy, ix, C, H, W)).bits;
            bp_st(in_s + bp_tc4_at(ty * BP_TC4_PITCH + tx, k >> 3) + (k & 7), v);
        }
    }
    bp_cp_async_commit();
}

// The mma of one stage for a warp with NCH m16 chunks (CHUNKS or CHUNKS − 1), over the 9 taps
// by tap column dx, then tap row dy, each tap's 8 n-tiles (the block's 64 channels) from 4
// ldmatrix.x4 of B, each chunk's A from one. a_pix[ch]: the staged input pixel of the lane's
// ldmatrix row in chunk ch at tap (0, 0), a_half its 16-byte half; a tap column's swizzled
// addresses are worked out once for its 3 tap rows, each of which adds dy·BP_TC4_PITCH pixels
// (a multiple of 8, so the swizzle bit stays). b_off: the lane's B row at tap 0 (tap t adds
// 64·t rows, q 16·q: multiples of 8, ditto). Neither loop is unrolled: the addresses are
// additions either way, and the unrolled loops cost registers (notes/kernels.md).
template <typename T, int F, int TO, int NCH>
__device__ __forceinline__ void bp_tc4_mma_stage(const unsigned short *in_s, const unsigned short *w_s,
                                                 const int (&a_pix)[bp_tc_dims<F, TO>::CHUNKS], int a_half,
                                                 int b_off, float (&acc)[bp_tc_dims<F, TO>::CHUNKS][BP_TC4_NT][4]) {
#pragma unroll 1
    for (int dx = 0; dx < 3; ++dx) {
        const unsigned short *a_at[NCH];
#pragma unroll
        for (int ch = 0; ch < NCH; ++ch) a_at[ch] = in_s + bp_tc4_at(a_pix[ch] + dx, a_half);
        const unsigned short *b_at = w_s + b_off + dx * BP_TC4_COUT * BP_TC4_ROW; // tap dx
#pragma unroll 1
        for (int dy = 0; dy < 3; ++dy) {
            // bq[q]: b0, b1 of n-tile 2q, then b0, b1 of n-tile 2q + 1.
            unsigned bq[BP_TC4_NT / 2][4];
#pragma unroll
            for (int q = 0; q < BP_TC4_NT / 2; ++q) bp_ldmatrix_x4(b_at + 16 * q * BP_TC4_ROW, bq[q]);
#pragma unroll
            for (int ch = 0; ch < NCH; ++ch) {
                unsigned af[4];
                bp_ldmatrix_x4(a_at[ch], af);
#pragma unroll
                for (int nt = 0; nt < BP_TC4_NT; ++nt) {
                    const unsigned bf[2] = {bq[nt >> 1][2 * (nt & 1)], bq[nt >> 1][2 * (nt & 1) + 1]};
                    bp_tc_mma<T>(af, bf, acc[ch][nt]);
                }
                a_at[ch] += BP_TC4_PITCH * BP_TC4_ROW; // the next tap row
            }
            b_at += 3 * BP_TC4_COUT * BP_TC4_ROW; // tap (dy + 1)·3 + dx
        }
    }
}

// w: the packed weights (bp_pack_tc4_weights), 16-byte aligned. The launch gives
// bp_tc4_dims<F, TO>::SMEM_BYTES of dynamic shared memory. TO: the output tile's side (8 or 7).
template <typename T, typename L, int F, int TO>
__device__ __forceinline__ void bp_convblurpool_tc4_run(const BpParams p, const T *__restrict__ x,
                                                        const T *__restrict__ w, const T *__restrict__ b,
                                                        T *__restrict__ y) {
    using D = bp_tc_dims<F, TO>;
    using D4 = bp_tc4_dims<F, TO>;
    BP_DYNAMIC_SHARED(smem, D4::SMEM_BYTES);
    unsigned short *stage_s = reinterpret_cast<unsigned short *>(smem); // two stages of D4::STAGE_HALVES
    float *map_s = reinterpret_cast<float *>(smem); // reuses the staging area once the conv is done
    const unsigned short *wp = reinterpret_cast<const unsigned short *>(w);

    const int C = (int)p.c;
    const int stages = (C + BP_TC_KC - 1) / BP_TC_KC;
    const long long tiles = bp_tc_tile_count<BP_TC4_COUT, TO>(p);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const bool async_x = C % 8 == 0 && (reinterpret_cast<unsigned long long>(x) & 15) == 0;

    // The A rows this lane addresses for ldmatrix in each of its m16 chunks: row
    // (lane % 8) + 8·((lane / 8) % 2) of the chunk, as the staged input pixel of its top-left
    // conv tap, and the 16-byte half lane / 16 (matrices 0, 1: k 0–7; 2, 3: k 8–15). Rows past
    // M repeat the last pixel (their results are dropped).
    const int a_half = lane >> 4;
    int a_pix[D::CHUNKS];
#pragma unroll
    for (int ch = 0; ch < D::CHUNKS; ++ch) {
        const int m = (warp + BP_TC_WARPS * ch) * 16 + (lane & 7) + 8 * ((lane >> 3) & 1);
        const int mm = m < D::M ? m : D::M - 1;
        a_pix[ch] = (mm / D::MH) * BP_TC4_PITCH + mm % D::MH;
    }
    // The B rows (output channels) this lane addresses: n-tile 2q + lane / 16, row lane % 8,
    // 16-byte half (lane / 8) % 2.
    const int b_off = bp_tc4_at((lane >> 4) * 8 + (lane & 7), (lane >> 3) & 1);
    // This warp's m16 chunks: CHUNKS or CHUNKS − 1.
    static_assert(D::MCH > BP_TC_WARPS * (D::CHUNKS - 1) && D::CHUNKS >= 2, "every warp has CHUNKS − 1 or CHUNKS");
    const bool all_chunks = warp + BP_TC_WARPS * (D::CHUNKS - 1) < D::MCH;

    BP_BLOCK_STRIDE_LOOP(tile, tiles) {
        const bp_tc_tile tl = bp_tc_decode_tile<BP_TC4_COUT, TO>(p, tile, F);
        const int iy0 = tl.r0 - p.cpy, ix0 = tl.c0 - p.cpx;
        const unsigned short *wt = wp + (long long)tl.ct * stages * BP_TC4_W_HALVES;

        float acc[D::CHUNKS][BP_TC4_NT][4];
#pragma unroll
        for (int ch = 0; ch < D::CHUNKS; ++ch)
#pragma unroll
            for (int nt = 0; nt < BP_TC4_NT; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[ch][nt][e] = 0.f;

        __syncthreads(); // the previous tile's blur is done with the map (it shares the buffers)
        bp_tc4_stage<T, L, F, TO>(p, x, tl.n, iy0, ix0, 0, async_x, wt, stage_s, stage_s + D4::IN_HALVES);
        for (int s = 0; s < stages; ++s) {
            bp_cp_async_wait_all();
            __syncthreads(); // stage s is in shared memory; everyone is done with stage s − 1
            if (s + 1 < stages) {
                unsigned short *next = stage_s + ((s + 1) & 1) * D4::STAGE_HALVES;
                bp_tc4_stage<T, L, F, TO>(p, x, tl.n, iy0, ix0, (s + 1) * BP_TC_KC, async_x,
                                      wt + (long long)(s + 1) * BP_TC4_W_HALVES, next, next + D4::IN_HALVES);
            }
            const unsigned short *in_s = stage_s + (s & 1) * D4::STAGE_HALVES;
            const unsigned short *w_s = in_s + D4::IN_HALVES;
            if (all_chunks) // the same for the whole warp
                bp_tc4_mma_stage<T, F, TO, D::CHUNKS>(in_s, w_s, a_pix, a_half, b_off, acc);
            else
                bp_tc4_mma_stage<T, F, TO, D::CHUNKS - 1>(in_s, w_s, a_pix, a_half, b_off, acc);
        }

        bp_tc_epilogue<T, L, F, BP_TC4_COUT, TO>(p, acc, b, y, map_s, tl);
    }
}

// NAME, filter, output tile side.
#define BP_TC4_VARIANT(NAME, F, TO)                                                                        \
    template <typename T, typename L>                                                                      \
    __device__ __forceinline__ void NAME##_impl(const BpParams p, const T *__restrict__ x,                 \
                                                const T *__restrict__ w, const T *__restrict__ b,          \
                                                T *__restrict__ y) {                                       \
        bp_convblurpool_tc4_run<T, L, F, TO>(p, x, w, b, y);                                               \
    }                                                                                                      \
    BP_INSTANTIATE_HALF_TYPES_BOUNDED(NAME, 1)

// 8 × 8 output tiles, and 7 × 7 for outputs that 7 divides and 8 does not (28, 14, 7: the
// ResNet stages after the stem; at 28, 8 × 8 tiles leave 31 % of their GEMM rows idle).
BP_TC4_VARIANT(bp_convblurpool_tc_k3f3s2_v4, 3, 8)
BP_TC4_VARIANT(bp_convblurpool_tc_k3f4s2_v4, 4, 8)
BP_TC4_VARIANT(bp_convblurpool_tc_k3f3s2t7_v4, 3, 7)
BP_TC4_VARIANT(bp_convblurpool_tc_k3f4s2t7_v4, 4, 7)

// ---- v4 on sm_90a: the dense tensor-core conv on wgmma ---------------------------------------
//
// Why: on mma.sync every operand passes the LSU as an ldmatrix, and at C = 256 (56 × 56 inputs)
// the B fragments alone, read by each of the 8 warps for each tap, bind the v4 kernel above
// (notes/kernels.md, "what wgmma would change"). Here a block is 2 warpgroups × 128 output
// channels, and each warpgroup's wgmma.m64n128k16 reads its A and B tiles from shared memory
// itself (descriptors, no ldmatrix, no fragments in registers).
// The GEMM: row m is map pixel (m / P, m % P) with P = the input tile's width IH (the rows of
// columns ≥ MH are computed and dropped), so tap (dy, dx) of rows m.. m + 63 is the 64
// consecutive staged pixels from m + dy·P + dx: A's core matrices (8 pixels × 8 channels, 128
// bytes) lie 128 bytes apart along M and one channel plane apart along K, for any tap, with no
// copy per tap. (MH − 1)·P + MH rows (253 at F = 3, side 7) are 4 m64 chunks: chunk j to
// warpgroup j % 2, so warp w's m16 rows are chunk w + 8·ch as in the mma.sync kernels, whose
// epilogue this one shares (bp_tc_epilogue at PITCH = P, 4 channels a lane).
// Shared memory: two stages of [16-channel half][pixel][8] input (BP_TCW_NPIX pixels: the tile
// and the pixels the last chunk's taps reach past it, zero) and [tap][half][128][8] weights,
// staged with 16-byte cp.async (the weights from the v4 packing, two 64-channel tiles), then the
// 128-channel f32 map tile: 122 KB at F = 3, one block an SM (sm_90: 227 KB).
// Built for F = 3 at side 7 (2 m64 chunks a warpgroup: 128 accumulators a thread); other
// geometries would need 3 chunks (192 accumulators) and take the mma.sync kernel.

#define BP_TCW_COUT 128 // output channels a block (src/cuda/plan.rs TCW_COUT)

template <int F, int TO> struct bp_tcw_dims {
    using D = bp_tc_dims<F, TO>;
    static constexpr int P = D::IH;                                  // GEMM rows a map row
    static constexpr int ROWS = (D::MH - 1) * P + D::MH;             // GEMM rows
    static constexpr int CHUNKS = (ROWS + 63) / 64;                  // m64 chunks, 2 a warpgroup
    static_assert(CHUNKS == 2 * D::CHUNKS, "the m16 chunks of the mma.sync epilogue");
    static_assert(D::CHUNKS == 2, "2 m64 chunks a warpgroup (128 accumulators)");
    // Staged pixels a channel half: up to the last chunk's last row at tap (2, 2), in 16s.
    static constexpr int NPIX = (64 * CHUNKS + 2 * P + 2 + 15) / 16 * 16;
    static constexpr int IN_HALVES = 2 * NPIX * 8;
    static constexpr int W_HALVES = 9 * 2 * BP_TCW_COUT * 8;
    static constexpr int STAGE_HALVES = IN_HALVES + W_HALVES;
    static constexpr int MAP_FLOATS = D::M * (BP_TCW_COUT + 8); // NHWC's stride (NCHW's is smaller)
    static constexpr int SMEM_FLOATS = MAP_FLOATS > STAGE_HALVES ? MAP_FLOATS : STAGE_HALVES;
    // The dynamic shared memory a launch gives (src/cuda/plan.rs tcw_shared_bytes: the same).
    static constexpr int SMEM_BYTES = SMEM_FLOATS * 4;
    static_assert(SMEM_BYTES <= 227 * 1024, "fits an sm_90 SM's opt-in shared memory");
};

// Staged row `r` of a [half][rows][8] plane set (16 bytes a row) for 16-byte chunk u of a
// stage's copies: consecutive lanes take consecutive rows of one half, 16 at a time, then the
// same 16 rows' other half, so a warp reads whole 32-byte lines from global memory (a pixel's
// 16 channels, a weight row's 16 inputs) and writes 256 consecutive bytes of each plane.
__device__ __forceinline__ void bp_tcw_chunk(int u, int &row, int &half) {
    row = (u >> 5) * 16 + (u & 15);
    half = (u >> 4) & 1;
}

// Issues the copies of stage `s` (input channels 16s..16s+15) into one stage buffer: the input
// tile whose top-left input pixel is (iy0, ix0) as [half][pixel ty·P + tx][8], and the weights
// of output channels co0..co0+127 as [tap][half][channel][8] from the v4 packing (wt: the first
// of the block's two 64-channel tiles; zeros for a tile past Cout).
template <typename T, typename L, int F, int TO>
__device__ __forceinline__ void bp_tcw_stage(const BpParams &p, const T *__restrict__ x, long long n, int iy0,
                                             int ix0, int s, int stages, bool async_x, bool second_tile,
                                             const unsigned short *__restrict__ wt, unsigned short *in_s,
                                             unsigned short *w_s) {
    using D = bp_tc_dims<F, TO>;
    using DW = bp_tcw_dims<F, TO>;
    constexpr int THREADS = BP_TC_WARPS * 32; // the launch's block (src/cuda/plan.rs BLOCK)
    constexpr int W_CHUNKS = DW::W_HALVES / 8, X_CHUNKS = DW::IN_HALVES / 8;
    static_assert(W_CHUNKS % THREADS == 0 && X_CHUNKS % 32 == 0, "whole rounds of the chunk order");
    const int C = (int)p.c, H = (int)p.h, W = (int)p.w, ci0 = s * BP_TC_KC;
#pragma unroll
    for (int k = 0; k < W_CHUNKS / THREADS; ++k) {
        int row, half;
        bp_tcw_chunk((int)threadIdx.x + k * THREADS, row, half);
        const int tap = row / BP_TCW_COUT, co = row % BP_TCW_COUT, hi = co / BP_TC4_COUT;
        const unsigned short *src = wt + ((long long)hi * stages + s) * BP_TC4_W_HALVES +
                                    (tap * BP_TC4_COUT + co % BP_TC4_COUT) * BP_TC4_ROW + 8 * half;
        const bool valid = hi == 0 || second_tile;
        bp_cp_async16(w_s + ((tap * 2 + half) * BP_TCW_COUT + co) * 8, valid ? src : wt, valid);
    }
    if (L::channels_last && async_x) {
#pragma unroll
        for (int k = 0; k < (X_CHUNKS + THREADS - 1) / THREADS; ++k) {
            const int u = (int)threadIdx.x + k * THREADS;
            if (u >= X_CHUNKS) break;
            int pix, half;
            bp_tcw_chunk(u, pix, half);
            const int ty = pix / DW::P, tx = pix % DW::P;
            const int iy = iy0 + ty, ix = ix0 + tx, ci = ci0 + 8 * half;
            const bool inside = ty < D::IH && iy >= 0 && iy < H && ix >= 0 && ix < W && ci < C;
            bp_cp_async16(in_s + (half * DW::NPIX + pix) * 8, inside ? x + L::offset(n, ci, iy, ix, C, H, W) : x,
                          inside);
        }
    } else if constexpr (!L::channels_last) {
        // NCHW: a thread stages 8 channels of one pixel (8 loads a plane apart, each a row
        // segment across the warp) and stores them as one 16-byte row, consecutive threads
        // consecutive pixels of one half.
        for (int u = threadIdx.x; u < X_CHUNKS; u += blockDim.x) {
            const int half = u / DW::NPIX, pix = u % DW::NPIX;
            const int ty = pix / DW::P, tx = pix % DW::P, iy = iy0 + ty, ix = ix0 + tx;
            const bool inside = ty < D::IH && iy >= 0 && iy < H && ix >= 0 && ix < W;
            bp_store_u128(in_s + (half * DW::NPIX + pix) * 8,
                          bp_tc_gather8_nchw<T, L>(p, x, n, ci0 + 8 * half, iy, ix, inside));
        }
    } else {
        // NHWC where 16-byte copies do not apply (C % 8 ≠ 0 or x not 16-byte aligned): an
        // element at a time, consecutive threads consecutive channels.
        for (int e = threadIdx.x; e < DW::NPIX * BP_TC_KC; e += blockDim.x) {
            const int pix = e / BP_TC_KC, k = e % BP_TC_KC;
            const int ty = pix / DW::P, tx = pix % DW::P, iy = iy0 + ty, ix = ix0 + tx, ci = ci0 + k;
            unsigned short v = 0;
            if (ty < D::IH && iy >= 0 && iy < H && ix >= 0 && ix < W && ci < C)
                v = bp_ld(x + L::offset(n, ci, iy, ix, C, H, W)).bits;
            bp_st(in_s + ((k >> 3) * DW::NPIX + pix) * 8 + (k & 7), v);
        }
    }
    bp_cp_async_commit();
}

// w: the v4 packed weights (bp_pack_tc4_weights), 16-byte aligned. The launch gives
// bp_tcw_dims<F, TO>::SMEM_BYTES of dynamic shared memory and runs on sm_90a only.
template <typename T, typename L, int F, int TO>
__device__ __forceinline__ void bp_convblurpool_tcw_run(const BpParams p, const T *__restrict__ x,
                                                        const T *__restrict__ w, const T *__restrict__ b,
                                                        T *__restrict__ y) {
    using D = bp_tc_dims<F, TO>;
    using DW = bp_tcw_dims<F, TO>;
    BP_DYNAMIC_SHARED(smem, DW::SMEM_BYTES);
    unsigned short *stage_s = reinterpret_cast<unsigned short *>(smem); // two stages of DW::STAGE_HALVES
    float *map_s = reinterpret_cast<float *>(smem); // reuses the staging area once the conv is done
    const unsigned short *wp = reinterpret_cast<const unsigned short *>(w);

    const int C = (int)p.c;
    const int stages = (C + BP_TC_KC - 1) / BP_TC_KC;
    const long long tiles = bp_tc_tile_count<BP_TCW_COUT, TO>(p);
    const int wg = (int)threadIdx.x / 128; // this thread's warpgroup: m64 chunks wg, wg + 2
    const bool async_x = C % 8 == 0 && (reinterpret_cast<unsigned long long>(x) & 15) == 0;
    // The descriptors' strides: A's core matrices 8 pixels (128 bytes) apart along M, a channel
    // plane apart along K; B's 8 channels apart along N, a tap-half plane along K. Offsets added
    // to a descriptor are in 16-byte units (its address field): a pixel, or a weight row.
    constexpr unsigned A_LBO = DW::NPIX * 16, A_SBO = 128, B_LBO = BP_TCW_COUT * 16, B_SBO = 128;

    BP_BLOCK_STRIDE_LOOP(tile, tiles) {
        const bp_tc_tile tl = bp_tc_decode_tile<BP_TCW_COUT, TO>(p, tile, F);
        const int iy0 = tl.r0 - p.cpy, ix0 = tl.c0 - p.cpx;
        // The block's two 64-channel tiles of the packing; the second may lie past Cout.
        const unsigned short *wt = wp + (long long)(2 * tl.ct) * stages * BP_TC4_W_HALVES;
        const bool second_tile = tl.co0 + BP_TC4_COUT < (int)p.cout;

        float acc[D::CHUNKS][BP_TCW_COUT / 8][4];
#pragma unroll
        for (int ch = 0; ch < D::CHUNKS; ++ch)
#pragma unroll
            for (int nt = 0; nt < BP_TCW_COUT / 8; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[ch][nt][e] = 0.f;

        __syncthreads(); // the previous tile's blur is done with the map (it shares the buffers)
        bp_tcw_stage<T, L, F, TO>(p, x, tl.n, iy0, ix0, 0, stages, async_x, second_tile, wt, stage_s,
                                  stage_s + DW::IN_HALVES);
        for (int s = 0; s < stages; ++s) {
            bp_cp_async_wait_all();
            bp_fence_proxy_async(); // this thread's stage-s writes, before the wgmma reads them
            __syncthreads(); // stage s is in shared memory; everyone is done with stage s − 1
            if (s + 1 < stages) {
                unsigned short *next = stage_s + ((s + 1) & 1) * DW::STAGE_HALVES;
                bp_tcw_stage<T, L, F, TO>(p, x, tl.n, iy0, ix0, s + 1, stages, async_x, second_tile, wt, next,
                                          next + DW::IN_HALVES);
            }
            const unsigned short *in_s = stage_s + (s & 1) * DW::STAGE_HALVES;
            const unsigned short *w_s = in_s + DW::IN_HALVES;
            const unsigned long long a0 = bp_wgmma_desc(in_s + 64 * wg * 8, A_LBO, A_SBO);
            const unsigned long long b0 = bp_wgmma_desc(w_s, B_LBO, B_SBO);
#pragma unroll
            for (int ch = 0; ch < D::CHUNKS; ++ch) bp_wgmma_fence_operands(acc[ch]);
            bp_wgmma_fence();
#pragma unroll
            for (int tap = 0; tap < 9; ++tap) {
                // Tap (dy, dx): rows shift by dy·P + dx pixels (16 bytes each); the weights by a
                // tap's 2 × 128 rows.
                const unsigned a_tap = (tap / 3) * DW::P + tap % 3;
                const unsigned b_tap = tap * 2 * BP_TCW_COUT;
#pragma unroll
                for (int ch = 0; ch < D::CHUNKS; ++ch) // chunk 2·ch + wg: 128·ch pixels on
                    bp_wgmma_m64n128k16<T>(acc[ch], a0 + a_tap + 128 * ch, b0 + b_tap);
            }
            bp_wgmma_commit();
            bp_wgmma_wait_all();
#pragma unroll
            for (int ch = 0; ch < D::CHUNKS; ++ch) bp_wgmma_fence_operands(acc[ch]);
        }

        bp_tc_epilogue<T, L, F, BP_TCW_COUT, TO, DW::P>(p, acc, b, y, map_s, tl);
    }
}

// NAME, filter, output tile side.
#define BP_TCW_VARIANT(NAME, F, TO)                                                                        \
    template <typename T, typename L>                                                                      \
    __device__ __forceinline__ void NAME##_impl(const BpParams p, const T *__restrict__ x,                 \
                                                const T *__restrict__ w, const T *__restrict__ b,          \
                                                T *__restrict__ y) {                                       \
        bp_convblurpool_tcw_run<T, L, F, TO>(p, x, w, b, y);                                               \
    }                                                                                                      \
    BP_INSTANTIATE_HALF_TYPES_BOUNDED(NAME, 1)

// Outputs of 28, 14, 7 (as bp_convblurpool_tc_k3f3s2t7_v4) with 128 output channels a block.
BP_TCW_VARIANT(bp_convblurpool_tc_k3f3s2t7_wgmma, 3, 7)
