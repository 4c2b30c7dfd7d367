// Convolution family, backward: ConvBlurPool2d's gradients (input, weight, bias). BlurConv2d
// has no GPU backward yet (the CPU reference has it).
//
// Every kernel is a gather (no atomics), as in pool_backward.cu: bitwise reproducible gradients.
// Accumulation is f32; gradients are rounded to T once. v1, one thread per gradient element (one
// block per weight / bias element for the reductions).
#include "common.cuh"

// ---- ConvBlurPool2d: z = conv(x) + bias (stride 1), a = act(z), y = blur_s(a) ----------------
//
// Three passes over one f32 workspace dz (the conv map's gradient, extents n × cout × hm × wm in
// the activations' layout): dz, then dx from dz (the transposed conv), then dweight and dbias
// from dz (one block per element, a fixed-shape tree reduction).

// The conv's pre-activation value at conv-map cell (r, q) of output channel co.
template <typename T, typename L>
__device__ __forceinline__ float bp_conv_linear(const BpParams &p, const T *__restrict__ x, const T *__restrict__ w,
                                                const T *__restrict__ b, long long n, long long co, int r, int q) {
    const int cin_g = (int)p.c / p.groups;
    const int cout_g = (int)p.cout / p.groups;
    const int ci0 = ((int)co / cout_g) * cin_g;
    float acc = p.has_bias ? bp_to_f32(bp_ld(b + co)) : 0.f;
    for (int ci = 0; ci < cin_g; ++ci) {
        const T *wk = w + (co * cin_g + ci) * (long long)(p.ckh * p.ckw); // kh·kw < 2^31: Conv2dSpec::new
        for (int a = 0; a < p.ckh; ++a) {
            int y = r + a - p.cpy;
            if (y < 0 || y >= p.h) continue;
            for (int k = 0; k < p.ckw; ++k) {
                int xx = q + k - p.cpx;
                if (xx < 0 || xx >= p.w) continue;
                acc += bp_to_f32(bp_ld(wk + (a * p.ckw + k))) * bp_to_f32(bp_ld(x + L::offset(n, ci0 + ci, y, xx, p.c, p.h, p.w)));
            }
        }
    }
    return acc;
}

// PyTorch's activation derivatives at z: relu 0 for z <= 0, relu6 0 for z <= 0 or z >= 6, else
// 1 (NaN included: the comparisons are false).
__device__ __forceinline__ float bp_activation_grad(float z, int act) {
    if (act == BP_ACT_RELU) return z <= 0.f ? 0.f : 1.f;
    if (act == BP_ACT_RELU6) return (z <= 0.f || z >= 6.f) ? 0.f : 1.f;
    return 1.f;
}

// Pass 1: a = x, b = weight, c = dy, d = bias, out = dz (f32 workspace).
template <typename T, typename L>
__device__ __forceinline__ void bp_convblurpool_dz_impl(const BpParams p, const void *a, const void *b,
                                                        const void *c, const void *d, void *out) {
    const T *__restrict__ x = (const T *)a;
    const T *__restrict__ w = (const T *)b;
    const T *__restrict__ dy = (const T *)c;
    const T *__restrict__ bias = (const T *)d;
    float *__restrict__ dz = (float *)out;
    const bp_extents map = bp_map_extents(p);
    BP_GRID_STRIDE_LOOP(idx, p.total_map) {
        long long n, co, r, q;
        L::split_in(idx, map, n, co, r, q);
        float g = bp_blur_adjoint<T, L>(p, dy, n, co, (int)r, (int)q);
        // The activation's derivative only where it can matter (it reads the whole receptive field).
        if (p.act != BP_ACT_IDENTITY && g != 0.f)
            g *= bp_activation_grad(bp_conv_linear<T, L>(p, x, w, bias, n, co, (int)r, (int)q), p.act);
        bp_st(dz + idx, g);
    }
}
BP_INSTANTIATE_BWD(bp_convblurpool_dz)

