// Shared helpers of every blurpool kernel: element types, the parameter block, layout indexing,
// blur padding, the max rule, the blur's taps (forward and adjoint), vector loads and stores,
// and the instantiation macros. Self-contained (no CUDA headers) so that the same text compiles
// with nvcc ahead of time, with NVRTC at run time and as C++ in the host emulator (emu/).
//
// The kernels are laid out by one rule: `<family>_<direction>.cu`, family `pool` (MaxPool2d,
// BlurPool2d, MaxBlurPool2d) or `conv` (ConvBlurPool2d, BlurConv2d), direction `forward` or
// `backward`, each file holding its versions in order (v1 general, v2 strip, v3 tensor core);
// a header holds only what more than one file uses (this one, and strip.cuh for the strip walk
// of pool_forward.cu and conv_forward.cu).
#pragma once

#define BP_MAX_TAPS 16

// Memory accesses. Every load from and store to global or shared memory goes through bp_ld /
// bp_st (a thread's private arrays excepted): on the GPU a plain access; in the host emulator
// (emu/) a plain access too, unless the performance model (model/) is tracing, when each one is
// recorded with its size and the source line that made it (BP_SITE: the caller's line, passed
// down by helpers such as bp_load_u32 so that each access is named where the kernel makes it).
// The model's hook test (model/tests/hooks.rs) runs every kernel with its buffers moved
// elsewhere and reachable only through these hooks, so an access that bypasses them is caught.
#ifdef BP_HOST_EMULATION
#define BP_SITE , unsigned bp_line = __builtin_LINE(), const char *bp_file = __builtin_FILE()
#define BP_SITE_ONLY unsigned bp_line = __builtin_LINE(), const char *bp_file = __builtin_FILE()
#define BP_SITE_FWD , bp_line, bp_file
#else
#define BP_SITE
#define BP_SITE_ONLY
#define BP_SITE_FWD
#endif

template <typename T> __device__ __forceinline__ T bp_ld(const T *at BP_SITE) {
#ifdef BP_HOST_EMULATION
    if (bp_emu_tracing) at = static_cast<const T *>(bp_emu_trace(at, sizeof(T), BP_EMU_LOAD, bp_file, bp_line));
    T v;
    std::memcpy(&v, at, sizeof(T));
    return v;
#else
    return *at;
#endif
}
template <typename T> __device__ __forceinline__ void bp_st(T *at, const T &v BP_SITE) {
#ifdef BP_HOST_EMULATION
    if (bp_emu_tracing) at = static_cast<T *>(const_cast<void *>(bp_emu_trace(at, sizeof(T), BP_EMU_STORE, bp_file, bp_line)));
    std::memcpy(at, &v, sizeof(T));
#else
    *at = v;
#endif
}

// A code path without memory accesses whose cost matters (a switch's cases): on the GPU nothing;
// in the emulator's trace mode a mark with the caller's line, so that the performance model
// counts that path's machine code as often as lanes took it (a block with no access otherwise
// takes the count of its loop's traced code, every case of a switch as if each ran).
__device__ __forceinline__ void bp_mark(BP_SITE_ONLY) {
#ifdef BP_HOST_EMULATION
    if (bp_emu_tracing) bp_emu_trace(nullptr, 0, BP_EMU_MARK, bp_file, bp_line);
#endif
}

// Pad modes and activations: the numbers of `PadMode` and `Activation` in src/ops.rs (and of
// blurpool_pad_mode / blurpool_activation in the C ABI).
#define BP_PAD_ZERO 0
#define BP_PAD_REFLECT 1
#define BP_PAD_REPLICATE 2
#define BP_ACT_IDENTITY 0
#define BP_ACT_RELU 1
#define BP_ACT_RELU6 2

// One parameter block for every operator, passed by value. Field order and types are mirrored
// by `BpParams` in src/cuda/params.rs (368 bytes, no implicit padding). Spatial extents,
// windows, strides, paddings and padded extents are below 2^31 and every tensor has fewer than
// 2^53 elements (checked on the host: MAX_EXTENT and MAX_ELEMENTS in src/ops.rs, and
// src/cuda/params.rs), so per-axis arithmetic may use int and linear indices long long.
struct BpParams {
    long long n, c, h, w;   // input extents
    long long cout, ho, wo; // output extents (cout == c for pooling)
    long long hm, wm;       // the map the blur reads: max map, conv map, blurred map, or the input
    long long total;        // n * cout * ho * wo
    long long total_in;     // n * c * h * w (backward: one thread per input-gradient element)
    long long total_map;    // n * cout * hm * wm (backward: the conv map's gradient)
    double rcp_cout, rcp_ho, rcp_wo; // 1/cout, 1/ho, 1/wo: index splitting without 64-bit division
    double rcp_c, rcp_h, rcp_w, rcp_hm, rcp_wm; // the same for the input and the map
    int mkh, mkw, mpy, mpx; // dense max window and its (-inf) padding
    int fy, fx, pad_top, pad_left, mode, sy, sx; // blur taps, leading padding, pad mode, strides
    int ckh, ckw, cpy, cpx, groups, act, has_bias, csy, csx; // convolution
    float ty[BP_MAX_TAPS];  // effective vertical weights (already normalised when asked)
    float tx[BP_MAX_TAPS];  // effective horizontal weights
};
static_assert(sizeof(BpParams) == 368, "BpParams layout must match src/cuda/params.rs");

// Storage types for the half formats: raw bits, converted explicitly so no header is needed.
struct bp_f16 { unsigned short bits; };
struct bp_bf16 { unsigned short bits; };

__device__ __forceinline__ float bp_to_f32(float v) { return v; }
__device__ __forceinline__ float bp_to_f32(bp_f16 v) {
#ifdef BP_HOST_EMULATION
    return bp_emu_f16_to_f32(v.bits);
#else
    float r;
    asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(v.bits));
    return r;
#endif
}
__device__ __forceinline__ float bp_to_f32(bp_bf16 v) {
    return __uint_as_float(((unsigned int)v.bits) << 16);
}

