// Host emulation of the little of CUDA the blurpool kernels use, so the same kernel text
// compiles as C++ (with BP_HOST_EMULATION defined) and runs on the CPU: one coroutine per CUDA
// thread, a block's threads interleaved at __syncthreads(), blocks one after another.
// It checks indexing, padding, tails and barrier discipline; it says nothing about speed or
// memory ordering between blocks. Warp-synchronous code is limited to explicit warp
// collectives (the tensor-core mma below): every lane of the warp must reach the same one.
#pragma once
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// A block's threads all run on the calling OS thread, so a per-OS-thread static is exactly a
// per-block shared array (and parallel test threads each get their own).
#define __shared__ static thread_local

struct bp_emu_dim3 {
    unsigned x, y, z;
};
extern thread_local bp_emu_dim3 threadIdx, blockIdx, blockDim, gridDim;

// Every thread of the block must reach the same sequence of barriers; the emulator reports a
// launch whose threads diverge at one (on a GPU that is undefined behaviour).
void __syncthreads();

// The launch's dynamic shared memory (`extern __shared__` on a GPU; BP_DYNAMIC_SHARED in
// kernels/common.cuh): 16-byte aligned, per block, poisoned (0xff bytes: NaN in every float
// type) before each block. A kernel that needs more bytes than the launch gave gets a fault
// (a GPU would read past the block's shared memory).
void *bp_emu_dynamic_shared(unsigned long long bytes);

inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, 4);
    return f;
}
inline int __float_as_int(float f) {
    int i;
    std::memcpy(&i, &f, 4);
    return i;
}

// IEEE binary16 through the compiler's _Float16 (round to nearest even, like cvt.rn.f16.f32).
inline float bp_emu_f16_to_f32(unsigned short bits) {
    _Float16 h;
    std::memcpy(&h, &bits, 2);
    return (float)h;
}
inline unsigned short bp_emu_f32_to_f16(float v) {
    _Float16 h = (_Float16)v;
    unsigned short bits;
    std::memcpy(&bits, &h, 2);
    return bits;
}

// A fault the GPU would raise (e.g. a misaligned vector access): recorded, and the launch
// reports the first one instead of succeeding.
void bp_emu_fault(const char *what);
// Vector loads and stores on a GPU need their natural alignment; the host does not, so check.
inline void bp_emu_check_aligned(const void *at, unsigned long long align) {
    if (reinterpret_cast<unsigned long long>(at) % align != 0) bp_emu_fault("misaligned vector access");
}

// Trace mode, for the performance model (model/; bp_emu_launch_traced in emu.cpp): every access
// the kernels make through bp_ld / bp_st (kernels/common.cuh) and every mma is recorded with its
// source line, each thread runs at most a set number of iterations of its work loop
// (BP_GRID_STRIDE_LOOP / BP_BLOCK_STRIDE_LOOP call bp_emu_loop_admit), and buffers may be
// redirected: the kernel sees one address range, the access lands in another (the hook test).
// BP_EMU_MARK: no access, a code path taken (bp_mark in kernels/common.cuh). BP_EMU_WGMMA: a
// lane's part of a wgmma, its size N / 8 (the model counts the operands' shared reads).
enum { BP_EMU_LOAD = 0, BP_EMU_STORE = 1, BP_EMU_MMA = 2, BP_EMU_MARK = 3, BP_EMU_WGMMA = 4 };
extern thread_local bool bp_emu_tracing;
// Records an access of `size` bytes at `at` and returns where it really goes.
const void *bp_emu_trace(const void *at, unsigned size, unsigned kind, const char *file, unsigned line);
// False once the calling thread has run its share of work-loop iterations; counts work items.
bool bp_emu_loop_admit(bool per_block, long long total);

// A warp collective: the calling thread's warp (32 consecutive threads) meets here; once all
// 32 lanes have arrived at the same `op`, it runs once with their `lane_data` in lane order,
// and the lanes go on. A lane that returns or waits at __syncthreads() instead is reported
// (on a GPU, a .sync.aligned instruction not reached by the whole warp is undefined).
typedef void (*bp_emu_warp_op)(void *const lanes[32]);
void bp_emu_warp_collective(void *lane_data, bp_emu_warp_op op);