// Pass 2: b = weight, c = dz (f32), out = dx. x[y, x] fed conv-map cell (y - a + cpy, x - k + cpx)
// of every output channel of its group through weight tap (a, k).
template <typename T, typename L>
__device__ __forceinline__ void bp_conv_dx_impl(const BpParams p, const void *, const void *b, const void *c,
                                                const void *, void *out) {
    const T *__restrict__ w = (const T *)b;
    const float *__restrict__ dz = (const float *)c;
    T *__restrict__ dx = (T *)out;
    const bp_extents in = bp_input_extents(p);
    const int cin_g = (int)p.c / p.groups;
    const int cout_g = (int)p.cout / p.groups;
    BP_GRID_STRIDE_LOOP(idx, p.total_in) {
        long long n, ci, y, xx;
        L::split_in(idx, in, n, ci, y, xx);
        const int g = (int)ci / cin_g, cig = (int)ci % cin_g;
        float acc = 0.f;
        for (int co = g * cout_g; co < (g + 1) * cout_g; ++co) {
            const T *wk = w + ((long long)co * cin_g + cig) * (p.ckh * p.ckw);
            for (int a = 0; a < p.ckh; ++a) {
                int r = (int)y - a + p.cpy;
                if (r < 0 || r >= p.hm) continue;
                for (int k = 0; k < p.ckw; ++k) {
                    int q = (int)xx - k + p.cpx;
                    if (q < 0 || q >= p.wm) continue;
                    acc += bp_to_f32(bp_ld(wk + (a * p.ckw + k))) * bp_ld(dz + L::offset(n, co, r, q, p.cout, p.hm, p.wm));
                }
            }
        }
        bp_st(dx + idx, bp_from_f32<T>(acc));
    }
}
BP_INSTANTIATE_BWD(bp_conv_dx)

// Sum of a block's per-thread partials in a fixed tree (blockDim.x is a power of two, <= 1024):
// the same association every run. Returns the total in thread 0.
__device__ __forceinline__ float bp_block_sum(float v) {
    __shared__ float part[1024];
    bp_st(part + threadIdx.x, v);
    __syncthreads();
    for (unsigned h = blockDim.x / 2; h > 0; h /= 2) {
        if (threadIdx.x < h) bp_st(part + threadIdx.x, bp_ld(part + threadIdx.x) + bp_ld(part + (threadIdx.x + h)));
        __syncthreads();
    }
    float total = bp_ld(part);
    // The next use of part must not overwrite part[0] before every thread has read it.
    __syncthreads();
    return total;
}

// Pass 3a: a = x, c = dz (f32), out = dweight (Cout × Cin/groups × kh × kw). One block per weight
// element (block-strided), its threads striding over the n × hm × wm conv-map cells in order.
template <typename T, typename L>
__device__ __forceinline__ void bp_conv_dw_impl(const BpParams p, const void *a, const void *, const void *c,
                                                const void *, void *out) {
    const T *__restrict__ x = (const T *)a;
    const float *__restrict__ dz = (const float *)c;
    T *__restrict__ dw = (T *)out;
    const int cin_g = (int)p.c / p.groups;
    const int cout_g = (int)p.cout / p.groups;
    const int taps = p.ckh * p.ckw;
    const long long nw = (long long)p.cout * cin_g * taps;
    const long long cells = p.n * p.hm * p.wm;
    BP_BLOCK_STRIDE_LOOP(e, nw) {
        const int co = (int)(e / (cin_g * taps));
        const int rest = (int)(e % (cin_g * taps));
        const int cig = rest / taps, a = rest % taps / p.ckw, k = rest % p.ckw;
        const int ci = (co / cout_g) * cin_g + cig;
        float acc = 0.f;
        for (long long t = threadIdx.x; t < cells; t += blockDim.x) {
            long long n, r, q, rem;
            bp_divmod(t, p.wm, p.rcp_wm, rem, q);
            bp_divmod(rem, p.hm, p.rcp_hm, n, r);
            int y = (int)r + a - p.cpy, xx = (int)q + k - p.cpx;
            if (y < 0 || y >= p.h || xx < 0 || xx >= p.w) continue;
            acc += bp_to_f32(bp_ld(x + L::offset(n, ci, y, xx, p.c, p.h, p.w))) *
                   bp_ld(dz + L::offset(n, co, r, q, p.cout, p.hm, p.wm));
        }
        float total = bp_block_sum(acc);
        if (threadIdx.x == 0) bp_st(dw + e, bp_from_f32<T>(total));
    }
}
BP_INSTANTIATE_BWD(bp_conv_dw)

// Pass 3b: c = dz (f32), out = dbias (Cout). One block per output channel (block-strided).
template <typename T, typename L>
__device__ __forceinline__ void bp_conv_db_impl(const BpParams p, const void *, const void *, const void *c,
                                                const void *, void *out) {
    const float *__restrict__ dz = (const float *)c;
    T *__restrict__ db = (T *)out;
    const long long cells = p.n * p.hm * p.wm;
    BP_BLOCK_STRIDE_LOOP(co, p.cout) {
        float acc = 0.f;
        for (long long t = threadIdx.x; t < cells; t += blockDim.x) {
            long long n, r, q, rem;
            bp_divmod(t, p.wm, p.rcp_wm, rem, q);
            bp_divmod(rem, p.hm, p.rcp_hm, n, r);
            acc += bp_ld(dz + L::offset(n, co, r, q, p.cout, p.hm, p.wm));
        }
        float total = bp_block_sum(acc);
        if (threadIdx.x == 0) bp_st(db + co, bp_from_f32<T>(total));
    }
}
BP_INSTANTIATE_BWD(bp_conv_db)
