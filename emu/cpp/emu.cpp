// The emulator proper: kernel registry and the launcher (see emu.h).
//
// Threads are coroutines: each starts on its own stack through makecontext/swapcontext (once per
// launch), and every later switch (a __syncthreads, the return to the scheduler) is a
// _setjmp/_longjmp pair, which, unlike swapcontext, makes no system call: the block
// reductions of the backward kernels switch hundreds of times per block.
#undef _FORTIFY_SOURCE // its longjmp check rejects jumps between stacks, which is the point here
#include "emu.h"

#include <setjmp.h>
#include <ucontext.h>

#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

thread_local bp_emu_dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace {

std::map<std::string, bp_emu_entry> &registry() {
    static std::map<std::string, bp_emu_entry> r;
    return r;
}

// A warpgroup collective's op: the 128 threads' data in thread order.
typedef void (*WarpgroupOp)(void *const lanes[128]);

struct Fiber {
    ucontext_t ctx;
    jmp_buf jmp; // where the thread waits at a barrier
    bool started = false;
    std::unique_ptr<char[]> stack; // uninitialised: zeroing it per launch would dominate
    unsigned tid = 0;
    bool done = false;
    bool at_barrier = false;
    // Waiting at a warp collective: its op and this lane's data.
    bp_emu_warp_op warp_op = nullptr;
    void *warp_data = nullptr;
    unsigned warp_mask = 0; // the lanes the collective waits for (all 32 but for shuffles)
    // Waiting at a warpgroup collective (wgmma): its op and this thread's data.
    WarpgroupOp wg_op = nullptr;
    void *wg_data = nullptr;
    // Waiting at an __activemask() (its call site), and the mask it returns.
    const char *mask_file = nullptr;
    unsigned mask_line = 0;
    unsigned mask_result = 0;
    unsigned loop_iters = 0; // trace mode: work-loop iterations admitted so far
    // cp.async copies issued and not yet waited for (bp_emu_cp_async16): destination, source
    // (null: zero fill).
    std::vector<std::pair<void *, const void *>> copies;
};

// One access (or mma) in trace mode, as the Rust side reads it (blurpool_emu::TraceEvent).
struct TraceEvent {
    unsigned long long addr; // the address the kernel used (before any redirection)
    const char *file;        // the source line that made the access
    unsigned line;
    unsigned short thread;   // threadIdx.x
    unsigned char size;      // bytes (0 for an mma)
    unsigned char kind;      // BP_EMU_LOAD, BP_EMU_STORE, BP_EMU_MMA, BP_EMU_MARK
};
static_assert(sizeof(TraceEvent) == 24, "TraceEvent layout must match emu/src/lib.rs");

// An address range the kernel sees that is really another one (the hook test).
struct Redirect {
    const char *seen;
    char *real;
    unsigned long long len;
};

typedef int (*BlockCallback)(void *ctx, unsigned block, const TraceEvent *events, size_t n);

// What a traced launch records and how it samples.
struct Trace {
    unsigned max_iters = 0;
    const Redirect *redirects = nullptr;
    size_t n_redirects = 0;
    BlockCallback on_block = nullptr;
    void *ctx = nullptr;
    std::vector<TraceEvent> events; // of the block in progress
    long long items_total = 0;
    unsigned long long items_sampled = 0;
    unsigned long long warp_iterations = 0; // admitted iterations of each warp's lane 0
    unsigned blocks_run = 0;
};

// Per OS thread: the launch in progress.
struct Launch {
    ucontext_t scheduler;
    jmp_buf scheduler_jmp;
    Fiber *current = nullptr;
    bp_emu_entry entry = nullptr;
    const void *params = nullptr;
    const void *a = nullptr, *b = nullptr, *c = nullptr, *d = nullptr;
    void *out = nullptr;
    Trace *trace = nullptr; // non-null in trace mode
    unsigned shared_bytes = 0; // the launch's dynamic shared memory
    // Its buffer (16-byte units), kept per OS thread and reused by later launches.
    struct alignas(16) Unit {
        unsigned char b[16];
    };
    std::vector<Unit> dynamic_shared;
    // wgmma of each warpgroup of the block in progress (bp_emu_wgmma_*).
    struct Wgmma {
        bool bf16;
        unsigned n;
        unsigned long long desc_a, desc_b;
        bool scale_d;
        float *d[128];
    };
    struct Warpgroup {
        bool fenced = false;
        std::vector<Wgmma> queued;                // since the last commit
        std::deque<std::vector<Wgmma>> committed; // groups not yet completed, oldest first
    };
    std::vector<Warpgroup> warpgroups;
};
thread_local Launch launch_state;

void fiber_main() {
    Launch &L = launch_state;
    L.entry(L.params, L.a, L.b, L.c, L.d, L.out);
    if (!L.current->copies.empty()) bp_emu_fault("a thread returned with cp.async copies it never waited for");
    L.current->done = true;
    _longjmp(L.scheduler_jmp, 1);
}

constexpr size_t kStack = 64 * 1024;

// getcontext/swapcontext "return twice"; kept in their own frames so no caller's locals live
// across them (and the compiler has nothing to warn about).
__attribute__((noinline)) void start_fiber(Fiber &f, ucontext_t *link) {
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack.get();
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = link;
    makecontext(&f.ctx, fiber_main, 0);
}

// Runs thread f until its next barrier or its end.
__attribute__((noinline)) void resume(Fiber &f) {
    Launch &L = launch_state;
    threadIdx = {f.tid, 0, 0};
    L.current = &f;
    if (_setjmp(L.scheduler_jmp) == 0) {
        if (!f.started) {
            f.started = true;
            swapcontext(&L.scheduler, &f.ctx); // never returns: the thread longjmps back
        } else {
            _longjmp(f.jmp, 1);
        }
    }
}

} // namespace