template <typename T> struct bp_is_bf16 { static constexpr bool value = false; };
template <> struct bp_is_bf16<bp_bf16> { static constexpr bool value = true; };

template <typename T> __device__ __forceinline__ T bp_from_f32(float v);
template <> __device__ __forceinline__ float bp_from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ bp_f16 bp_from_f32<bp_f16>(float v) {
    bp_f16 r;
#ifdef BP_HOST_EMULATION
    r.bits = bp_emu_f32_to_f16(v);
#else
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.bits) : "f"(v));
#endif
    return r;
}
// Round to nearest even, NaN kept quiet; written out so it needs no sm_80 instruction.
template <> __device__ __forceinline__ bp_bf16 bp_from_f32<bp_bf16>(float v) {
    unsigned int u = __float_as_uint(v);
    bp_bf16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        r.bits = (unsigned short)((u >> 16) | 0x40u);
    } else {
        u += 0x7fffu + ((u >> 16) & 1u);
        r.bits = (unsigned short)(u >> 16);
    }
    return r;
}

// q = a / d, r = a % d for 0 <= a < 2^53 without a 64-bit integer division (a subroutine call
// whose calling convention made ptxas spill): estimate with the host-computed reciprocal in
// double precision, which is off by at most one, then correct.
__device__ __forceinline__ void bp_divmod(long long a, long long d, double rcp, long long &q, long long &r) {
    long long qq = (long long)((double)a * rcp);
    long long rr = a - qq * d;
    if (rr < 0) { --qq; rr += d; } else if (rr >= d) { ++qq; rr -= d; }
    q = qq;
    r = rr;
}

// Extents of one tensor with the reciprocals its index split needs.
struct bp_extents {
    long long C, H, W;
    double rC, rH, rW;
};
__device__ __forceinline__ bp_extents bp_output_extents(const BpParams &p) {
    return {p.cout, p.ho, p.wo, p.rcp_cout, p.rcp_ho, p.rcp_wo};
}
__device__ __forceinline__ bp_extents bp_input_extents(const BpParams &p) {
    return {p.c, p.h, p.w, p.rcp_c, p.rcp_h, p.rcp_w};
}
__device__ __forceinline__ bp_extents bp_map_extents(const BpParams &p) {
    return {p.cout, p.hm, p.wm, p.rcp_cout, p.rcp_hm, p.rcp_wm};
}

// Layout tags: offset of element (n, c, y, x) in a contiguous tensor of extents (C, H, W), and
// the split of a linear index in that tensor's own order (so consecutive threads touch
// consecutive addresses: NCHW columns, NHWC channels).
struct bp_nchw {
    static constexpr bool channels_last = false;
    // Elements between horizontally adjacent pixels of one channel.
    static __device__ __forceinline__ long long col_stride(long long) { return 1; }
    static __device__ __forceinline__ long long offset(long long n, long long c, long long y, long long x,
                                                       long long C, long long H, long long W) {
        return ((n * C + c) * H + y) * W + x;
    }
    static __device__ __forceinline__ void split_in(long long idx, const bp_extents &e, long long &n, long long &c,
                                                    long long &y, long long &x) {
        bp_divmod(idx, e.W, e.rW, idx, x);
        bp_divmod(idx, e.H, e.rH, idx, y);
        bp_divmod(idx, e.C, e.rC, n, c);
    }
    // Splits a linear output index into (n, c, y, x).
    static __device__ __forceinline__ void split(long long idx, const BpParams &p, long long &n, long long &c,
                                                 long long &y, long long &x) {
        split_in(idx, bp_output_extents(p), n, c, y, x);
    }
};
struct bp_nhwc {
    static constexpr bool channels_last = true;
    static __device__ __forceinline__ long long col_stride(long long C) { return C; }
    static __device__ __forceinline__ long long offset(long long n, long long c, long long y, long long x,
                                                       long long C, long long H, long long W) {
        return ((n * H + y) * W + x) * C + c;
    }
    static __device__ __forceinline__ void split_in(long long idx, const bp_extents &e, long long &n, long long &c,
                                                    long long &y, long long &x) {
        bp_divmod(idx, e.C, e.rC, idx, c);
        bp_divmod(idx, e.W, e.rW, idx, x);
        bp_divmod(idx, e.H, e.rH, n, y);
    }
    static __device__ __forceinline__ void split(long long idx, const BpParams &p, long long &n, long long &c,
                                                 long long &y, long long &x) {
        split_in(idx, bp_output_extents(p), n, c, y, x);
    }
};

// Maps a padded coordinate into 0..len, or -1 for a zero-padded cell. Reflect assumes the
// overhang is < len (validated on the host, as PyTorch's ReflectionPad2d requires). I: long
// long, or int where the host has checked the extent below 2^30 (then 2·(len − 1) and every
// padded coordinate within a filter's reach fit 32 bits: the tensor-core kernels' map).
template <typename I> __device__ __forceinline__ I bp_source_index_in(I i, I len, int mode) {
    if (i >= 0 && i < len) return i;
    if (mode == BP_PAD_ZERO) return -1;
    if (mode == BP_PAD_REPLICATE) return i < 0 ? 0 : len - 1;
    return i < 0 ? -i : 2 * (len - 1) - i;
}
__device__ __forceinline__ long long bp_source_index(long long i, long long len, int mode) {
    return bp_source_index_in<long long>(i, len, mode);
}
// In 32 bits: the tensor-core epilogue (src/cuda/plan.rs tensor_core_kernel checks its map's
// extents below 2^30).
__device__ __forceinline__ int bp_source_index32(int i, int len, int mode) {
    return bp_source_index_in<int>(i, len, mode);
}

__device__ __forceinline__ float bp_activate(float v, int act) {
    // Comparisons are false for NaN, so NaN passes through as in PyTorch.
    if (act == BP_ACT_RELU) return v < 0.f ? 0.f : v;
    if (act == BP_ACT_RELU6) return v < 0.f ? 0.f : (v > 6.f ? 6.f : v);
    return v;
}

