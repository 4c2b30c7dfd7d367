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
#include "common.cuh"

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

template <typename T> struct bp_tc_is_bf16 { static constexpr bool value = false; };
template <> struct bp_tc_is_bf16<bp_bf16> { static constexpr bool value = true; };

// d += A·B for one m16n8k16 fragment set (layout in emu/cpp/emu.h).
template <typename T>
__device__ __forceinline__ void bp_tc_mma(const unsigned (&a)[4], const unsigned (&b)[2], float (&d)[4]) {
#if defined(BP_HOST_EMULATION)
    bp_emu_mma_m16n8k16(bp_tc_is_bf16<T>::value, a, b, d);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    if constexpr (bp_tc_is_bf16<T>::value) {
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
        if (iy >= 0 && iy < H && ix >= 0 && ix < W && ci < C) v = x[L::offset(n, ci, iy, ix, C, H, W)].bits;
        in_s[pix * BP_TC_PIX + k] = v;
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
        if (co < CO && ci < C) v = w[((long long)co * C + ci) * 9 + tap].bits;
        w_s[(tap * BP_TC_COUT + nl) * BP_TC_PIX + k] = v;
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
    for (long long tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
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
                    if (p.has_bias && co0 + nl < CO) v += bp_to_f32(b[co0 + nl]);
                    map_s[m * D::MAP_STRIDE + nl] = bp_activate(v, p.act);
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
            float a = 0.f;
#pragma unroll
            for (int u = 0; u < F; ++u) {
                const long long r = bp_source_index(2LL * i + u - p.pad_top, p.hm, p.mode);
                if (r < 0) continue;
                const float *row = map_s + (int)(r - r0) * D::MH * D::MAP_STRIDE + nl;
#pragma unroll
                for (int v = 0; v < F; ++v) {
                    const long long q = bp_source_index(2LL * j + v - p.pad_left, p.wm, p.mode);
                    if (q < 0) continue;
                    a += p.ty[u] * p.tx[v] * row[(int)(q - c0) * D::MAP_STRIDE];
                }
            }
            y[L::offset(n, co0 + nl, i, j, CO, HO, WO)] = bp_from_f32<T>(a);
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
