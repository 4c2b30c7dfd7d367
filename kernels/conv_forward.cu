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

template <int F> struct bp_tc_dims {
    static constexpr int MH = (BP_TC_OUT - 1) * 2 + F; // map tile rows = columns
    static constexpr int M = MH * MH;                  // map tile pixels (GEMM rows)
    static constexpr int MCH = (M + 15) / 16;          // m16 chunks
    static constexpr int CHUNKS = (MCH + BP_TC_WARPS - 1) / BP_TC_WARPS; // per warp, at most
    static constexpr int IH = MH + 2;                  // input tile rows = columns (conv halo)
    static constexpr int MAP_STRIDE = BP_TC_COUT + 1;  // floats per map pixel
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
// them read only zero padding).
__device__ __forceinline__ int bp_tc_first_source(int o0, int n, int taps, int pad, long long len, int mode) {
    long long first = len;
    for (int l = 0; l < n; ++l)
        for (int u = 0; u < taps; ++u) {
            const long long s = bp_source_index(2LL * (o0 + l) + u - pad, len, mode);
            if (s >= 0 && s < first) first = s;
        }
    return first == len ? 0 : (int)first;
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

// The conv map tile in shared memory as the map the blur reads: rows from r0, columns from c0,
// channel nl of the block's 32 (the blur's stride is 2 here, as the plan requires).
template <int F>
struct bp_tc_tile_map {
    const float *map_s;
    int r0, c0, nl;
    __device__ __forceinline__ float operator()(const BpParams &, long long r, long long q) const {
        using D = bp_tc_dims<F>;
        return bp_ld(map_s + (((int)(r - r0) * D::MH + (int)(q - c0)) * D::MAP_STRIDE + nl));
    }
};

template <typename T, typename L, int F>
__device__ __forceinline__ void bp_convblurpool_tc_run(const BpParams p, const T *__restrict__ x,
                                                       const T *__restrict__ w, const T *__restrict__ b,
                                                       T *__restrict__ y) {
    using D = bp_tc_dims<F>;
    __shared__ bp_tc_smem<F> smem;
    unsigned short *in_s = reinterpret_cast<unsigned short *>(smem.f);
    unsigned short *w_s = in_s + D::IN_HALVES;
    float *map_s = smem.f; // reuses the staging area once the conv is done

    const int C = (int)p.c, CO = (int)p.cout, HO = (int)p.ho, WO = (int)p.wo;
    const long long tiles_y = (HO + BP_TC_OUT - 1) / BP_TC_OUT, tiles_x = (WO + BP_TC_OUT - 1) / BP_TC_OUT;
    const long long cout_tiles = (CO + BP_TC_COUT - 1) / BP_TC_COUT;
    const long long tiles = p.n * tiles_y * tiles_x * cout_tiles;
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

    // Consecutive tiles differ in output channels first, so blocks running together share
    // their input tile in L2.
    BP_BLOCK_STRIDE_LOOP(tile, tiles) {
        long long rest = tile;
        const int ct = (int)(rest % cout_tiles);
        rest /= cout_tiles;
        const int tx = (int)(rest % tiles_x);
        rest /= tiles_x;
        const int ty = (int)(rest % tiles_y);
        const long long n = rest / tiles_y;
        const int i0 = ty * BP_TC_OUT, j0 = tx * BP_TC_OUT, co0 = ct * BP_TC_COUT;
        const int ni = HO - i0 < BP_TC_OUT ? HO - i0 : BP_TC_OUT, nj = WO - j0 < BP_TC_OUT ? WO - j0 : BP_TC_OUT;
        const int r0 = bp_tc_first_source(i0, ni, F, p.pad_top, p.hm, p.mode);
        const int c0 = bp_tc_first_source(j0, nj, F, p.pad_left, p.wm, p.mode);

        float acc[D::CHUNKS][4][4];
#pragma unroll
        for (int ch = 0; ch < D::CHUNKS; ++ch)
#pragma unroll
            for (int nt = 0; nt < 4; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[ch][nt][e] = 0.f;

        for (int ci0 = 0; ci0 < C; ci0 += BP_TC_KC) {
            __syncthreads(); // everyone is done with the previous stage (or tile's map)
            bp_tc_stage_input<T, L, F>(p, x, n, r0 - p.cpy, c0 - p.cpx, ci0, vec8, in_s);
            bp_tc_stage_weights<T>(p, w, co0, ci0, w_s);
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

        __syncthreads(); // the map overwrites the staging area
#pragma unroll
        for (int ch = 0; ch < D::CHUNKS; ++ch) {
            if (warp + BP_TC_WARPS * ch >= D::MCH) break;
#pragma unroll
            for (int nt = 0; nt < 4; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int m = (warp + BP_TC_WARPS * ch) * 16 + g + (e >= 2 ? 8 : 0);
                    const int nl = nt * 8 + 2 * t + (e & 1);
                    if (m >= D::M) continue;
                    float v = acc[ch][nt][e];
                    if (p.has_bias && co0 + nl < CO) v += bp_to_f32(bp_ld(b + (co0 + nl)));
                    bp_st(map_s + (m * D::MAP_STRIDE + nl), bp_activate(v, p.act));
                }
        }
        __syncthreads();

        // Blur + subsample. Consecutive threads write consecutive addresses: output channels
        // (NHWC) or columns (NCHW).
        for (int o = threadIdx.x; o < BP_TC_OUT * BP_TC_OUT * BP_TC_COUT; o += blockDim.x) {
            int li, lj, nl;
            if (L::channels_last) {
                nl = o % BP_TC_COUT;
                lj = (o / BP_TC_COUT) % BP_TC_OUT;
                li = o / (BP_TC_COUT * BP_TC_OUT);
            } else {
                lj = o % BP_TC_OUT;
                li = (o / BP_TC_OUT) % BP_TC_OUT;
                nl = o / (BP_TC_OUT * BP_TC_OUT);
            }
            if (li >= ni || lj >= nj || co0 + nl >= CO) continue;
            const int i = i0 + li, j = j0 + lj;
            const bp_tc_tile_map<F> tile{map_s, r0, c0, nl};
            bp_st(y + L::offset(n, co0 + nl, i, j, CO, HO, WO), bp_from_f32<T>(bp_blur_at<F>(p, i, j, p.hm, p.wm, tile)));
        }
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
