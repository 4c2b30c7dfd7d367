/* Calling libblurpool from C.
 *
 *   1. build an antialiased-cnns MaxBlurPool descriptor with a preset,
 *   2. ask for the output shape,
 *   3. run the CPU reference on the paper's seed signal 0,0,1,1,... and its one-pixel shift,
 *   4. show what an invalid configuration reports,
 *   5. run the same operator on the GPU with blurpool_forward. Without a CUDA driver it
 *      returns BLURPOOL_STATUS_NO_DRIVER; the example says so and exits 0. With a driver it
 *      allocates device memory through the driver API (libcuda, loaded with dlopen, so this
 *      file needs no CUDA headers) and checks the GPU output against the reference.
 *
 * Exits non-zero on any unexpected failure. Build and run: ./build_and_run.sh
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blurpool.h"

#define W 16
#define H 4

/* Fails the example with the library's message when a call does not return OK. */
#define CHECK(call)                                                                        \
    do {                                                                                   \
        blurpool_status st_ = (call);                                                      \
        if (st_ != BLURPOOL_STATUS_OK) {                                                   \
            fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #call,            \
                    blurpool_status_name(st_), blurpool_last_error());                     \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

static void print_row(const char *label, const float *v, int64_t n) {
    printf("  %-10s", label);
    for (int64_t i = 0; i < n; i++) printf(" %5.3f", v[i]);
    printf("\n");
}

/* ---- the GPU part, through the CUDA driver API loaded at run time ------------------------ */

typedef int (*cu_init_t)(unsigned);
typedef int (*cu_device_get_t)(int *, int);
typedef int (*cu_primary_retain_t)(void **, int);
typedef int (*cu_ctx_set_current_t)(void *);
typedef int (*cu_mem_alloc_t)(uint64_t *, size_t);
typedef int (*cu_mem_free_t)(uint64_t);
typedef int (*cu_htod_t)(uint64_t, const void *, size_t);
typedef int (*cu_dtoh_t)(void *, uint64_t, size_t);

static void *sym(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "libcuda has no %s\n", name);
        exit(1);
    }
    return p;
}