void *bp_emu_dynamic_shared(unsigned long long bytes) {
    Launch &L = launch_state;
    if (bytes > L.shared_bytes) {
        bp_emu_fault("the kernel uses more dynamic shared memory than the launch gave");
        // The launch fails; until it ends the kernel runs on a buffer of the size it asked for
        // (its own, so that the launch's buffer never moves under a thread's pointer).
        thread_local std::vector<Launch::Unit> overflow;
        if (overflow.size() * 16 < bytes) overflow.resize((bytes + 15) / 16);
        return overflow.data();
    }
    return L.dynamic_shared.data();
}

bp_emu_registrar::bp_emu_registrar(const char *name, bp_emu_entry entry) { registry()[name] = entry; }

thread_local bool bp_emu_tracing = false;

const void *bp_emu_trace(const void *at, unsigned size, unsigned kind, const char *file, unsigned line) {
    Launch &L = launch_state;
    Trace &t = *L.trace;
    t.events.push_back({reinterpret_cast<unsigned long long>(at), file, line, (unsigned short)L.current->tid,
                        (unsigned char)size, (unsigned char)kind});
    const char *p = static_cast<const char *>(at);
    for (size_t i = 0; i < t.n_redirects; ++i) {
        const Redirect &r = t.redirects[i];
        if (p >= r.seen && p < r.seen + r.len) return r.real + (p - r.seen);
    }
    return at;
}

bool bp_emu_loop_admit(bool per_block, long long total) {
    if (!bp_emu_tracing) return true;
    Launch &L = launch_state;
    Trace &t = *L.trace;
    Fiber &f = *L.current;
    if (t.max_iters != 0 && f.loop_iters >= t.max_iters) return false;
    ++f.loop_iters;
    if (total > t.items_total) t.items_total = total;
    if (!per_block || f.tid == 0) ++t.items_sampled;
    if (f.tid % 32 == 0) ++t.warp_iterations;
    return true;
}

void __syncthreads() {
    Launch &L = launch_state;
    L.current->at_barrier = true;
    if (_setjmp(L.current->jmp) == 0) _longjmp(L.scheduler_jmp, 1);
}

namespace {
// Waits at a collective of the lanes of `mask` (the caller's warp).
void warp_collective_of(unsigned mask, void *lane_data, bp_emu_warp_op op) {
    Launch &L = launch_state;
    L.current->warp_op = op;
    L.current->warp_data = lane_data;
    L.current->warp_mask = mask;
    if (_setjmp(L.current->jmp) == 0) _longjmp(L.scheduler_jmp, 1);
}

thread_local bool warp_split = false;   // bp_emu_set_warp_split
thread_local unsigned split_turn = 0;   // which split the next __activemask() group gets
thread_local unsigned poison_turn = 0;  // varies the shuffles' poison

struct ShflLane {
    unsigned mask, value, result;
    int mode, arg;
};

void shfl_op(void *const lanes[32]) {
    for (int l = 0; l < 32; ++l) {
        ShflLane *me = static_cast<ShflLane *>(lanes[l]);
        if (!me) continue;
        int src = l;
        if (me->mode == BP_EMU_SHFL_UP) {
            if (l >= me->arg) src = l - me->arg;
        } else if (me->mode == BP_EMU_SHFL_DOWN) {
            if (l + me->arg < 32) src = l + me->arg;
        } else {
            src = me->arg & 31;
        }
        const ShflLane *from = static_cast<ShflLane *>(lanes[src]);
        if (from && from->mode != me->mode) bp_emu_fault("shuffle: lanes of one mask call different shuffles");
        me->result = from ? from->value : 0x7fbadbadu ^ (++poison_turn * 0x9e3779b9u);
    }
}
} // namespace

void bp_emu_warp_collective(void *lane_data, bp_emu_warp_op op) { warp_collective_of(~0u, lane_data, op); }

unsigned bp_emu_activemask(unsigned line, const char *file) {
    Launch &L = launch_state;
    L.current->mask_file = file;
    L.current->mask_line = line;
    if (_setjmp(L.current->jmp) == 0) _longjmp(L.scheduler_jmp, 1);
    return L.current->mask_result;
}

unsigned bp_emu_shfl(unsigned mask, unsigned v, int mode, int arg, unsigned line, const char *file) {
    Launch &L = launch_state;
    const unsigned lane = L.current->tid % 32;
    if (!(mask >> lane & 1u)) {
        bp_emu_fault("shuffle: the calling lane is not in its mask");
        return v;
    }
    if (bp_emu_tracing) {
        // A bank of its own per lane (an address no buffer has): one wavefront a warp.
        bp_emu_trace(reinterpret_cast<const void *>(static_cast<unsigned long long>(16 + 4 * lane)), 4,
                     BP_EMU_LOAD, file, line);
    }
    ShflLane me{mask, v, v, mode, arg};
    warp_collective_of(mask, &me, shfl_op);
    return me.result;
}