// bp_activate as two clamps worked out once for many values (no branch on `act` per value, so
// the tensor-core epilogue's 128 accumulators a thread stay straight-line code): lo = 0 for
// ReLU and ReLU6, else −inf; hi = 6 for ReLU6, else +inf. The same results: a comparison with
// NaN is false (NaN passes), −0 < 0 is false (−0 stays), and ±inf never passes ∓inf.
struct bp_act_clamp {
    float lo, hi;
};
__device__ __forceinline__ bp_act_clamp bp_act_bounds(int act) {
    const float inf = __int_as_float(0x7f800000);
    return {act == BP_ACT_RELU || act == BP_ACT_RELU6 ? 0.f : -inf, act == BP_ACT_RELU6 ? 6.f : inf};
}
__device__ __forceinline__ float bp_activate(float v, bp_act_clamp c) {
    v = v < c.lo ? c.lo : v;
    return v > c.hi ? c.hi : v;
}

// PyTorch's max_pool2d step: `v > best || isnan(v)` (a NaN wins, and among equal maxima the first
// one scanned stays).
__device__ __forceinline__ float bp_max_step(float best, float v) { return (v > best || v != v) ? v : best; }

// PyTorch's max_pool2d rule: row-major scan with bp_max_step, padding never wins.
template <typename T, typename L>
__device__ __forceinline__ float bp_window_max(const T *__restrict__ x, const BpParams &p, long long n,
                                               long long c, long long r, long long q) {
    float best = __int_as_float(0xff800000); // -inf
    for (int a = 0; a < p.mkh; ++a) {
        long long y = r + a - p.mpy;
        if (y < 0 || y >= p.h) continue;
        for (int b = 0; b < p.mkw; ++b) {
            long long xx = q + b - p.mpx;
            if (xx < 0 || xx >= p.w) continue;
            best = bp_max_step(best, bp_to_f32(bp_ld(x + L::offset(n, c, y, xx, p.c, p.h, p.w))));
        }
    }
    return best;
}

// The blur at output (i, j) of a map with extents (hm, wm): Σ_u Σ_v ty[u]·tx[v]·map(p, r_u, q_v)
// over the source cells r_u = source(i·sy + u − pad_top), q_v = source(j·sx + v − pad_left),
// skipping zero-padded ones, in this fixed order (every general kernel sums the same way).
// `map` is a small functor (pointers and indices; the parameter block comes in as an argument
// and is never stored: taking its address makes nvcc copy all of it to local memory).
// F > 0: the filter has F × F taps (known at compile time, so the loops unroll); F = 0: read
// the sizes from the parameter block.
template <int F = 0, typename Map>
__device__ __forceinline__ float bp_blur_at(const BpParams &p, long long i, long long j, long long hm, long long wm,
                                            const Map &map) {
    const int fy = F > 0 ? F : p.fy, fx = F > 0 ? F : p.fx;
    float acc = 0.f;
#pragma unroll
    for (int u = 0; u < fy; ++u) {
        const long long r = bp_source_index(i * p.sy + u - p.pad_top, hm, p.mode);
        if (r < 0) continue;
#pragma unroll
        for (int v = 0; v < fx; ++v) {
            const long long q = bp_source_index(j * p.sx + v - p.pad_left, wm, p.mode);
            if (q < 0) continue;
            acc += p.ty[u] * p.tx[v] * map(p, r, q);
        }
    }
    return acc;
}

// A map that is a tensor in memory (extents C, hm, wm in layout L): BlurPool2d's input, the
// unfused path's max map.
template <typename T, typename L>
struct bp_tensor_map {
    const T *__restrict__ x;
    long long n, c;
    __device__ __forceinline__ float operator()(const BpParams &p, long long r, long long q) const {
        return bp_to_f32(bp_ld(x + L::offset(n, c, r, q, p.c, p.hm, p.wm)));
    }
};

// The blur's adjoint along one axis. Padded coordinates are int: the host proves every padded
// extent (map + padding) is below 2^31 (Blur::output_len in src/ops.rs). The padded coordinates whose source (bp_source_index) is
// r on an axis of length len come in up to three runs: r itself; below 0, its mirror -r
// (reflect) or the whole leading pad when r == 0 (replicate); beyond len - 1, its mirror
// 2(len-1) - r (reflect) or the whole trailing pad when r == len - 1 (replicate). Run k of them
// is [lo, hi] (empty when lo > hi). Plain loops rather than callbacks: a lambda capturing the
// parameter block by reference made nvcc copy it to local memory.
__device__ __forceinline__ void bp_adjoint_run(int k, int r, int len, int pad0, int s, int nf, int nout, int mode,
                                               int &lo, int &hi) {
    lo = 1;
    hi = 0;
    if (k == 0) {
        lo = hi = r;
    } else if (mode == BP_PAD_REFLECT) {
        if (k == 1 && r > 0) lo = hi = -r;
        if (k == 2 && r < len - 1) lo = hi = 2 * (len - 1) - r;
    } else if (mode == BP_PAD_REPLICATE) {
        if (k == 1 && r == 0) {
            lo = -pad0;
            hi = -1;
        }
        if (k == 2 && r == len - 1) {
            lo = len;
            hi = (nout - 1) * s + nf - 1 - pad0; // the last padded cell any output reads
        }
    }
}

// Output index i of the tap u that reads padded coordinate pc (i*s + u - pad0 == pc), or -1.
__device__ __forceinline__ int bp_adjoint_output(int pc, int u, int pad0, int s, int nout) {
    int t = pc + pad0 - u;
    if (t < 0 || t % s != 0) return -1;
    int i = t / s;
    return i < nout ? i : -1;
}

