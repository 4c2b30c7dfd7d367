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

struct Fiber {
    ucontext_t ctx;
    jmp_buf jmp; // where the thread waits at a barrier
    bool started = false;
    std::unique_ptr<char[]> stack; // uninitialised: zeroing it per launch would dominate
    unsigned tid = 0;
    bool done = false;
    bool at_barrier = false;
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
};
thread_local Launch launch_state;

void fiber_main() {
    Launch &L = launch_state;
    L.entry(L.params, L.a, L.b, L.c, L.d, L.out);
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

bp_emu_registrar::bp_emu_registrar(const char *name, bp_emu_entry entry) { registry()[name] = entry; }

void __syncthreads() {
    Launch &L = launch_state;
    L.current->at_barrier = true;
    if (_setjmp(L.current->jmp) == 0) _longjmp(L.scheduler_jmp, 1);
}

namespace {
thread_local std::string launch_fault;
}

void bp_emu_fault(const char *what) {
    if (launch_fault.empty()) launch_fault = what;
}

extern "C" {

// Number of registered kernels; names via bp_emu_kernel_name.
size_t bp_emu_kernel_count() { return registry().size(); }

const char *bp_emu_kernel_name(size_t i) {
    if (i >= registry().size()) return nullptr;
    auto it = registry().begin();
    std::advance(it, i);
    return it->first.c_str();
}

// Runs kernel `name` over grid × block threads (1-D). Returns 0, or writes why not into err.
int bp_emu_launch(const char *name, unsigned grid, unsigned block, const void *params, const void *a,
                  const void *b, const void *c, const void *d, void *out, char *err, size_t err_len) {
    auto fail = [&](const std::string &msg) {
        if (err && err_len) std::snprintf(err, err_len, "%s", msg.c_str());
        return 1;
    };
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
        for (unsigned t = 0; t < block; ++t) {
            Fiber &f = fibers.b[t];
            f.tid = t;
            f.done = false;
            f.started = false;
            f.at_barrier = false;
            start_fiber(f, &L.scheduler);
        }
        // Run every thread up to its next barrier (or its end), then check that they agree.
        for (;;) {
            for (auto &f : fibers) {
                if (f.done) continue;
                f.at_barrier = false;
                resume(f);
            }
            unsigned waiting = 0, finished = 0;
            for (auto &f : fibers) {
                waiting += f.at_barrier;
                finished += f.done;
            }
            if (finished == block) break;
            if (waiting != block) {
                return fail(std::string(name) + ": block " + std::to_string(bx) + ": " + std::to_string(waiting) +
                            " threads wait at __syncthreads() while " + std::to_string(finished) +
                            " have returned (divergent barrier)");
            }
        }
    }
    L.current = nullptr;
    if (!launch_fault.empty()) return fail(std::string(name) + ": " + launch_fault);
    return 0;
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
void emu_selftest_divergent(const void *, const void *, const void *, const void *, const void *, void *) {
    if (threadIdx.x % 2 == 0) __syncthreads();
}
bp_emu_registrar reverse_registrar("emu_selftest_reverse", emu_selftest_reverse);
bp_emu_registrar divergent_registrar("emu_selftest_divergent", emu_selftest_divergent);
} // namespace