// __activemask(): the lanes of the caller's warp that run this call together. Lanes run one
// after another here, so a lane waits at the call until no lane of its warp can run on (each
// has returned, or waits at a barrier, a collective or an __activemask()); the lanes waiting
// at the same call (source line) then each get the mask of them all: the most converged warp a
// GPU may run. In split mode (bp_emu_set_warp_split) those lanes are broken into smaller
// groups instead, as a GPU's independent thread scheduling may run them (in turn: every lane
// alone, odd and even lanes, two runs of lanes, and the even lanes alone while the odd ones
// wait, so that the even ones meet them at the same call an iteration later, in one mask),
// so that code which must not assume convergence is made to show it does not.
unsigned bp_emu_activemask(unsigned line, const char *file);
inline unsigned __activemask(unsigned line = __builtin_LINE(), const char *file = __builtin_FILE()) {
    return bp_emu_activemask(line, file);
}
// 32-bit shuffles over the whole warp (width 32): a collective of the lanes of `mask`, which
// must all call a shuffle of the same kind with the same mask, the caller among them. `up`:
// lane l gets lane l − d's value (its own where l < d), `down`: lane l + d's (its own past
// lane 31), `idx`: lane src % 32's. A source lane outside `mask` gives a poison value (on a
// GPU the result is undefined). In trace mode each lane's shuffle is recorded as a 4-byte
// shared-memory load at a bank of its own, so the performance model counts one wavefront of
// the shared-memory pipe a shuffle (see model/).
enum { BP_EMU_SHFL_IDX = 0, BP_EMU_SHFL_UP = 1, BP_EMU_SHFL_DOWN = 2 };
unsigned bp_emu_shfl(unsigned mask, unsigned v, int mode, int arg, unsigned line, const char *file);
inline unsigned __shfl_sync(unsigned mask, unsigned v, int src, int width = 32, unsigned line = __builtin_LINE(),
                            const char *file = __builtin_FILE()) {
    if (width != 32) bp_emu_fault("shuffle: only width 32 is emulated");
    return bp_emu_shfl(mask, v, BP_EMU_SHFL_IDX, src, line, file);
}
inline unsigned __shfl_up_sync(unsigned mask, unsigned v, unsigned d, int width = 32,
                               unsigned line = __builtin_LINE(), const char *file = __builtin_FILE()) {
    if (width != 32) bp_emu_fault("shuffle: only width 32 is emulated");
    return bp_emu_shfl(mask, v, BP_EMU_SHFL_UP, (int)d, line, file);
}
inline unsigned __shfl_down_sync(unsigned mask, unsigned v, unsigned d, int width = 32,
                                 unsigned line = __builtin_LINE(), const char *file = __builtin_FILE()) {
    if (width != 32) bp_emu_fault("shuffle: only width 32 is emulated");
    return bp_emu_shfl(mask, v, BP_EMU_SHFL_DOWN, (int)d, line, file);
}

// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32 with D = C in place, as a
// warp collective over the PTX ISA's fragment layout (lane = 4·group + t): A (16×16, row)
// a0 = (group, 2t..2t+1), a1 = (group+8, 2t..), a2 = (group, 2t+8..), a3 = (group+8, 2t+8..);
// B (16×8, col) b0 = (2t..2t+1, group), b1 = (2t+8..2t+9, group); C/D d0, d1 = (group, 2t, 2t+1),
// d2, d3 = (group+8, 2t, 2t+1); the lower-indexed element of a pair in the low 16 bits.
// Products are exact in f32; the sums here are sequential in k (the hardware's order and
// internal precision differ, within the tests' tolerances).
// (`line` and `file`: the call site, recorded in trace mode.)
void bp_emu_mma_m16n8k16(bool bf16, const unsigned a[4], const unsigned b[2], float d[4],
                         unsigned line = __builtin_LINE(), const char *file = __builtin_FILE());

// ldmatrix.sync.aligned.m8n8.x4.shared.b16 as a warp collective: lane l gives the address of
// row l % 8 of matrix l / 8 (16 bytes, 16-byte aligned); lane l receives in r[j] the 32-bit
// word of matrix j that holds row l / 4, elements 2·(l % 4) and 2·(l % 4) + 1 (the lower one in
// the low 16 bits): the mma's A fragment for matrices (rows 0–7, k 0–7), (rows 8–15, k 0–7),
// (rows 0–7, k 8–15), (rows 8–15, k 8–15), and two B fragments for rows = n.
// Each lane's row is traced as a 16-byte shared load at the call site.
void bp_emu_ldmatrix_x4(const void *row, unsigned r[4], unsigned line = __builtin_LINE(),
                        const char *file = __builtin_FILE());