namespace {
thread_local std::string launch_fault;

struct MmaLane {
    bool bf16;
    const unsigned *a, *b;
    float *d;
};

float half_bits_to_f32(unsigned short bits, bool bf16) {
    return bf16 ? __uint_as_float((unsigned)bits << 16) : bp_emu_f16_to_f32(bits);
}

void mma_m16n8k16_op(void *const lanes[32]) {
    float A[16][16], B[16][8], D[16][8];
    const bool bf16 = static_cast<MmaLane *>(lanes[0])->bf16;
    auto pair = [&](unsigned reg, float &lo, float &hi) {
        lo = half_bits_to_f32((unsigned short)(reg & 0xffffu), bf16);
        hi = half_bits_to_f32((unsigned short)(reg >> 16), bf16);
    };
    for (int lane = 0; lane < 32; ++lane) {
        const MmaLane &l = *static_cast<MmaLane *>(lanes[lane]);
        if (l.bf16 != bf16) bp_emu_fault("mma: lanes disagree on the element type");
        const int g = lane >> 2, t = lane & 3;
        pair(l.a[0], A[g][2 * t], A[g][2 * t + 1]);
        pair(l.a[1], A[g + 8][2 * t], A[g + 8][2 * t + 1]);
        pair(l.a[2], A[g][2 * t + 8], A[g][2 * t + 9]);
        pair(l.a[3], A[g + 8][2 * t + 8], A[g + 8][2 * t + 9]);
        float k0, k1, k8, k9;
        pair(l.b[0], k0, k1);
        pair(l.b[1], k8, k9);
        B[2 * t][g] = k0;
        B[2 * t + 1][g] = k1;
        B[2 * t + 8][g] = k8;
        B[2 * t + 9][g] = k9;
        D[g][2 * t] = l.d[0];
        D[g][2 * t + 1] = l.d[1];
        D[g + 8][2 * t] = l.d[2];
        D[g + 8][2 * t + 1] = l.d[3];
    }
    for (int m = 0; m < 16; ++m)
        for (int n = 0; n < 8; ++n) {
            float acc = D[m][n];
            for (int k = 0; k < 16; ++k) acc += A[m][k] * B[k][n];
            D[m][n] = acc;
        }
    for (int lane = 0; lane < 32; ++lane) {
        const MmaLane &l = *static_cast<MmaLane *>(lanes[lane]);
        const int g = lane >> 2, t = lane & 3;
        l.d[0] = D[g][2 * t];
        l.d[1] = D[g][2 * t + 1];
        l.d[2] = D[g + 8][2 * t];
        l.d[3] = D[g + 8][2 * t + 1];
    }
}
} // namespace

void bp_emu_mma_m16n8k16(bool bf16, const unsigned a[4], const unsigned b[2], float d[4], unsigned line,
                         const char *file) {
    if (bp_emu_tracing) bp_emu_trace(nullptr, 0, BP_EMU_MMA, file, line);
    MmaLane lane{bf16, a, b, d};
    bp_emu_warp_collective(&lane, mma_m16n8k16_op);
}

namespace {
struct LdmatrixLane {
    const unsigned char *row;
    unsigned *r;
};

void ldmatrix_x4_op(void *const lanes[32]) {
    unsigned words[32][4];
    for (int lane = 0; lane < 32; ++lane) {
        const int g = lane >> 2, t = lane & 3;
        for (int j = 0; j < 4; ++j)
            std::memcpy(&words[lane][j], static_cast<LdmatrixLane *>(lanes[8 * j + g])->row + 4 * t, 4);
    }
    for (int lane = 0; lane < 32; ++lane)
        for (int j = 0; j < 4; ++j) static_cast<LdmatrixLane *>(lanes[lane])->r[j] = words[lane][j];
}
} // namespace

void bp_emu_ldmatrix_x4(const void *row, unsigned r[4], unsigned line, const char *file) {
    bp_emu_check_aligned(row, 16);
    if (bp_emu_tracing) row = bp_emu_trace(row, 16, BP_EMU_LOAD, file, line);
    LdmatrixLane lane{static_cast<const unsigned char *>(row), r};
    bp_emu_warp_collective(&lane, ldmatrix_x4_op);
}

void bp_emu_cp_async16(void *dst, const void *src, bool valid, unsigned line, const char *file) {
    bp_emu_check_aligned(dst, 16);
    if (valid) {
        bp_emu_check_aligned(src, 16);
        if (bp_emu_tracing) src = bp_emu_trace(src, 16, BP_EMU_LOAD, file, line);
    }
    launch_state.current->copies.emplace_back(dst, valid ? src : nullptr);
}

void bp_emu_cp_async_wait_all() {
    auto &copies = launch_state.current->copies;
    for (auto &c : copies) {
        if (c.second)
            std::memcpy(c.first, c.second, 16);
        else
            std::memset(c.first, 0, 16);
    }
    copies.clear();
}

void bp_emu_fault(const char *what) {
    if (launch_fault.empty()) launch_fault = what;
}

unsigned bp_emu_shared_address(const void *p) {
    Launch &L = launch_state;
    const char *base = reinterpret_cast<const char *>(L.dynamic_shared.data());
    const char *at = static_cast<const char *>(p);
    if (at < base || at >= base + L.shared_bytes) {
        bp_emu_fault("shared address: not in the launch's dynamic shared memory");
        return 0;
    }
    return (unsigned)(at - base);
}