#define CU(call)                                                                           \
    do {                                                                                   \
        int r_ = (call);                                                                   \
        if (r_ != 0) {                                                                     \
            fprintf(stderr, "%s:%d: %s -> CUresult %d\n", __FILE__, __LINE__, #call, r_);  \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

/* Runs `desc` on device 0 (legacy default stream) and compares with `expected`. */
static int gpu_forward(const blurpool_op_desc *desc, const int64_t in_shape[4], const float *x,
                       const int64_t out_shape[4], const float *expected) {
    size_t nx = (size_t)(in_shape[0] * in_shape[1] * in_shape[2] * in_shape[3]);
    size_t ny = (size_t)(out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3]);

    if (!blurpool_driver_available()) {
        /* The library checks for the driver before touching any pointer, so placeholder
         * addresses are fine here: this call can only report NO_DRIVER. */
        blurpool_status st = blurpool_forward(desc, BLURPOOL_DTYPE_F32, BLURPOOL_LAYOUT_NCHW,
                                              in_shape, 0x1000, 0, 0, 0x2000, NULL, 0);
        if (st == BLURPOOL_STATUS_NO_DRIVER) {
            printf("\nGPU: blurpool_forward -> %s (%s)\n", blurpool_status_name(st),
                   blurpool_last_error());
            printf("No CUDA driver on this machine: skipping the GPU part.\n");
            return 0;
        }
        fprintf(stderr, "expected BLURPOOL_STATUS_NO_DRIVER, got %s: %s\n",
                blurpool_status_name(st), blurpool_last_error());
        return 1;
    }

    void *cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!cuda) cuda = dlopen("libcuda.so", RTLD_NOW | RTLD_LOCAL);
    if (!cuda) {
        fprintf(stderr, "blurpool found a driver but dlopen(libcuda) failed: %s\n", dlerror());
        return 1;
    }
    /* POSIX's way to turn dlsym's void * into a function pointer (ISO C has none). */
#define LOAD(var, name) (*(void **)(&(var)) = sym(cuda, (name)))
    cu_init_t cu_init;
    cu_device_get_t cu_device_get;
    cu_primary_retain_t cu_retain;
    cu_ctx_set_current_t cu_set;
    cu_mem_alloc_t cu_alloc;
    cu_mem_free_t cu_free;
    cu_htod_t cu_htod;
    cu_dtoh_t cu_dtoh;
    LOAD(cu_init, "cuInit");
    LOAD(cu_device_get, "cuDeviceGet");
    LOAD(cu_retain, "cuDevicePrimaryCtxRetain");
    LOAD(cu_set, "cuCtxSetCurrent");
    LOAD(cu_alloc, "cuMemAlloc_v2");
    LOAD(cu_free, "cuMemFree_v2");
    LOAD(cu_htod, "cuMemcpyHtoD_v2");
    LOAD(cu_dtoh, "cuMemcpyDtoH_v2");

    int dev = 0;
    void *ctx = NULL;
    if (cu_init(0) != 0 || cu_device_get(&dev, 0) != 0) {
        printf("\nGPU: a driver is installed but no device is usable: skipping the GPU part.\n");
        return 0;
    }
    CU(cu_retain(&ctx, dev)); /* the primary context, the one blurpool (and PyTorch) use */
    CU(cu_set(ctx));

    uint64_t dx = 0, dy = 0;
    CU(cu_alloc(&dx, nx * sizeof(float)));
    CU(cu_alloc(&dy, ny * sizeof(float)));
    CU(cu_htod(dx, x, nx * sizeof(float)));
    /* Our buffers, our stream (NULL = legacy default stream): blurpool only queues a kernel. */
    blurpool_status st = blurpool_forward(desc, BLURPOOL_DTYPE_F32, BLURPOOL_LAYOUT_NCHW, in_shape,
                                          dx, 0, 0, dy, NULL, 0);
    if (st != BLURPOOL_STATUS_OK) {
        fprintf(stderr, "blurpool_forward -> %s: %s\n", blurpool_status_name(st),
                blurpool_last_error());
        return 1;
    }
    float *y = malloc(ny * sizeof(float));
    CU(cu_dtoh(y, dy, ny * sizeof(float))); /* ordered after the kernel on the default stream */
    double worst = 0.0;
    for (size_t i = 0; i < ny; i++) worst = fmax(worst, fabs((double)y[i] - expected[i]));
    printf("\nGPU (device 0): blurpool_forward OK, max |GPU - reference| = %g\n", worst);
    print_row("x", y, out_shape[3]);
    free(y);
    CU(cu_free(dx));
    CU(cu_free(dy));
    if (worst > 1e-6) {
        fprintf(stderr, "GPU output differs from the reference\n");
        return 1;
    }
    return 0;
}

int main(void) {
    printf("libblurpool %s (C ABI %u)\n", blurpool_version(), blurpool_abi_version());
    if (blurpool_abi_version() != BLURPOOL_ABI_VERSION ||
        blurpool_op_desc_size() != sizeof(blurpool_op_desc)) {
        fprintf(stderr, "blurpool.h does not match the library\n");
        return 1;
    }

    /* antialiased-cnns' VGG/ResNet pattern: MaxPool2d(2, stride=1) -> BlurPool(filt_size=4,
     * stride=2, pad_type='reflect'). And plain MaxPool2d(2, stride 2) for comparison: the same
     * preset with a one-tap filter. */
    blurpool_op_desc maxblur, maxpool;
    CHECK(blurpool_preset_antialiased_cnns_max_blur_pool(2, 0, BLURPOOL_PAD_REFLECT, 4, 2, 0,
                                                          &maxblur));
    CHECK(blurpool_preset_antialiased_cnns_max_blur_pool(2, 0, BLURPOOL_PAD_ZERO, 1, 2, 0,
                                                          &maxpool));

    const int64_t in_shape[4] = {1, 1, H, W};
    int64_t out_shape[4], pool_shape[4];
    CHECK(blurpool_output_shape(&maxblur, in_shape, out_shape));
    CHECK(blurpool_output_shape(&maxpool, in_shape, pool_shape));
    printf("MaxBlurPool input %lldx%lldx%lldx%lld -> output %lldx%lldx%lldx%lld\n",
           (long long)in_shape[0], (long long)in_shape[1], (long long)in_shape[2],
           (long long)in_shape[3], (long long)out_shape[0], (long long)out_shape[1],
           (long long)out_shape[2], (long long)out_shape[3]);

    /* The seed signal 0,0,1,1,0,0,1,1,... on every row, and the same shifted right by one. */
    float x[H * W], xs[H * W];
    for (int r = 0; r < H; r++) {
        for (int c = 0; c < W; c++) {
            x[r * W + c] = (float)((c / 2) % 2);
            xs[r * W + c] = c == 0 ? 0.0f : (float)(((c - 1) / 2) % 2);
        }
    }
    enum { NY = 1 * 1 * 2 * 8 };
    const size_t ny = (size_t)(out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3]);
    if (ny != NY || pool_shape[3] != 8) {
        fprintf(stderr, "unexpected output shape\n");
        return 1;
    }
    float y[NY], ys[NY], p[NY], ps[NY];
    CHECK(blurpool_reference_forward(&maxblur, BLURPOOL_DTYPE_F32, BLURPOOL_LAYOUT_NCHW, in_shape,
                                     x, H * W, NULL, 0, NULL, 0, y, NY));
    CHECK(blurpool_reference_forward(&maxblur, BLURPOOL_DTYPE_F32, BLURPOOL_LAYOUT_NCHW, in_shape,
                                     xs, H * W, NULL, 0, NULL, 0, ys, NY));
    CHECK(blurpool_reference_forward(&maxpool, BLURPOOL_DTYPE_F32, BLURPOOL_LAYOUT_NCHW, in_shape,
                                     x, H * W, NULL, 0, NULL, 0, p, NY));
    CHECK(blurpool_reference_forward(&maxpool, BLURPOOL_DTYPE_F32, BLURPOOL_LAYOUT_NCHW, in_shape,
                                     xs, H * W, NULL, 0, NULL, 0, ps, NY));

    printf("\nInput rows:\n  x          ");
    for (int c = 0; c < W; c++) printf("%.0f", x[c]);
    printf("\n  shift(x)   ");
    for (int c = 0; c < W; c++) printf("%.0f", xs[c]);
    printf("\n\nMaxPool2d(2, stride 2), first output row (CPU reference):\n");
    print_row("x", p, 8);
    print_row("shift(x)", ps, 8);
    printf("MaxBlurPool (antialiased-cnns: max 2x2 s1 -> blur 4 s2 reflect), first row:\n");
    print_row("x", y, out_shape[3]);
    print_row("shift(x)", ys, out_shape[3]);
    double dp = 0, db = 0;
    for (int i = 1; i < 7; i++) { /* interior: the ends see the border */
        dp += fabs((double)p[i] - ps[i]);
        db += fabs((double)y[i] - ys[i]);
    }
    printf("Mean |change| under the shift (interior): max-pool %.3f, max-blur-pool %.3f\n",
           dp / 6, db / 6);
    if (!(db < dp)) {
        fprintf(stderr, "max-blur-pool should change less than max-pool under the shift\n");
        return 1;
    }

    /* An invalid configuration: antialiased-cnns reflect padding with filt_size 5 on a 2x2 map
     * (PyTorch's ReflectionPad2d crashes on it); the library says why. */
    blurpool_op_desc big;
    CHECK(blurpool_preset_antialiased_cnns_blur_pool(BLURPOOL_PAD_REFLECT, 5, 2, 0, &big));
    const int64_t tiny[4] = {1, 1, 2, 2};
    int64_t unused[4];
    blurpool_status st = blurpool_output_shape(&big, tiny, unused);
    printf("\nInvalid: BlurPool(reflect, filt_size=5) on 1x1x2x2 -> %s\n  %s\n",
           blurpool_status_name(st), blurpool_last_error());
    if (st != BLURPOOL_STATUS_INVALID_ARGUMENT) return 1;
    st = blurpool_preset_kornia_blur_pool2d(9, 2, &big);
    printf("Invalid: kornia blur_pool2d(kernel_size=9) -> %s\n  %s\n", blurpool_status_name(st),
           blurpool_last_error());
    if (st != BLURPOOL_STATUS_INVALID_ARGUMENT) return 1;
    float small[3];
    st = blurpool_reference_forward(&maxblur, BLURPOOL_DTYPE_F32, BLURPOOL_LAYOUT_NCHW, in_shape, x,
                                    H * W, NULL, 0, NULL, 0, small, 3);
    printf("Invalid: an output buffer of 3 floats -> %s\n  %s\n", blurpool_status_name(st),
           blurpool_last_error());
    if (st != BLURPOOL_STATUS_BUFFER) return 1;

    return gpu_forward(&maxblur, in_shape, x, out_shape, y);
}