// cp.async.cg.shared.global of 16 bytes (both addresses 16-byte aligned), as a GPU may run it:
// the copy is queued on the calling thread and lands only at that thread's next
// bp_emu_cp_async_wait_all(); until then its destination keeps its old bytes, so a read before
// the wait (or another thread's read before the wait and a barrier) sees stale data, and a
// missing wait is caught. `valid` false: 16 zero bytes, nothing read (src-size 0). A thread
// that ends with copies still queued is reported. The global read is traced at the call site
// (the shared write is the same instruction and is not traced separately).
void bp_emu_cp_async16(void *dst, const void *src, bool valid, unsigned line = __builtin_LINE(),
                       const char *file = __builtin_FILE());
void bp_emu_cp_async_wait_all();

// Warpgroup-level matrix multiply (wgmma, sm_90a), as a GPU may run it. A warpgroup is 4
// consecutive warps from a warp index divisible by 4; each call below is a collective of its
// 128 threads (every one must reach the same call, as with .sync.aligned on a GPU; a launch
// whose block is not a whole number of warpgroups cannot run one).
//   bp_emu_wgmma_fence()  wgmma.fence: required before a warpgroup's first wgmma and again
//                         after each wait (the accumulators may have been touched); a wgmma
//                         without one is reported;
//   bp_emu_wgmma_m64k16   wgmma.mma_async.sync.aligned.m64nNk16.f32.{f16,bf16}: D (64 × N, f32,
//                         in registers) = A · B (+ D where scale_d), A (64 × 16) and B (N × 16)
//                         both K-major in shared memory, each given by a matrix descriptor (bits
//                         0–13 start address >> 4, 16–29 leading-dimension byte offset >> 4,
//                         32–45 stride-dimension byte offset >> 4, 49–51 base offset, 62–63
//                         swizzle): the no-swizzle canonical layout only (base offset and swizzle
//                         0, else reported), in which element (r, k) of an operand lies at start
//                         + (r / 8)·SBO + (k / 8)·LBO + (r % 8)·16 + (k % 8)·2 bytes (core
//                         matrices of 8 rows × 16 bytes). `d`: the thread's N / 2 accumulators,
//                         lane l of warp w of the group holding, for each n8 block j, rows
//                         16w + l / 4 (d[4j], d[4j + 1]) and + 8 (d[4j + 2], d[4j + 3]), columns
//                         8j + 2(l % 4) and the next. It is only queued: nothing is read or
//                         written until the wait that completes its group;
//   bp_emu_wgmma_commit() wgmma.commit_group: the queued wgmma become a group;
//   bp_emu_wgmma_wait(n)  wgmma.wait_group n: every group but the newest n completes now,
//                         oldest first: its operands are read from shared memory at this
//                         point (so a store over them before the wait changes the product, as
//                         it may on a GPU) and its accumulators written (so reading them
//                         before the wait sees the old values).
// A block that ends with a wgmma not completed is reported. Descriptors address the launch's
// dynamic shared memory (bp_emu_shared_address: the offset there; `__cvta_generic_to_shared`
// on a GPU, where the kernels keep nothing else in shared memory). In trace mode each lane's
// wgmma is one BP_EMU_WGMMA event at the caller's line (one per warp, as the SASS has one
// HGMMA), and runs as in any other mode.
unsigned bp_emu_shared_address(const void *p);
void bp_emu_wgmma_fence();
void bp_emu_wgmma_m64k16(bool bf16, unsigned n, unsigned long long desc_a, unsigned long long desc_b, float *d,
                         bool scale_d, unsigned line = __builtin_LINE(), const char *file = __builtin_FILE());
void bp_emu_wgmma_commit();
void bp_emu_wgmma_wait(unsigned pending);

// Kernel registry: the instantiation macros in common.cuh register every entry point by its
// symbol name, with its pointer arguments type-erased.
typedef void (*bp_emu_entry)(const void *params, const void *a, const void *b, const void *c, const void *d,
                             void *out);
struct bp_emu_registrar {
    bp_emu_registrar(const char *name, bp_emu_entry entry);
};