namespace {
// Waits at a collective of the caller's warpgroup.
void warpgroup_collective(void *data, WarpgroupOp op) {
    Launch &L = launch_state;
    if (blockDim.x % 128 != 0) {
        bp_emu_fault("wgmma: the block is not a whole number of warpgroups (128 threads)");
        return;
    }
    L.current->wg_op = op;
    L.current->wg_data = data;
    if (_setjmp(L.current->jmp) == 0) _longjmp(L.scheduler_jmp, 1);
}

Launch::Warpgroup &my_warpgroup() { return launch_state.warpgroups[launch_state.current->tid / 128]; }

void wgmma_fence_op(void *const[128]) { my_warpgroup().fenced = true; }

void wgmma_commit_op(void *const[128]) {
    Launch::Warpgroup &g = my_warpgroup();
    g.committed.push_back(std::move(g.queued));
    g.queued.clear();
}

void wgmma_queue_op(void *const lanes[128]) {
    Launch::Warpgroup &g = my_warpgroup();
    const Launch::Wgmma &w0 = *static_cast<Launch::Wgmma *>(lanes[0]);
    for (unsigned t = 1; t < 128; ++t) {
        const Launch::Wgmma &w = *static_cast<Launch::Wgmma *>(lanes[t]);
        if (w.bf16 != w0.bf16 || w.n != w0.n || w.desc_a != w0.desc_a || w.desc_b != w0.desc_b ||
            w.scale_d != w0.scale_d) {
            bp_emu_fault("wgmma: the threads of a warpgroup disagree on its operands");
            return;
        }
    }
    if (!g.fenced) {
        bp_emu_fault("wgmma: no wgmma.fence since the warpgroup's last wait (or start)");
        return;
    }
    Launch::Wgmma q = w0;
    for (unsigned t = 0; t < 128; ++t) q.d[t] = static_cast<Launch::Wgmma *>(lanes[t])->d[0];
    g.queued.push_back(q);
}

// Element (r, k) of a K-major operand of `rows` rows × 16 in the no-swizzle canonical layout of
// descriptor `desc`, as f32; false (and a fault) where the descriptor or the element is bad.
bool wgmma_operand(unsigned long long desc, unsigned rows, bool bf16, float (*out)[16]) {
    Launch &L = launch_state;
    if ((desc >> 62) != 0 || ((desc >> 49) & 7) != 0) {
        bp_emu_fault("wgmma: only the no-swizzle layout with base offset 0 is emulated");
        return false;
    }
    const unsigned long long start = (desc & 0x3fff) << 4, lbo = ((desc >> 16) & 0x3fff) << 4,
                             sbo = ((desc >> 32) & 0x3fff) << 4;
    const unsigned char *base = reinterpret_cast<const unsigned char *>(L.dynamic_shared.data());
    for (unsigned r = 0; r < rows; ++r)
        for (unsigned k = 0; k < 16; ++k) {
            const unsigned long long at = start + (r / 8) * sbo + (k / 8) * lbo + (r % 8) * 16 + (k % 8) * 2;
            if (at + 2 > L.shared_bytes) {
                bp_emu_fault("wgmma: an operand reaches past the launch's dynamic shared memory");
                return false;
            }
            unsigned short bits;
            std::memcpy(&bits, base + at, 2);
            out[r][k] = half_bits_to_f32(bits, bf16);
        }
    return true;
}

void wgmma_run(const Launch::Wgmma &w) {
    static thread_local float A[64][16], B[256][16];
    if (!wgmma_operand(w.desc_a, 64, w.bf16, A) || !wgmma_operand(w.desc_b, w.n, w.bf16, B)) return;
    for (unsigned t = 0; t < 128; ++t) {
        const unsigned warp = t / 32, lane = t % 32, g = lane / 4, q = lane % 4;
        float *d = w.d[t];
        for (unsigned j = 0; j < w.n / 8; ++j)
            for (unsigned e = 0; e < 4; ++e) {
                const unsigned m = 16 * warp + g + 8 * (e / 2), n = 8 * j + 2 * q + e % 2;
                float acc = w.scale_d ? d[4 * j + e] : 0.f;
                for (unsigned k = 0; k < 16; ++k) acc += A[m][k] * B[n][k];
                d[4 * j + e] = acc;
            }
    }
}

// Runs every committed group but the newest `pending` (passed through the first thread's data).
void wgmma_wait_op(void *const lanes[128]) {
    Launch::Warpgroup &g = my_warpgroup();
    const unsigned pending = *static_cast<unsigned *>(lanes[0]);
    for (unsigned t = 1; t < 128; ++t)
        if (*static_cast<unsigned *>(lanes[t]) != pending) {
            bp_emu_fault("wgmma.wait_group: the threads of a warpgroup disagree on its count");
            return;
        }
    while (g.committed.size() > pending) {
        for (const Launch::Wgmma &w : g.committed.front()) wgmma_run(w);
        g.committed.pop_front();
    }
    g.fenced = false;
}
} // namespace

void bp_emu_wgmma_fence() { warpgroup_collective(nullptr, wgmma_fence_op); }

void bp_emu_wgmma_m64k16(bool bf16, unsigned n, unsigned long long desc_a, unsigned long long desc_b, float *d,
                         bool scale_d, unsigned line, const char *file) {
    if (n == 0 || n > 256 || n % 8 != 0) {
        bp_emu_fault("wgmma: N must be a multiple of 8 from 8 to 256");
        return;
    }
    if (bp_emu_tracing) bp_emu_trace(nullptr, n / 8, BP_EMU_WGMMA, file, line);
    Launch::Wgmma me{bf16, n, desc_a, desc_b, scale_d, {d}};
    warpgroup_collective(&me, wgmma_queue_op);
}

void bp_emu_wgmma_commit() { warpgroup_collective(nullptr, wgmma_commit_op); }

void bp_emu_wgmma_wait(unsigned pending) { warpgroup_collective(&pending, wgmma_wait_op); }

extern "C" {

// Number of registered kernels; names via bp_emu_kernel_name.
size_t bp_emu_kernel_count() { return registry().size(); }

const char *bp_emu_kernel_name(size_t i) {
    if (i >= registry().size()) return nullptr;
    auto it = registry().begin();
    std::advance(it, i);
    return it->first.c_str();
}

}

#include "emu_units.inc" // the kernel units' anchors (generated by emu/build.rs)