// Gradient of the blurred-and-subsampled map's source at (r, q) (a cell of the map the blur
// reads, extents hm × wm): sum over the outputs (i, j) and taps that read it of
// ty·tx·dy[n, c, i, j]; dy has the output's extents (cout, ho, wo). Fixed visiting order.
template <typename T, typename L>
__device__ __forceinline__ float bp_blur_adjoint(const BpParams &p, const T *__restrict__ dy, long long n,
                                                 long long c, int r, int q) {
    const int hm = (int)p.hm, wm = (int)p.wm, ho = (int)p.ho, wo = (int)p.wo;
    float acc = 0.f;
    for (int ky = 0; ky < 3; ++ky) {
        int ylo, yhi;
        bp_adjoint_run(ky, r, hm, p.pad_top, p.sy, p.fy, ho, p.mode, ylo, yhi);
        for (int pcy = ylo; pcy <= yhi; ++pcy) {
            for (int u = 0; u < p.fy; ++u) {
                const int i = bp_adjoint_output(pcy, u, p.pad_top, p.sy, ho);
                if (i < 0) continue;
                for (int kx = 0; kx < 3; ++kx) {
                    int xlo, xhi;
                    bp_adjoint_run(kx, q, wm, p.pad_left, p.sx, p.fx, wo, p.mode, xlo, xhi);
                    for (int pcx = xlo; pcx <= xhi; ++pcx) {
                        for (int v = 0; v < p.fx; ++v) {
                            const int j = bp_adjoint_output(pcx, v, p.pad_left, p.sx, wo);
                            if (j < 0) continue;
                            acc += p.ty[u] * p.tx[v] * bp_to_f32(bp_ld(dy + L::offset(n, c, i, j, p.cout, p.ho, p.wo)));
                        }
                    }
                }
            }
        }
    }
    return acc;
}

// Vector loads and stores through the hooks above, for the callers' lines; in host emulation
// the alignment the GPU would require is checked first.
__device__ __forceinline__ unsigned int bp_load_u32(const void *at BP_SITE) {
#ifdef BP_HOST_EMULATION
    bp_emu_check_aligned(at, 4);
#endif
    return bp_ld(static_cast<const unsigned int *>(at) BP_SITE_FWD);
}
__device__ __forceinline__ void bp_store_u32(void *at, unsigned int v BP_SITE) {
#ifdef BP_HOST_EMULATION
    bp_emu_check_aligned(at, 4);
#endif
    bp_st(static_cast<unsigned int *>(at), v BP_SITE_FWD);
}

// 16 bytes, e.g. 8 f16/bf16 channels (the address must be 16-byte aligned).
struct alignas(16) bp_u128 {
    unsigned int v[4];
};
__device__ __forceinline__ bp_u128 bp_load_u128(const void *at BP_SITE) {
#ifdef BP_HOST_EMULATION
    bp_emu_check_aligned(at, 16);
#endif
    return bp_ld(static_cast<const bp_u128 *>(at) BP_SITE_FWD);
}
__device__ __forceinline__ void bp_store_u128(void *at, const bp_u128 &v BP_SITE) {
#ifdef BP_HOST_EMULATION
    bp_emu_check_aligned(at, 16);
#endif
    bp_st(static_cast<bp_u128 *>(at), v BP_SITE_FWD);
}

// 8 bytes, e.g. 4 f16/bf16 channels (the address must be 8-byte aligned).
struct alignas(8) bp_u64 {
    unsigned int v[2];
};
__device__ __forceinline__ bp_u64 bp_load_u64(const void *at BP_SITE) {
#ifdef BP_HOST_EMULATION
    bp_emu_check_aligned(at, 8);
#endif
    return bp_ld(static_cast<const bp_u64 *>(at) BP_SITE_FWD);
}
__device__ __forceinline__ void bp_store_u64(void *at, const bp_u64 &v BP_SITE) {
#ifdef BP_HOST_EMULATION
    bp_emu_check_aligned(at, 8);
#endif
    bp_st(static_cast<bp_u64 *>(at), v BP_SITE_FWD);
}

// ---- Warp shuffles for code that assumes no convergence (bp_strip4_span::load_near) -------
// bp_activemask(): the lanes running this call together; bp_shfl_up / bp_shfl_down: lane l gets
// lane l − 1's / l + 1's value (its own at the warp's ends) over `mask`, which must be such a
// set (every lane of it calls the same shuffle). A source lane outside the mask gives an
// undefined value, so callers check the mask. In host emulation they go to the emulator (emu.h:
// in trace mode a shuffle is one shared-memory wavefront at the caller's line).
__device__ __forceinline__ unsigned bp_activemask(BP_SITE_ONLY) {
#ifdef BP_HOST_EMULATION
    return bp_emu_activemask(bp_line, bp_file);
#else
    return __activemask();
#endif
}
__device__ __forceinline__ unsigned bp_shfl_up(unsigned mask, unsigned v BP_SITE) {
#ifdef BP_HOST_EMULATION
    return bp_emu_shfl(mask, v, BP_EMU_SHFL_UP, 1, bp_line, bp_file);
#else
    return __shfl_up_sync(mask, v, 1);
#endif
}
__device__ __forceinline__ unsigned bp_shfl_down(unsigned mask, unsigned v BP_SITE) {
#ifdef BP_HOST_EMULATION
    return bp_emu_shfl(mask, v, BP_EMU_SHFL_DOWN, 1, bp_line, bp_file);
#else
    return __shfl_down_sync(mask, v, 1);
#endif
}

// NAME: a 16-byte aligned `unsigned char *` to the block's dynamic shared memory, of which the
// kernel uses BYTES; the launch must give at least that (its sharedMemBytes: src/cuda/plan.rs
// LaunchPlan::shared_bytes). The emulator hands out the launch's buffer, poisoned, and fails a
// launch that gave less than BYTES.
#ifdef BP_HOST_EMULATION
#define BP_DYNAMIC_SHARED(NAME, BYTES) unsigned char *NAME = static_cast<unsigned char *>(bp_emu_dynamic_shared(BYTES))
#else
#define BP_DYNAMIC_SHARED(NAME, BYTES)                                                                 \
    extern __shared__ __align__(16) unsigned char bp_dynamic_smem[];                                   \
    unsigned char *NAME = bp_dynamic_smem
