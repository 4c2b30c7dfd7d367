// Backward family: input gradients of the dense max, BlurPool2d and the fused MaxBlurPool2d,
// and ConvBlurPool2d's gradients (input, weight, bias).
//
// Every kernel is a gather: each gradient element is computed by one thread (or, for the
// weight and bias reductions, one block) that sums, in a fixed order, every term that reaches
// it. No atomics, so results are bitwise reproducible run to run and stream to stream, in every
// pad mode (PyTorch's reflect/replicate backward scatters with atomics: pytorch#98208).
// Accumulation is f32; gradients are rounded to T once.
//
// Straightforward versions (v1), one thread per gradient element, like the forward v1 kernels.
#include "common.cuh"

// The blur's adjoint along one axis. The padded coordinates whose source (bp_source_index) is
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
                            acc += p.ty[u] * p.tx[v] * bp_to_f32(dy[L::offset(n, c, i, j, p.cout, p.ho, p.wo)]);
                        }
                    }
                }
            }
        }
    }
    return acc;
}

// PyTorch's argmax of dense-max window (i, j) (the cell max_pool2d saves as its index): the
// first in-bounds cell to start, then a row-major scan with `v > best || isnan(v)` from -inf.
template <typename T, typename L>
__device__ __forceinline__ void bp_window_argmax(const T *__restrict__ x, const BpParams &p, long long n, long long c,
                                                 int i, int j, int &ay, int &ax) {
    float best = __int_as_float(0xff800000); // -inf
    ay = -1;
    ax = -1;
    for (int a = 0; a < p.mkh; ++a) {
        int y = i + a - p.mpy;
        if (y < 0 || y >= p.h) continue;
        for (int b = 0; b < p.mkw; ++b) {
            int xx = j + b - p.mpx;
            if (xx < 0 || xx >= p.w) continue;
            if (ay < 0) {
                ay = y;
                ax = xx;
            }
            float v = bp_to_f32(x[L::offset(n, c, y, xx, p.c, p.h, p.w)]);
            if (v > best || v != v) {
                best = v;
                ay = y;
                ax = xx;
            }
        }
    }
}

// Input gradient of a dense max (stride 1) at input cell (y, x): the windows that contain it and
// chose it as their argmax, each contributing its map gradient: dy at the window itself
// (FUSED = false: dy is the max map's gradient) or the blur's adjoint of dy there (FUSED = true:
// dy is MaxBlurPool2d's output gradient). Windows are visited in a fixed order.
template <typename T, typename L, bool FUSED>
__device__ __forceinline__ float bp_max_gather(const T *__restrict__ x, const T *__restrict__ dy, const BpParams &p,
                                               long long n, long long c, int y, int xx) {
    float acc = 0.f;
    for (int a = 0; a < p.mkh; ++a) {
        int i = y - a + p.mpy;
        if (i < 0 || i >= p.hm) continue;
        for (int b = 0; b < p.mkw; ++b) {
            int j = xx - b + p.mpx;
            if (j < 0 || j >= p.wm) continue;
            int ay, ax;
            bp_window_argmax<T, L>(x, p, n, c, i, j, ay, ax);
            if (ay != y || ax != xx) continue;
            acc += FUSED ? bp_blur_adjoint<T, L>(p, dy, n, c, i, j)
                         : bp_to_f32(dy[L::offset(n, c, i, j, p.cout, p.hm, p.wm)]);
        }
    }
    return acc;
}

// Input gradient of a dense max: a = x, c = dy, out = dx. FUSED = false: the dense max alone
// (dy is the max map's gradient, extents hm × wm = ho × wo); FUSED = true: MaxBlurPool2d (dy is
// its output gradient; the max map's gradient, the blur's adjoint of dy, is evaluated where a
// window's argmax needs it and never written).
template <typename T, typename L, bool FUSED>
__device__ __forceinline__ void bp_max_input_grad(const BpParams &p, const void *a, const void *c, void *out) {
    const T *__restrict__ x = (const T *)a;
    const T *__restrict__ dy = (const T *)c;
    T *__restrict__ dx = (T *)out;
    const bp_extents in = bp_input_extents(p);
    BP_GRID_STRIDE_LOOP(idx, p.total_in) {
        long long n, ch, y, xx;
        L::split_in(idx, in, n, ch, y, xx);
        dx[idx] = bp_from_f32<T>(bp_max_gather<T, L, FUSED>(x, dy, p, n, ch, (int)y, (int)xx));
    }
}