#ifdef BP_EMU_GATE_VARIANTS // built only with blurpool-emu's "gate-variants" feature (the model)
void bp_emu_variant_uncoalesced_anchor(); // variant_uncoalesced.cpp
void bp_emu_variant_serialised_anchor();   // variant_serialised.cpp
#endif

namespace {
// Runs kernel `name` over grid × block threads (1-D), traced when `trace` is non-null. Returns
// 0, or writes why not into err.
int run_launch(const char *name, unsigned grid, unsigned block, unsigned shared_bytes, const void *params,
               const void *a, const void *b, const void *c, const void *d, void *out, Trace *trace, char *err,
               size_t err_len) {
    auto fail = [&](const std::string &msg) {
        bp_emu_tracing = false;
        launch_state.trace = nullptr;
        if (err && err_len) std::snprintf(err, err_len, "%s", msg.c_str());
        return 1;
    };
    bp_emu_units_anchor();
#ifdef BP_EMU_GATE_VARIANTS
    bp_emu_variant_uncoalesced_anchor();
    bp_emu_variant_serialised_anchor();
#endif
    auto it = registry().find(name);
    if (it == registry().end()) return fail(std::string("no kernel named ") + name);
    if (grid == 0 || block == 0 || block > 1024) return fail("bad launch dimensions");
    Launch &L = launch_state;
    launch_fault.clear();
    L.entry = it->second;
    L.params = params;
    L.a = a;
    L.b = b;
    L.c = c;
    L.d = d;
    L.out = out;
    L.trace = trace;
    L.shared_bytes = shared_bytes;
    if (L.dynamic_shared.size() * 16 < shared_bytes) L.dynamic_shared.resize((shared_bytes + 15) / 16);
    bp_emu_tracing = trace != nullptr;
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    // Fibers (and their stacks) are kept per OS thread and reused by later launches.
    thread_local std::vector<Fiber> pool;
    if (pool.size() < block) pool.resize(block);
    for (auto &f : pool)
        if (!f.stack) f.stack.reset(new char[kStack]);
    Fiber *fibers_begin = pool.data();
    struct Span {
        Fiber *b, *e;
        Fiber *begin() const { return b; }
        Fiber *end() const { return e; }
    } fibers{fibers_begin, fibers_begin + block};
    for (unsigned bx = 0; bx < grid; ++bx) {
        blockIdx = {bx, 0, 0};
        if (shared_bytes) std::memset(L.dynamic_shared.data(), 0xff, shared_bytes);
        L.warpgroups.assign(block / 128, Launch::Warpgroup{});
        for (unsigned t = 0; t < block; ++t) {
            Fiber &f = fibers.b[t];
            f.tid = t;
            f.done = false;
            f.started = false;
            f.at_barrier = false;
            f.warp_op = nullptr;
            f.wg_op = nullptr;
            f.mask_file = nullptr;
            f.loop_iters = 0;
            f.copies.clear();
            start_fiber(f, &L.scheduler);
        }
        // Run every runnable thread up to its next barrier, warp collective or end; then
        // complete the collectives whose whole warp has arrived (those lanes run again), or,
        // when nothing can run, release a barrier that every thread has reached.
        for (;;) {
            for (auto &f : fibers) {
                if (f.done || f.at_barrier || f.warp_op || f.wg_op || f.mask_file) continue;
                resume(f);
            }
            bool warp_ran = false;
            for (unsigned w = 0; w * 32 < block; ++w) {
                Fiber *lanes = fibers.b + w * 32;
                const unsigned n_lanes = block - w * 32 < 32 ? block - w * 32 : 32;
                // Each collective whose mask's lanes have all arrived at it runs once.
                for (unsigned l0 = 0; l0 < n_lanes; ++l0) {
                    bp_emu_warp_op op = lanes[l0].warp_op;
                    if (!op) continue;
                    const unsigned mask = lanes[l0].warp_mask;
                    bool all = true;
                    for (unsigned l = 0; all && l < 32; ++l)
                        if (mask >> l & 1u)
                            all = l < n_lanes && lanes[l].warp_op == op && lanes[l].warp_mask == mask;
                    if (!all) continue;
                    void *data[32];
                    for (unsigned l = 0; l < 32; ++l) data[l] = mask >> l & 1u ? lanes[l].warp_data : nullptr;
                    op(data);
                    for (unsigned l = 0; l < 32; ++l)
                        if (mask >> l & 1u) lanes[l].warp_op = nullptr;
                    warp_ran = true;
                }
            }
            if (warp_ran) continue;
            // A warpgroup collective whose 128 threads have all arrived at it runs once.
            for (unsigned g = 0; (g + 1) * 128 <= block; ++g) {
                Fiber *threads = fibers.b + g * 128;
                WarpgroupOp op = threads[0].wg_op;
                bool all = op != nullptr;
                for (unsigned t = 1; all && t < 128; ++t) all = threads[t].wg_op == op;
                if (!all) continue;
                void *data[128];
                for (unsigned t = 0; t < 128; ++t) data[t] = threads[t].wg_data;
                L.current = &threads[0]; // the op's faults and state are the warpgroup's
                op(data);
                for (unsigned t = 0; t < 128; ++t) threads[t].wg_op = nullptr;
                warp_ran = true;
            }
            if (warp_ran) continue;
            // Nothing can run: the lanes waiting at an __activemask() get their masks.
            bool mask_given = false;
            for (unsigned w = 0; w * 32 < block; ++w) {
                Fiber *lanes = fibers.b + w * 32;
                const unsigned n_lanes = block - w * 32 < 32 ? block - w * 32 : 32;
                for (unsigned l0 = 0; l0 < n_lanes; ++l0) {
                    if (!lanes[l0].mask_file) continue;
                    unsigned group = 0;
                    for (unsigned l = l0; l < n_lanes; ++l)
                        if (lanes[l].mask_file == lanes[l0].mask_file && lanes[l].mask_line == lanes[l0].mask_line)
                            group |= 1u << l;
                    // part[l]: which of the split's groups lane l runs in; in turn 3 the odd
                    // lanes are held back (if any even lane goes), so that the even ones meet
                    // them at this call again one iteration later: lanes of different
                    // iterations in one mask, as independent thread scheduling allows.
                    unsigned part[32] = {};
                    const unsigned turn = warp_split ? split_turn++ % 4 : 4;
                    const unsigned cut = 1u + split_turn % 31; // a run boundary
                    const bool hold = turn == 3 && (group & 0x55555555u) != 0 && (group & 0xaaaaaaaau) != 0;
                    if (hold) group &= 0x55555555u;
                    for (unsigned l = 0; l < 32; ++l)
                        part[l] = turn == 0 ? l : turn == 1 ? l % 2 : turn == 2 ? (l >= cut) : 0;
                    for (unsigned l = 0; l < 32; ++l) {
                        if (!(group >> l & 1u)) continue;
                        unsigned m = 0;
                        for (unsigned k = 0; k < 32; ++k)
                            if (group >> k & 1u && part[k] == part[l]) m |= 1u << k;
                        lanes[l].mask_result = m;
                    }
                    for (unsigned l = 0; l < 32; ++l)
                        if (group >> l & 1u) lanes[l].mask_file = nullptr;
                    mask_given = true;
                    if (hold) break; // the held lanes wait for the next round
                }
            }
            if (mask_given) continue;
            unsigned waiting = 0, finished = 0, at_warp = 0, at_group = 0;
            for (auto &f : fibers) {
                waiting += f.at_barrier;
                finished += f.done;
                at_warp += f.warp_op != nullptr;
                at_group += f.wg_op != nullptr;
            }
            if (finished == block) {
                for (auto &g : L.warpgroups)
                    if (!g.queued.empty() || !g.committed.empty())
                        bp_emu_fault("a warpgroup ended with wgmma it never waited for");
                break;
            }
            if (at_group) {
                return fail(std::string(name) + ": block " + std::to_string(bx) + ": " + std::to_string(at_group) +
                            " threads wait at a warpgroup collective (wgmma) that the rest of their warpgroup "
                            "(of 128) never reaches");
            }
            if (at_warp) {
                return fail(std::string(name) + ": block " + std::to_string(bx) + ": " + std::to_string(at_warp) +
                            " threads wait at a warp collective that the rest of their warp (of 32) never reaches");
            }
            if (waiting != block) {
                return fail(std::string(name) + ": block " + std::to_string(bx) + ": " + std::to_string(waiting) +
                            " threads wait at __syncthreads() while " + std::to_string(finished) +
                            " have returned (divergent barrier)");
            }
            for (auto &f : fibers) f.at_barrier = false;
        }
        if (trace) {
            ++trace->blocks_run;
            const bool more = trace->on_block(trace->ctx, bx, trace->events.data(), trace->events.size()) != 0;
            trace->events.clear();
            if (!more) break;
        }
    }
    L.current = nullptr;
    L.trace = nullptr;
    bp_emu_tracing = false;
    if (!launch_fault.empty()) return fail(std::string(name) + ": " + launch_fault);
    return 0;
}
} // namespace