#endif

// ---- Shared-memory staging of the tensor-core v4 kernel ----------------------------------
// 32-bit shared-memory address of a pointer into shared memory (what ldmatrix / cp.async take).
#ifndef BP_HOST_EMULATION
__device__ __forceinline__ unsigned bp_shared_addr(const void *p) {
    return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
#endif

// ldmatrix .x4 (sm_75+): four 8×8 matrices of 16-bit elements from shared memory; lane l gives
// the address of row l % 8 of matrix l / 8 and receives r[j], the pair of row l / 4, columns
// 2·(l % 4) and 2·(l % 4) + 1 of matrix j (emu/cpp/emu.h has the same layout).
__device__ __forceinline__ void bp_ldmatrix_x4(const void *row, unsigned (&r)[4] BP_SITE) {
#if defined(BP_HOST_EMULATION)
    bp_emu_ldmatrix_x4(row, r, bp_line, bp_file);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(bp_shared_addr(row))
                 : "memory");
#else
    __trap(); // the host launches the kernels that use it on sm_80+ only
#endif
}

// cp.async of 16 bytes global → shared (sm_80+), bypassing L1 (.cg); `valid` false writes 16
// zero bytes and reads nothing (src-size 0; `src` must still be a valid address). The copies
// land at bp_cp_async_wait_all(); then a __syncthreads() makes them visible to the block.
__device__ __forceinline__ void bp_cp_async16(void *dst, const void *src, bool valid BP_SITE) {
#if defined(BP_HOST_EMULATION)
    bp_emu_cp_async16(dst, src, valid, bp_line, bp_file);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(bp_shared_addr(dst)), "l"(src),
                 "r"(valid ? 16 : 0)
                 : "memory");
#else
    __trap();
#endif
}
// Closes the thread's group of copies issued so far.
__device__ __forceinline__ void bp_cp_async_commit() {
#if !defined(BP_HOST_EMULATION) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}
// Waits until every copy this thread issued has landed.
__device__ __forceinline__ void bp_cp_async_wait_all() {
#if defined(BP_HOST_EMULATION)
    bp_emu_cp_async_wait_all();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_all;" ::: "memory");
#endif
}

// ---- wgmma (sm_90a): the warpgroup mma of the tensor-core v4 wgmma kernel ----------------
// Built only where nvcc compiles for sm_90a (__CUDA_ARCH_FEAT_SM90_ALL: the fatbin's arch 90
// image, build/nvcc.rs); elsewhere they trap, and the host plans the kernel only on a module
// that has them (src/cuda/module.rs). In host emulation they go to the emulator (emu/cpp/emu.h
// has their semantics: operands read at the wait, misuse reported).
#if !defined(BP_HOST_EMULATION) && defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define BP_WGMMA 1
#else
#define BP_WGMMA 0
#endif

// The matrix descriptor of an operand in shared memory in the no-swizzle canonical layout:
// element (r, k) at `at` + (r / 8)·sbo + (k / 8)·lbo + (r % 8)·16 + (k % 8)·2 bytes (`at` and
// both offsets multiples of 16 bytes, the address below 256 KB).
__device__ __forceinline__ unsigned long long bp_wgmma_desc(const void *at, unsigned lbo, unsigned sbo) {
#if defined(BP_HOST_EMULATION)
    const unsigned addr = bp_emu_shared_address(at);
#else
    const unsigned addr = bp_shared_addr(at);
#endif
    return (unsigned long long)(addr >> 4 & 0x3fffu) | (unsigned long long)(lbo >> 4 & 0x3fffu) << 16 |
           (unsigned long long)(sbo >> 4 & 0x3fffu) << 32;
}

// Orders this thread's earlier shared-memory writes (stores, landed cp.async) before later
// reads of the async proxy (wgmma's operand reads): each writing thread runs it, then a
// barrier. The emulator has no proxies (nothing to order).
__device__ __forceinline__ void bp_fence_proxy_async() {
#if BP_WGMMA
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#endif
}

// wgmma.fence: before a warpgroup's first wgmma and after touching its accumulators.
__device__ __forceinline__ void bp_wgmma_fence() {
#if defined(BP_HOST_EMULATION)
    bp_emu_wgmma_fence();
#elif BP_WGMMA
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#else
    __trap();
#endif
}

// wgmma.commit_group: the wgmma issued so far become a group.
__device__ __forceinline__ void bp_wgmma_commit() {
#if defined(BP_HOST_EMULATION)
    bp_emu_wgmma_commit();
#elif BP_WGMMA
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
#else
    __trap();
#endif
}

// wgmma.wait_group 0: every group issued so far has completed (its accumulators written).
__device__ __forceinline__ void bp_wgmma_wait_all() {
#if defined(BP_HOST_EMULATION)
    bp_emu_wgmma_wait(0);
#elif BP_WGMMA
    asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
#else
    __trap();
#endif
}

// Keeps the compiler from moving reads or writes of the accumulators across the wgmma calls
// around it (the asm statements above do not name them): an empty volatile asm that "changes"
// each one, as CUTLASS's warpgroup_fence_operand does.
__device__ __forceinline__ void bp_wgmma_fence_operands(float (&d)[16][4]) {
#if !defined(BP_HOST_EMULATION)
#pragma unroll
    for (int j = 0; j < 16; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(d[j][e])::"memory");
#endif
}

// d (64 × 128, f32: this thread's 64 accumulators as 16 n8 blocks × 4, the layout of mma.sync's
// D fragments: emu/cpp/emu.h) += A (64 × 16) · B (128 × 16)ᵀ, both K-major f16 or bf16 in shared
// memory (descriptors: bp_wgmma_desc). Asynchronous: it completes at a bp_wgmma_wait_all after
// the bp_wgmma_commit that closes its group.
#define BP_WGMMA_D4(j) "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3])
#define BP_WGMMA_ASM(TY)                                                                                   \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"                                              \
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY "\n"                             \
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,\n"                                                                                  \
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63},\n"                                                                                 \
                 "%64, %65, p, 1, 1, 0, 0;\n}\n"                                                          \
                 : BP_WGMMA_D4(0), BP_WGMMA_D4(1), BP_WGMMA_D4(2), BP_WGMMA_D4(3), BP_WGMMA_D4(4),          \
                   BP_WGMMA_D4(5), BP_WGMMA_D4(6), BP_WGMMA_D4(7), BP_WGMMA_D4(8), BP_WGMMA_D4(9),          \
                   BP_WGMMA_D4(10), BP_WGMMA_D4(11), BP_WGMMA_D4(12), BP_WGMMA_D4(13), BP_WGMMA_D4(14),     \
                   BP_WGMMA_D4(15)                                                                         \
                 : "l"(da), "l"(db)                                                                        \
                 : "memory")