template <typename T, typename L>
__device__ __forceinline__ void bp_maxpool_bwd_impl(const BpParams p, const void *a, const void *, const void *c,
                                                    const void *, void *out) {
    bp_max_input_grad<T, L, false>(p, a, c, out);
}
BP_INSTANTIATE_BWD(bp_maxpool_bwd)

template <typename T, typename L>
__device__ __forceinline__ void bp_maxblurpool_bwd_impl(const BpParams p, const void *a, const void *,
                                                        const void *c, const void *, void *out) {
    bp_max_input_grad<T, L, true>(p, a, c, out);
}
BP_INSTANTIATE_BWD(bp_maxblurpool_bwd)

// BlurPool2d backward: c = dy, out = dx (the map the blur reads is the input: hm × wm = h × w).
template <typename T, typename L>
__device__ __forceinline__ void bp_blurpool_bwd_impl(const BpParams p, const void *, const void *, const void *c,
                                                     const void *, void *out) {
    const T *__restrict__ dy = (const T *)c;
    T *__restrict__ dx = (T *)out;
    const bp_extents in = bp_input_extents(p);
    BP_GRID_STRIDE_LOOP(idx, p.total_in) {
        long long n, ch, y, xx;
        L::split_in(idx, in, n, ch, y, xx);
        dx[idx] = bp_from_f32<T>(bp_blur_adjoint<T, L>(p, dy, n, ch, (int)y, (int)xx));
    }
}
BP_INSTANTIATE_BWD(bp_blurpool_bwd)

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
    float acc = p.has_bias ? bp_to_f32(b[co]) : 0.f;
    for (int ci = 0; ci < cin_g; ++ci) {
        const T *wk = w + (co * cin_g + ci) * (long long)(p.ckh * p.ckw);
        for (int a = 0; a < p.ckh; ++a) {
            int y = r + a - p.cpy;
            if (y < 0 || y >= p.h) continue;
            for (int k = 0; k < p.ckw; ++k) {
                int xx = q + k - p.cpx;
                if (xx < 0 || xx >= p.w) continue;
                acc += bp_to_f32(wk[a * p.ckw + k]) * bp_to_f32(x[L::offset(n, ci0 + ci, y, xx, p.c, p.h, p.w)]);
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
        dz[idx] = g;
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
                    acc += bp_to_f32(wk[a * p.ckw + k]) * dz[L::offset(n, co, r, q, p.cout, p.hm, p.wm)];
                }
            }
        }
        dx[idx] = bp_from_f32<T>(acc);
    }
}
BP_INSTANTIATE_BWD(bp_conv_dx)

// Sum of a block's per-thread partials in a fixed tree (blockDim.x is a power of two, <= 1024):
// the same association every run. Returns the total in thread 0.
__device__ __forceinline__ float bp_block_sum(float v) {
    __shared__ float part[1024];
    part[threadIdx.x] = v;
    __syncthreads();
    for (unsigned h = blockDim.x / 2; h > 0; h /= 2) {
        if (threadIdx.x < h) part[threadIdx.x] += part[threadIdx.x + h];
        __syncthreads();
    }
    float total = part[0];
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
    for (long long e = blockIdx.x; e < nw; e += gridDim.x) {
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
            acc += bp_to_f32(x[L::offset(n, ci, y, xx, p.c, p.h, p.w)]) *
                   dz[L::offset(n, co, r, q, p.cout, p.hm, p.wm)];
        }
        float total = bp_block_sum(acc);
        if (threadIdx.x == 0) dw[e] = bp_from_f32<T>(total);
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
    for (long long co = blockIdx.x; co < p.cout; co += gridDim.x) {
        float acc = 0.f;
        for (long long t = threadIdx.x; t < cells; t += blockDim.x) {
            long long n, r, q, rem;
            bp_divmod(t, p.wm, p.rcp_wm, rem, q);
            bp_divmod(rem, p.hm, p.rcp_hm, n, r);
            acc += dz[L::offset(n, co, r, q, p.cout, p.hm, p.wm)];
        }
        float total = bp_block_sum(acc);
        if (threadIdx.x == 0) db[co] = bp_from_f32<T>(total);
    }
}
BP_INSTANTIATE_BWD(bp_conv_db)