extern "C" {

// Split mode for the calling OS thread's later launches (emu.h, __activemask).
void bp_emu_set_warp_split(int on) {
    warp_split = on != 0;
    split_turn = 0;
}

int bp_emu_launch(const char *name, unsigned grid, unsigned block, unsigned shared_bytes, const void *params,
                  const void *a, const void *b, const void *c, const void *d, void *out, char *err, size_t err_len) {
    return run_launch(name, grid, block, shared_bytes, params, a, b, c, d, out, nullptr, err, err_len);
}

// The traced launch: as bp_emu_launch, with every hooked access recorded. After each block,
// `on_block(ctx, block, events, n)` gets the block's events in the order they ran (each thread's
// in program order); blocks run from 0 until the grid ends or on_block returns 0. Each thread
// runs at most `max_iters` iterations of its work loop (0: no limit); `items` receives the work
// loop's item count and the items the traced threads (per-block loops: blocks) ran,
// `warp_iterations` the iterations each warp's lane 0 ran (summed), and `blocks_run` the blocks. Accesses inside a `redirects` range land at the same offset of
// its `real` range.
int bp_emu_launch_traced(const char *name, unsigned grid, unsigned block, unsigned shared_bytes, const void *params,
                         const void *a, const void *b, const void *c, const void *d, void *out, unsigned max_iters,
                         const Redirect *redirects, size_t n_redirects, BlockCallback on_block, void *ctx,
                         long long *items_total, unsigned long long *items_sampled,
                         unsigned long long *warp_iterations, unsigned *blocks_run, char *err, size_t err_len) {
    if (!on_block) {
        if (err && err_len) std::snprintf(err, err_len, "%s", "a traced launch needs a block callback");
        return 1;
    }
    Trace t;
    t.max_iters = max_iters;
    t.redirects = redirects;
    t.n_redirects = n_redirects;
    t.on_block = on_block;
    t.ctx = ctx;
    const int rc = run_launch(name, grid, block, shared_bytes, params, a, b, c, d, out, &t, err, err_len);
    *items_total = t.items_total;
    *items_sampled = t.items_sampled;
    *warp_iterations = t.warp_iterations;
    *blocks_run = t.blocks_run;
    return rc;
}
}