template <typename T>
__device__ __forceinline__ void bp_wgmma_m64n128k16(float (&d)[16][4], unsigned long long da,
                                                    unsigned long long db BP_SITE) {
#if defined(BP_HOST_EMULATION)
    bp_emu_wgmma_m64k16(bp_is_bf16<T>::value, 128, da, db, &d[0][0], true, bp_line, bp_file);
#elif BP_WGMMA
    if constexpr (bp_is_bf16<T>::value)
        BP_WGMMA_ASM("bf16");
    else
        BP_WGMMA_ASM("f16");
#else
    __trap();
#endif
}
#undef BP_WGMMA_ASM
#undef BP_WGMMA_D4

// ---- 16-byte element vectors (the v4 kernels) ---------------------------------------------
// A bp_u128 holds bp_vec_elems<T> elements: 8 f16/bf16 or 4 f32, in memory order (element k of
// a half vector in bits 16·(k mod 2) of word k/2).
template <typename T> constexpr int bp_vec_elems = (int)(16 / sizeof(T));

// The larger of two elements' bits with a NaN operand winning (IEEE 754-2019 maximum: a NaN
// gives the canonical quiet NaN, +0 > −0): PTX max.NaN on sm_80+, this scalar form before it
// and in the host emulator. It keeps PyTorch's max_pool2d value rule (bp_max_step: a NaN wins,
// otherwise the largest value); only the NaN's payload and the sign of an all-zero window's
// maximum may differ, and the blur that follows makes both invisible (a NaN sum, a zero).
template <typename T> __device__ __forceinline__ unsigned bp_max_nan_bits(unsigned a, unsigned b) {
    float fa, fb;
    if constexpr (sizeof(T) == 4) {
        fa = __uint_as_float(a);
        fb = __uint_as_float(b);
    } else {
        fa = bp_to_f32(T{(unsigned short)a});
        fb = bp_to_f32(T{(unsigned short)b});
    }
    const unsigned qnan = sizeof(T) == 4 ? 0x7fffffffu : 0x7fffu;
    if (fa != fa || fb != fb) return qnan;
    if (fa == fb) return (a & b); // equal values: the same bits, or ±0 where +0 (sign bit clear) wins
    return fa > fb ? a : b;
}

// Element-wise max-with-NaN of two 32-bit words (2 halves or 1 float) and of two vectors: one
// instruction per word on sm_80+ (max.NaN.f16x2, max.NaN.bf16x2, max.NaN.f32).
template <typename T> __device__ __forceinline__ unsigned bp_word_max_nan(unsigned a, unsigned b) {
    unsigned r;
#if !defined(BP_HOST_EMULATION) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    if constexpr (sizeof(T) == 4) {
        asm("max.NaN.f32 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    } else if constexpr (bp_is_bf16<T>::value) {
        asm("max.NaN.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    } else {
        asm("max.NaN.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    }
#else
    if constexpr (sizeof(T) == 4) {
        r = bp_max_nan_bits<T>(a, b);
    } else {
        const unsigned lo = bp_max_nan_bits<T>(a & 0xffffu, b & 0xffffu);
        const unsigned hi = bp_max_nan_bits<T>(a >> 16, b >> 16);
        r = lo | (hi << 16);
    }
#endif
    return r;
}
template <typename T> __device__ __forceinline__ bp_u128 bp_vec_max_nan(const bp_u128 &a, const bp_u128 &b) {
    bp_u128 r;
#pragma unroll
    for (int w = 0; w < 4; ++w) r.v[w] = bp_word_max_nan<T>(a.v[w], b.v[w]);
    return r;
}

// −inf in every element of a word (the max's padding).
template <typename T> __device__ __forceinline__ unsigned bp_word_neg_inf() {
    return sizeof(T) == 4 ? 0xff800000u : (bp_is_bf16<T>::value ? 0xff80ff80u : 0xfc00fc00u);
}

// A vector's elements as f32, and f32 values rounded into a vector.
template <typename T> __device__ __forceinline__ void bp_vec_to_f32(const bp_u128 &v, float (&out)[bp_vec_elems<T>]) {
#pragma unroll
    for (int k = 0; k < bp_vec_elems<T>; ++k) {
        if constexpr (sizeof(T) == 4) {
            out[k] = __uint_as_float(v.v[k]);
        } else {
            out[k] = bp_to_f32(T{(unsigned short)(v.v[k / 2] >> (16 * (k % 2)))});
        }
    }
}
template <typename T> __device__ __forceinline__ bp_u128 bp_vec_from_f32(const float (&in)[bp_vec_elems<T>]) {
    bp_u128 r;
#pragma unroll
    for (int w = 0; w < 4; ++w) {
        if constexpr (sizeof(T) == 4) {
            r.v[w] = __float_as_uint(in[w]);
        } else {
            r.v[w] = (unsigned)bp_from_f32<T>(in[2 * w]).bits | ((unsigned)bp_from_f32<T>(in[2 * w + 1]).bits << 16);
        }
    }
    return r;
}

// The work loops. Grid-stride: one thread per work item; block-stride: one block per work item
// (tiles, reductions). BP_LOOP_ADMIT is true on the GPU; the emulator's trace mode uses it to
// run a sample of each thread's iterations and to count the work items (model/).
#ifdef BP_HOST_EMULATION
#define BP_LOOP_ADMIT(per_block, total) bp_emu_loop_admit(per_block, total)
#else
#define BP_LOOP_ADMIT(per_block, total) true
#endif
#define BP_GRID_STRIDE_LOOP(idx, total)                                                                      \
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;                                   \
         idx < (total) && BP_LOOP_ADMIT(false, (total)); idx += (long long)gridDim.x * blockDim.x)
#define BP_BLOCK_STRIDE_LOOP(idx, total)                                                                     \
    for (long long idx = blockIdx.x; idx < (total) && BP_LOOP_ADMIT(true, (total)); idx += gridDim.x)

// Host emulation (emu/, tests only) registers every entry point under its symbol name (with
// BP_EMU_PREFIX in front: the gates' deliberately broken variants, emu/cpp/variants.cpp), and
// needs no C linkage for them, so that a second copy of a kernel can live in a namespace.
#ifdef BP_HOST_EMULATION
#define BP_EXTERN_C
#ifndef BP_EMU_PREFIX
#define BP_EMU_PREFIX ""
#endif
#define BP_EMU_REGISTER(SYM, T)                                                                      \
    static bp_emu_registrar SYM##_registrar(BP_EMU_PREFIX #SYM, [](const void *p, const void *a, const void *b, \
                                                     const void *c, const void *d, void *o) {       \
        SYM(*(const BpParams *)p, (const T *)a, (const T *)b, (const T *)c, (const T *)d, (T *)o);   \
    });
#else
#define BP_EXTERN_C extern "C"
#define BP_EMU_REGISTER(SYM, T)
#endif

// Instantiates `extern "C"` entry points NAME_<dtype>_<layout> of a kernel template. Every
// kernel takes the parameter block and five pointers (four inputs, one output), so one launch
// path serves them all; symbol names are built the same way in src/cuda.
// Forward kernels: NAME_impl<T, L>(p, x, weight, bias, y) (the fourth input is unused).
#define BP_INSTANTIATE_ONE(NAME, T, TN, L, LN) BP_INSTANTIATE_ONE_BOUNDED(NAME, T, TN, L, LN, )
// BOUNDS: empty, or __launch_bounds__(...) (BP_BOUNDS) to cap the kernel's registers.
#define BP_INSTANTIATE_ONE_BOUNDED(NAME, T, TN, L, LN, BOUNDS)                               \
    BP_EXTERN_C __global__ void BOUNDS                           \
        NAME##_##TN##_##LN(const BpParams p, const T *__restrict__ x,                     \
                           const T *__restrict__ w, const T *__restrict__ b, const T *, T *__restrict__ y) { \
        NAME##_impl<T, L>(p, x, w, b, y);                                                 \
    }                                                                                     \
    BP_EMU_REGISTER(NAME##_##TN##_##LN, T)
// Backward kernels: NAME_impl<T, L>(p, a, b, c, d, out) with untyped pointers, because some
// of their buffers are the f32 workspace rather than T; each kernel documents its roles.
#define BP_INSTANTIATE_BWD_ONE(NAME, T, TN, L, LN)                                                          \
    BP_EXTERN_C __global__ void NAME##_##TN##_##LN(const BpParams p, const void *a, const void *b, const void *c, \
                                                  const void *d, void *out) {                              \
        NAME##_impl<T, L>(p, a, b, c, d, out);                                                             \
    }                                                                                                      \
    BP_EMU_REGISTER(NAME##_##TN##_##LN, void)
#define BP_INSTANTIATE_BWD(NAME)                                 \
    BP_INSTANTIATE_BWD_ONE(NAME, float, f32, bp_nchw, nchw)      \
    BP_INSTANTIATE_BWD_ONE(NAME, float, f32, bp_nhwc, nhwc)      \
    BP_INSTANTIATE_BWD_ONE(NAME, bp_f16, f16, bp_nchw, nchw)     \
    BP_INSTANTIATE_BWD_ONE(NAME, bp_f16, f16, bp_nhwc, nhwc)     \
    BP_INSTANTIATE_BWD_ONE(NAME, bp_bf16, bf16, bp_nchw, nchw)   \
    BP_INSTANTIATE_BWD_ONE(NAME, bp_bf16, bf16, bp_nhwc, nhwc)

#define BP_INSTANTIATE(NAME)                                 \
    BP_INSTANTIATE_ONE(NAME, float, f32, bp_nchw, nchw)      \
    BP_INSTANTIATE_ONE(NAME, float, f32, bp_nhwc, nhwc)      \
    BP_INSTANTIATE_ONE(NAME, bp_f16, f16, bp_nchw, nchw)     \
    BP_INSTANTIATE_ONE(NAME, bp_f16, f16, bp_nhwc, nhwc)     \
    BP_INSTANTIATE_ONE(NAME, bp_bf16, bf16, bp_nchw, nchw)   \
    BP_INSTANTIATE_ONE(NAME, bp_bf16, bf16, bp_nhwc, nhwc)

// Entry points for every dtype and layout with a register cap per layout (the v4 strip kernels).
// MIN_BLOCKS: the blocks of 256 threads per SM ptxas must fit (__launch_bounds__), which caps
// the registers (3: 80 per thread, 24 warps per SM).
#ifdef BP_HOST_EMULATION
#define BP_BOUNDS(MIN_BLOCKS)
#define BP_BOUNDS_THREADS(THREADS, MIN_BLOCKS)
#else
#define BP_BOUNDS(MIN_BLOCKS) __launch_bounds__(256, MIN_BLOCKS)
// The same for blocks of THREADS threads: only for a specialisation whose line in the sources
// names its block (BP_STRIP4_VARIANT, BP_STRIP4_DW_VARIANT), which the launch reads from the
// generated table.
#define BP_BOUNDS_THREADS(THREADS, MIN_BLOCKS) __launch_bounds__(THREADS, MIN_BLOCKS)
#endif
// Every dtype and layout at blocks of THREADS threads, with a cap per layout and element size
// (f32; f16 and bf16) given as the warps per SM ptxas must fit: WARPS · 32 / THREADS blocks
// (24 warps: 80 registers; 20: 96; 16: 128).
#define BP_WARPS_BLOCKS(THREADS, WARPS) ((WARPS) * 32 / (THREADS))
#define BP_INSTANTIATE_BOUNDED_WARPS(NAME, THREADS, NCHW_F32, NCHW_HALF, NHWC_F32, NHWC_HALF)                    \
    static_assert((NCHW_F32) * 32 % (THREADS) == 0 && (NCHW_HALF) * 32 % (THREADS) == 0 &&                       \
                      (NHWC_F32) * 32 % (THREADS) == 0 && (NHWC_HALF) * 32 % (THREADS) == 0,                     \
                  #NAME ": the warps per SM must be whole blocks");                                               \
    BP_INSTANTIATE_ONE_BOUNDED(NAME, float, f32, bp_nchw, nchw,                                                  \
                               BP_BOUNDS_THREADS(THREADS, BP_WARPS_BLOCKS(THREADS, NCHW_F32)))                    \
    BP_INSTANTIATE_ONE_BOUNDED(NAME, float, f32, bp_nhwc, nhwc,                                                  \
                               BP_BOUNDS_THREADS(THREADS, BP_WARPS_BLOCKS(THREADS, NHWC_F32)))                    \
    BP_INSTANTIATE_ONE_BOUNDED(NAME, bp_f16, f16, bp_nchw, nchw,                                                 \
                               BP_BOUNDS_THREADS(THREADS, BP_WARPS_BLOCKS(THREADS, NCHW_HALF)))                   \
    BP_INSTANTIATE_ONE_BOUNDED(NAME, bp_f16, f16, bp_nhwc, nhwc,                                                 \
                               BP_BOUNDS_THREADS(THREADS, BP_WARPS_BLOCKS(THREADS, NHWC_HALF)))                   \
    BP_INSTANTIATE_ONE_BOUNDED(NAME, bp_bf16, bf16, bp_nchw, nchw,                                               \
                               BP_BOUNDS_THREADS(THREADS, BP_WARPS_BLOCKS(THREADS, NCHW_HALF)))                   \
    BP_INSTANTIATE_ONE_BOUNDED(NAME, bp_bf16, bf16, bp_nhwc, nhwc,                                               \
                               BP_BOUNDS_THREADS(THREADS, BP_WARPS_BLOCKS(THREADS, NHWC_HALF)))

// Every dtype and layout at blocks of THREADS threads, MIN_BLOCKS of them per SM.
#define BP_INSTANTIATE_BOUNDED_THREADS(NAME, THREADS, MIN_BLOCKS)                                    \
    BP_INSTANTIATE_ONE_BOUNDED(NAME, float, f32, bp_nchw, nchw, BP_BOUNDS_THREADS(THREADS, MIN_BLOCKS))    \
    BP_INSTANTIATE_ONE_BOUNDED(NAME, float, f32, bp_nhwc, nhwc, BP_BOUNDS_THREADS(THREADS, MIN_BLOCKS))    \
    BP_INSTANTIATE_ONE_BOUNDED(NAME, bp_f16, f16, bp_nchw, nchw, BP_BOUNDS_THREADS(THREADS, MIN_BLOCKS))   \
    BP_INSTANTIATE_ONE_BOUNDED(NAME, bp_f16, f16, bp_nhwc, nhwc, BP_BOUNDS_THREADS(THREADS, MIN_BLOCKS))   \
    BP_INSTANTIATE_ONE_BOUNDED(NAME, bp_bf16, bf16, bp_nchw, nchw, BP_BOUNDS_THREADS(THREADS, MIN_BLOCKS)) \
    BP_INSTANTIATE_ONE_BOUNDED(NAME, bp_bf16, bf16, bp_nhwc, nhwc, BP_BOUNDS_THREADS(THREADS, MIN_BLOCKS))

// Entry points for the 16-bit types only (kernels built on f16/bf16 hardware paths, e.g. the
// tensor-core mma); the host never looks for an f32 one (KernelKind::has_dtype in src/cuda).
// The same with a register cap (BP_BOUNDS(MIN_BLOCKS)), for the tensor-core v4 kernels.
#define BP_INSTANTIATE_HALF_TYPES_BOUNDED(NAME, MIN_BLOCKS)                                 \
    BP_INSTANTIATE_ONE_BOUNDED(NAME, bp_f16, f16, bp_nchw, nchw, BP_BOUNDS(MIN_BLOCKS))    \
    BP_INSTANTIATE_ONE_BOUNDED(NAME, bp_f16, f16, bp_nhwc, nhwc, BP_BOUNDS(MIN_BLOCKS))    \
    BP_INSTANTIATE_ONE_BOUNDED(NAME, bp_bf16, bf16, bp_nchw, nchw, BP_BOUNDS(MIN_BLOCKS))  \
    BP_INSTANTIATE_ONE_BOUNDED(NAME, bp_bf16, bf16, bp_nhwc, nhwc, BP_BOUNDS(MIN_BLOCKS))
#define BP_INSTANTIATE_HALF_TYPES(NAME)                      \
    BP_INSTANTIATE_ONE(NAME, bp_f16, f16, bp_nchw, nchw)     \
    BP_INSTANTIATE_ONE(NAME, bp_f16, f16, bp_nhwc, nhwc)     \
    BP_INSTANTIATE_ONE(NAME, bp_bf16, bf16, bp_nchw, nchw)   \
    BP_INSTANTIATE_ONE(NAME, bp_bf16, bf16, bp_nhwc, nhwc)