// Self-test kernels for the emulator's own tests (emu/tests): a shared-memory reversal that is
// only right if every thread's store lands before any thread's load (the barrier works), and a
// barrier reached by half the block (must be reported).
namespace {
void emu_selftest_reverse(const void *, const void *a, const void *, const void *, const void *, void *out) {
    __shared__ float tile[1024];
    const float *in = (const float *)a + blockIdx.x * blockDim.x;
    float *o = (float *)out + blockIdx.x * blockDim.x;
    tile[threadIdx.x] = in[threadIdx.x];
    __syncthreads();
    o[threadIdx.x] = tile[blockDim.x - 1 - threadIdx.x];
}
// The block's dynamic shared memory as 256 floats: out[0..256) gets what each thread found in
// its float before writing it (the poison), out[256..512) the reversal through it.
void emu_selftest_dynamic(const void *, const void *a, const void *, const void *, const void *, void *out) {
    float *tile = static_cast<float *>(bp_emu_dynamic_shared(256 * sizeof(float)));
    const float *in = (const float *)a;
    float *o = (float *)out;
    o[threadIdx.x] = tile[threadIdx.x];
    __syncthreads();
    tile[threadIdx.x] = in[threadIdx.x];
    __syncthreads();
    o[256 + threadIdx.x] = tile[blockDim.x - 1 - threadIdx.x];
}
void emu_selftest_divergent(const void *, const void *, const void *, const void *, const void *, void *) {
    if (threadIdx.x % 2 == 0) __syncthreads();
}
// One m16n8k16 per warp: a = A (16×16 f16 bits, row-major), b = B (16×8 f16 bits, row-major
// K×N), out = D = A·B (16×8 f32 per warp), each lane loading its fragment by the PTX layout.
void emu_selftest_mma(const void *, const void *a, const void *b, const void *, const void *, void *out) {
    const unsigned short *A = (const unsigned short *)a, *B = (const unsigned short *)b;
    const unsigned lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    auto two = [](unsigned short lo, unsigned short hi) { return (unsigned)lo | ((unsigned)hi << 16); };
    unsigned fa[4] = {two(A[g * 16 + 2 * t], A[g * 16 + 2 * t + 1]),
                      two(A[(g + 8) * 16 + 2 * t], A[(g + 8) * 16 + 2 * t + 1]),
                      two(A[g * 16 + 2 * t + 8], A[g * 16 + 2 * t + 9]),
                      two(A[(g + 8) * 16 + 2 * t + 8], A[(g + 8) * 16 + 2 * t + 9])};
    unsigned fb[2] = {two(B[(2 * t) * 8 + g], B[(2 * t + 1) * 8 + g]),
                      two(B[(2 * t + 8) * 8 + g], B[(2 * t + 9) * 8 + g])};
    float d[4] = {0.f, 0.f, 0.f, 0.f};
    bp_emu_mma_m16n8k16(false, fa, fb, d);
    float *D = (float *)out + (threadIdx.x / 32) * 128;
    D[g * 8 + 2 * t] = d[0];
    D[g * 8 + 2 * t + 1] = d[1];
    D[(g + 8) * 8 + 2 * t] = d[2];
    D[(g + 8) * 8 + 2 * t + 1] = d[3];
}
// Half a warp at an mma: must be reported.
void emu_selftest_partial_warp(const void *, const void *, const void *, const void *, const void *, void *) {
    unsigned a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
    float d[4] = {0.f, 0.f, 0.f, 0.f};
    if (threadIdx.x % 32 < 16) bp_emu_mma_m16n8k16(false, a, b, d);
}
// __activemask() and the shuffles: out gets, per thread, its mask and what it received from
// an up-1, a down-2 and an idx-5 shuffle of v = 1000·block + thread over that mask. In warp 1,
// lanes 20 and up return first (their out: four zeros).
void emu_selftest_shfl(const void *, const void *, const void *, const void *, const void *, void *out) {
    unsigned *o = (unsigned *)out + 4 * (blockIdx.x * blockDim.x + threadIdx.x);
    if (threadIdx.x / 32 == 1 && threadIdx.x % 32 >= 20) {
        o[0] = o[1] = o[2] = o[3] = 0;
        return;
    }
    const unsigned m = __activemask();
    const unsigned v = 1000 * blockIdx.x + threadIdx.x;
    o[0] = m;
    o[1] = __shfl_up_sync(m, v, 1);
    o[2] = __shfl_down_sync(m, v, 2);
    o[3] = __shfl_sync(m, v, 5);
}
// A shuffle over the whole warp that half the warp never reaches, and one whose caller is not
// in its mask: both must be reported.
void emu_selftest_shfl_missing(const void *, const void *, const void *, const void *, const void *, void *) {
    if (threadIdx.x % 32 < 16) (void)__shfl_down_sync(~0u, threadIdx.x, 1);
}
void emu_selftest_shfl_outside(const void *, const void *, const void *, const void *, const void *, void *) {
    (void)__shfl_down_sync(1u, threadIdx.x, 1);
}
// wgmma: two warpgroups (256 threads), each with its own operands in dynamic shared memory
// (5632 bytes) in a layout of its own: warpgroup 0 with A's k-halves 1024 bytes apart and its
// row groups 128 (B: 384, 128), warpgroup 1 with the k-halves 128 apart and the row groups 256
// (B alike). a = A (64×16 f16 bits, row-major), b = Bᵀ (24×16 f16 bits: row n, column k). Each
// warpgroup queues D = A·Bᵀ (scale_d false) and D += A·Bᵀ as one group, stores what its
// accumulators hold before the wait (out[2·64·24 + g·64·24..], row-major 64×24: the 100s they
// started with), waits, and stores D (out[g·64·24..]: 2·A·Bᵀ).
unsigned long long emu_desc(const void *p, unsigned lbo, unsigned sbo) {
    return (bp_emu_shared_address(p) >> 4 & 0x3fffull) | (unsigned long long)(lbo >> 4 & 0x3fff) << 16 |
           (unsigned long long)(sbo >> 4 & 0x3fff) << 32;
}
void emu_selftest_wgmma(const void *, const void *a, const void *b, const void *, const void *, void *out) {
    constexpr unsigned N = 24;
    const unsigned short *A = (const unsigned short *)a, *B = (const unsigned short *)b;
    unsigned char *smem = static_cast<unsigned char *>(bp_emu_dynamic_shared(5632));
    const unsigned g = threadIdx.x / 128, t = threadIdx.x % 128;
    unsigned char *sa = smem + g * 2816, *sb = sa + 2048;
    const unsigned a_lbo = g == 0 ? 1024 : 128, a_sbo = g == 0 ? 128 : 256;
    const unsigned b_lbo = g == 0 ? 384 : 128, b_sbo = g == 0 ? 128 : 256;
    for (unsigned i = t; i < 64 * 16; i += 128) {
        const unsigned r = i / 16, k = i % 16;
        std::memcpy(sa + (r / 8) * a_sbo + (k / 8) * a_lbo + (r % 8) * 16 + (k % 8) * 2, &A[i], 2);
    }
    for (unsigned i = t; i < N * 16; i += 128) {
        const unsigned n = i / 16, k = i % 16;
        std::memcpy(sb + (n / 8) * b_sbo + (k / 8) * b_lbo + (n % 8) * 16 + (k % 8) * 2, &B[i], 2);
    }
    __syncthreads();
    float d[N / 2];
    for (float &v : d) v = 100.f; // what scale_d false must discard
    bp_emu_wgmma_fence();
    bp_emu_wgmma_m64k16(false, N, emu_desc(sa, a_lbo, a_sbo), emu_desc(sb, b_lbo, b_sbo), d, false);
    bp_emu_wgmma_m64k16(false, N, emu_desc(sa, a_lbo, a_sbo), emu_desc(sb, b_lbo, b_sbo), d, true);
    bp_emu_wgmma_commit();
    float *o = (float *)out;
    const unsigned warp = t / 32, lane = t % 32;
    auto store = [&](float *D) {
        for (unsigned j = 0; j < N / 8; ++j)
            for (unsigned e = 0; e < 4; ++e)
                D[(16 * warp + lane / 4 + 8 * (e / 2)) * N + 8 * j + 2 * (lane % 4) + e % 2] = d[4 * j + e];
    };
    store(o + 2 * 64 * N + g * 64 * N);
    bp_emu_wgmma_wait(0);
    store(o + g * 64 * N);
}
// Misuse that must be reported: a wgmma with no fence before it; a group never waited for; a
// fence that a quarter of the warpgroup never reaches; a swizzled descriptor; a second wgmma
// after a wait with no fence between.
void emu_selftest_wgmma_misuse(const void *params, const void *, const void *, const void *, const void *, void *) {
    const int which = *static_cast<const int *>(params);
    unsigned char *smem = static_cast<unsigned char *>(bp_emu_dynamic_shared(4096));
    float d[8] = {};
    const unsigned long long desc = emu_desc(smem, 128, 256);
    if (which == 0) {
        bp_emu_wgmma_m64k16(false, 16, desc, desc, d, false);
    } else if (which == 1) {
        bp_emu_wgmma_fence();
        bp_emu_wgmma_m64k16(false, 16, desc, desc, d, false);
        bp_emu_wgmma_commit();
    } else if (which == 2) {
        if (threadIdx.x < 96) bp_emu_wgmma_fence();
    } else if (which == 3) {
        bp_emu_wgmma_fence();
        bp_emu_wgmma_m64k16(false, 16, desc | 1ull << 62, desc, d, false);
        bp_emu_wgmma_commit();
        bp_emu_wgmma_wait(0);
    } else {
        bp_emu_wgmma_fence();
        bp_emu_wgmma_m64k16(false, 16, desc, desc, d, false);
        bp_emu_wgmma_commit();
        bp_emu_wgmma_wait(0);
        bp_emu_wgmma_m64k16(false, 16, desc, desc, d, true);
        bp_emu_wgmma_commit();
        bp_emu_wgmma_wait(0);
    }
}
bp_emu_registrar wgmma_registrar("emu_selftest_wgmma", emu_selftest_wgmma);
bp_emu_registrar wgmma_misuse_registrar("emu_selftest_wgmma_misuse", emu_selftest_wgmma_misuse);
bp_emu_registrar shfl_registrar("emu_selftest_shfl", emu_selftest_shfl);
bp_emu_registrar shfl_missing_registrar("emu_selftest_shfl_missing", emu_selftest_shfl_missing);
bp_emu_registrar shfl_outside_registrar("emu_selftest_shfl_outside", emu_selftest_shfl_outside);
bp_emu_registrar reverse_registrar("emu_selftest_reverse", emu_selftest_reverse);
bp_emu_registrar dynamic_registrar("emu_selftest_dynamic", emu_selftest_dynamic);
bp_emu_registrar mma_registrar("emu_selftest_mma", emu_selftest_mma);
bp_emu_registrar partial_warp_registrar("emu_selftest_partial_warp", emu_selftest_partial_warp);
bp_emu_registrar divergent_registrar("emu_selftest_divergent", emu_selftest_divergent);
} // namespace
