#pragma once
// Runs memtx's CUDA kernel bodies on the host, so that their index math, masking, tiling,
// barriers and shuffles are checked on machines without a GPU (CI, development).
//
// Each launch runs the CUDA threads of a block (1-, 2- or 3-D; warps are runs of 32 consecutive
// linear thread ids, x fastest, as on the GPU) as cooperative fibers (POSIX ucontext) on the
// calling OS thread, one at a time; the fibers walk the grid's blocks in order, with
// __syncthreads a barrier over the block and __shfl_xor_sync an exchange through a per-warp slot
// array and one warp barrier (two slot arrays, used alternately); the tensor-core MMA of
// kernels/mma.cuh (MEMTX_EMULATED_MMA_BF16) is a warp collective of the same kind, and
// __syncwarp the warp barrier. A barrier is a count and a generation: the last thread to arrive
// opens it and runs on, the others hand over to the next fiber (round robin, in linear-id order)
// until the generation moves. A full round in which no thread arrives anywhere is a deadlock (a
// barrier that not all its threads reach): the emulation says so and aborts, where a GPU would
// hang or misbehave. The fibers' stacks are mapped once per OS thread and reused launch after
// launch; under ASan the switches carry its fiber annotations.
// Dynamic shared memory is one static array (`extern __shared__` declarations name it), reused
// block after block; a kernel's static shared arrays, declared `MEMTX_SHARED`
// (kernels/shared_memory.cuh), become function-local statics: one array that all the emulated
// threads of the block see. This checks what the kernels compute, not how fast, and not the GPU
// memory model: a race that only shows on hardware needs the real run (scripts/gpu_check.sh,
// under compute-sanitizer).
//
// Include this header before any kernel header, in a host-compiled (g++) translation unit.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define MEMTX_EMULATION_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEMTX_EMULATION_ASAN 1
#endif
#endif
#ifdef MEMTX_EMULATION_ASAN
#include <dlfcn.h>
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace memtx_emulation {

struct ThreadPosition {
    uint3 thread_idx{0, 0, 0}, block_idx{0, 0, 0};
    dim3 block_dim{1, 1, 1}, grid_dim{1, 1, 1};
    int linear = 0;   // x + y * block_dim.x + z * block_dim.x * block_dim.y: warp = linear / 32
};

// A barrier over `expected` fibers: a count and a generation. The last to arrive opens it (the
// generation moves on, the count starts again) and runs on; the others yield until the
// generation has moved.
struct Barrier {
    int expected = 0, arrived = 0;
    std::uint64_t generation = 0;
};

struct BlockSync {
    Barrier block;
    std::vector<Barrier> warps;
    // two slots per thread, each wide enough for any shuffled type: shuffles alternate between them
    std::vector<std::uint64_t> exchange;
    // the tensor-core MMA's fragments: kMmaWords per thread, two slot arrays used alternately
    static constexpr std::size_t kMmaWords = 10;   // A: 4, B: 2 (bf16x2 words), C: 4 floats
    std::vector<std::uint32_t> mma_exchange;
    explicit BlockSync(int threads)
        : exchange(2 * static_cast<std::size_t>(threads)), mma_exchange(2 * kMmaWords * static_cast<std::size_t>(threads)) {
        block.expected = threads;
        warps.assign(static_cast<std::size_t>(threads / 32), Barrier{32, 0, 0});
    }
};

namespace fibers {
class Scheduler;
}

// What one emulated CUDA thread keeps (its special registers, its block's barriers, its
// shuffle/MMA parities): one per fiber. `current` is the running fiber's; the scheduler sets it
// before it resumes a fiber, and the built-ins (threadIdx, __syncthreads, ...) read through it.
struct ThreadState {
    ThreadPosition position;
    BlockSync* sync = nullptr;
    fibers::Scheduler* scheduler = nullptr;
    int shuffle_parity = 0;   // which slot array this thread's next shuffle uses
    int mma_parity = 0;       // likewise for the MMA's fragments
};
inline thread_local ThreadState* current = nullptr;

namespace fibers {

#ifdef MEMTX_EMULATION_ASAN
// glibc's swapcontext itself. ASan's interceptor of swapcontext prints a warning ("may produce
// false positives") and clears the shadow of the target's whole stack before and after every
// switch; with the fiber annotations below, and a stack's shadow cleared when a fiber starts on
// it, nothing is left for it to do.
using SwapContext = int (*)(ucontext_t*, const ucontext_t*);
inline SwapContext libc_swapcontext() {
    static const SwapContext fn = [] {
        void* libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
        void* sym = libc ? dlsym(libc, "swapcontext") : nullptr;
        return sym ? reinterpret_cast<SwapContext>(sym) : &::swapcontext;
    }();
    return fn;
}
#endif

// A context to switch to: a fiber, or the launching OS thread's own stack.
struct Context {
    ucontext_t uc{};
    const void* stack_bottom = nullptr;   // for ASan: the stack this context runs on
    std::size_t stack_size = 0;
    void* fake_stack = nullptr;           // for ASan: this context's fake stack while it is switched out
};

struct Fiber {
    Context context;
    ThreadState state;
    bool done = false;
};

// A fiber stack: `size` bytes from `bottom`, a PROT_NONE guard page below (stacks grow down).
struct Stack {
    void* mapping = nullptr;
    std::size_t mapping_size = 0;
    void* bottom = nullptr;
    std::size_t size = 0;
    // for ASan: from here up, the shadow may hold the redzones of the frames the last fiber on this
    // stack never returned from (fiber_main's, its last switch's); every frame that returned
    // cleared its own
    char* poisoned_from = nullptr;
};

[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "memtx emulation: %s\n", what);
    std::abort();
}

// Runs the CUDA threads of a launch as fibers on the calling OS thread, one at a time, round
// robin: a fiber runs until it waits at a barrier (block or warp) or ends, then hands over to the
// next fiber in linear-id order that has not ended. One per OS thread; its stacks (and fiber
// records) are kept from launch to launch, grown to the largest block seen.
class Scheduler {
public:
    // Above what any kernel keeps in local arrays (a few KiB: the attention kernels' register
    // tiles), with room for ASan's redzones.
    static constexpr std::size_t kStackBytes = 256 * 1024;

    static Scheduler& of_this_thread() {
        static thread_local Scheduler scheduler;
        return scheduler;
    }
    Scheduler() = default;
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;
    ~Scheduler() {
        for (const Stack& s : stacks_) {
#ifdef MEMTX_EMULATION_ASAN
            char* const top = static_cast<char*>(s.bottom) + s.size;   // leave no poison behind for a later mapping
            __asan_unpoison_memory_region(s.poisoned_from, static_cast<std::size_t>(top - s.poisoned_from));
#endif
            munmap(s.mapping, s.mapping_size);
        }
    }

    // body(arg) as every thread of every block of the grid; returns when all have ended.
    void run(dim3 grid, dim3 block, void (*body)(void*), void* arg) {
        if (running_) fail("a launch inside a launch");
        const int threads = static_cast<int>(block.x * block.y * block.z);
        if (threads <= 0) return;
        BlockSync sync(threads);
        reserve(threads);
        body_ = body;
        arg_ = arg;
        count_ = threads;
        live_ = threads;
        for (int t = 0; t < threads; ++t) {
            Fiber& f = fibers_[static_cast<std::size_t>(t)];
            Stack& stack = stacks_[static_cast<std::size_t>(t)];
            f.done = false;
            const auto u = static_cast<unsigned>(t);
            f.state = ThreadState{};
            f.state.position.thread_idx = {u % block.x, u / block.x % block.y, u / (block.x * block.y)};
            f.state.position.block_dim = block;
            f.state.position.grid_dim = grid;
            f.state.position.linear = t;
            f.state.sync = &sync;
            f.state.scheduler = this;
            make_context(f.context, stack);
        }
        running_ = true;
        index_ = 0;
        switch_to(launcher_, fibers_[0], false);   // back here when the last fiber has ended
        running_ = false;
        current = nullptr;
        if (live_ != 0) fail("a launch returned before its threads ended");
    }

    // Arrive at `b` and wait until all its fibers have arrived.
    void wait(Barrier& b) {
        ++progress_;
        if (++b.arrived == b.expected) {
            b.arrived = 0;
            ++b.generation;
            return;
        }
        const std::uint64_t generation = b.generation;
        do {
            const std::uint64_t seen = progress_;
            yield();
            // every other fiber has had its turn since, and none arrived anywhere or ended
            if (b.generation == generation && progress_ == seen)
                fail("deadlock: every thread of the block waits at a barrier (__syncthreads, a warp "
                     "shuffle, MMA or __syncwarp) that not all the threads it waits for reach");
        } while (b.generation == generation);
    }

private:
    void reserve(int threads) {
        const auto n = static_cast<std::size_t>(threads);
        while (stacks_.size() < n) stacks_.push_back(map_stack());
        if (fibers_.size() < n) fibers_.resize(n);   // no fiber is live between launches
    }

    // A fresh context that starts fiber_main on `stack`. (Its own function: getcontext returns
    // twice as far as the compiler knows, which would pin the caller's locals to memory.)
    [[gnu::noinline]] static void make_context(Context& c, Stack& stack) {
        if (getcontext(&c.uc) != 0) fail("getcontext failed");
        c.uc.uc_stack.ss_sp = stack.bottom;
        c.uc.uc_stack.ss_size = stack.size;
        c.uc.uc_link = nullptr;   // fiber_main never returns
        makecontext(&c.uc, &Scheduler::fiber_main, 0);
        c.stack_bottom = stack.bottom;
        c.stack_size = stack.size;
        c.fake_stack = nullptr;
#ifdef MEMTX_EMULATION_ASAN
        char* const top = static_cast<char*>(stack.bottom) + stack.size;
        __asan_unpoison_memory_region(stack.poisoned_from, static_cast<std::size_t>(top - stack.poisoned_from));
        stack.poisoned_from = top;
#endif
    }

    static Stack map_stack() {
        const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
        Stack s;
        s.mapping_size = kStackBytes + page;
        s.mapping = mmap(nullptr, s.mapping_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                         -1, 0);
        if (s.mapping == MAP_FAILED) throw std::bad_alloc();
        if (mprotect(s.mapping, page, PROT_NONE) != 0) {
            munmap(s.mapping, s.mapping_size);
            throw std::bad_alloc();
        }
        s.bottom = static_cast<char*>(s.mapping) + page;
        s.size = kStackBytes;
        s.poisoned_from = static_cast<char*>(s.bottom);   // a mapping may reuse addresses whose shadow is stale
        return s;
    }

    // The next fiber after `i` (cyclically) that has not ended: `i` itself when it is the only
    // one, -1 when none is left.
    int next_live(int i) const {
        for (int k = 1; k <= count_; ++k) {
            int j = i + k;
            if (j >= count_) j -= count_;
            if (!fibers_[static_cast<std::size_t>(j)].done) return j;
        }
        return -1;
    }

    // The running fiber hands over to the next live one.
    void yield() {
        const int from = index_, to = next_live(from);
        if (to == from) return;
        index_ = to;
        switch_to(fibers_[static_cast<std::size_t>(from)].context, fibers_[static_cast<std::size_t>(to)], false);
    }

    void switch_to(Context& from, Fiber& to, bool from_ends) {
        current = &to.state;
        switch_context(from, to.context, from_ends);
    }

    // Saves the running context in `from` and resumes `to`; returns when something switches back
    // to `from` (never, when `from_ends`: a fiber's last switch).
    static void switch_context(Context& from, Context& to, bool from_ends) {
#ifdef MEMTX_EMULATION_ASAN
        __sanitizer_start_switch_fiber(from_ends ? nullptr : &from.fake_stack, to.stack_bottom, to.stack_size);
        libc_swapcontext()(&from.uc, &to.uc);
        __sanitizer_finish_switch_fiber(from.fake_stack, nullptr, nullptr);
#else
        (void)from_ends;
        swapcontext(&from.uc, &to.uc);
#endif
    }

    // A fiber: the thread's body for every block of the grid, in order, then its last switch.
    // Kernels do not throw; an exception out of body() ends here, in a noexcept function:
    // std::terminate (it cannot cross to the launcher's stack).
    static void fiber_main() noexcept {
        Scheduler& s = of_this_thread();
        Fiber& f = s.fibers_[static_cast<std::size_t>(s.index_)];
#ifdef MEMTX_EMULATION_ASAN
        const void* from_bottom = nullptr;
        std::size_t from_size = 0;
        __sanitizer_finish_switch_fiber(nullptr, &from_bottom, &from_size);
        if (s.index_ == 0) {   // fiber 0 starts first, from the launcher: the stack to return to
            s.launcher_.stack_bottom = from_bottom;
            s.launcher_.stack_size = from_size;
        }
#endif
        ThreadState& st = f.state;
        const dim3 grid = st.position.grid_dim;
        for (unsigned z = 0; z < grid.z; ++z)
            for (unsigned y = 0; y < grid.y; ++y)
                for (unsigned x = 0; x < grid.x; ++x) {
                    st.position.block_idx = {x, y, z};
                    s.body_(s.arg_);
                    s.wait(st.sync->block);   // the next block reuses shared memory
                }
#ifdef MEMTX_EMULATION_ASAN
        {   // this frame and the last switch's below it stay poisoned: 16 KiB is far more than they take
            Stack& stack = s.stacks_[static_cast<std::size_t>(s.index_)];
            char* const low = static_cast<char*>(__builtin_frame_address(0)) - 16 * 1024;
            stack.poisoned_from = std::max(low, static_cast<char*>(stack.bottom));
        }
#endif
        f.done = true;
        --s.live_;
        ++s.progress_;
        const int next = s.next_live(s.index_);
        if (next < 0) {
            current = nullptr;
            switch_context(f.context, s.launcher_, true);
        } else {
            s.index_ = next;
            s.switch_to(f.context, s.fibers_[static_cast<std::size_t>(next)], true);
        }
        fail("an ended fiber was resumed");
    }

    std::vector<Stack> stacks_;
    std::vector<Fiber> fibers_;
    Context launcher_;
    void (*body_)(void*) = nullptr;
    void* arg_ = nullptr;
    int count_ = 0, live_ = 0, index_ = 0;
    std::uint64_t progress_ = 0;   // barrier arrivals and fiber ends so far: a deadlock makes none
    bool running_ = false;
};

} // namespace fibers

inline void syncthreads() { current->scheduler->wait(current->sync->block); }

// __shfl_xor_sync over the full warp, for the types CUDA shuffles (4- and 8-byte: int, unsigned,
// float, double, long long, ...); the value travels as bytes, so a double keeps all its bits.
// Every lane of the warp takes part in every shuffle (the full mask), in the same order, so the
// lanes agree on the parity. Shuffle k writes slot array k % 2 and reads it after the barrier;
// the next write to that array, by shuffle k + 2, comes after the barrier of shuffle k + 1,
// which no lane passes before it has read shuffle k: one barrier per shuffle suffices.
template <class T>
T shfl_xor(T v, int lane_mask) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= sizeof(std::uint64_t), "__shfl_xor_sync: 4 or 8 bytes");
    ThreadState& me = *current;
    BlockSync& s = *me.sync;
    const int t = me.position.linear, warp = t / 32, lane = t % 32;
    const std::size_t base = static_cast<std::size_t>(me.shuffle_parity) * (s.exchange.size() / 2);
    me.shuffle_parity ^= 1;
    std::memcpy(&s.exchange[base + static_cast<std::size_t>(t)], &v, sizeof(T));
    me.scheduler->wait(s.warps[static_cast<std::size_t>(warp)]);
    T r;
    std::memcpy(&r, &s.exchange[base + static_cast<std::size_t>(warp * 32 + (lane ^ lane_mask))], sizeof(T));
    return r;
}

// __syncwarp(): the warp's lanes wait for each other (orders their shared-memory accesses).
inline void syncwarp() { current->scheduler->wait(current->sync->warps[static_cast<std::size_t>(current->position.linear / 32)]); }

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 as a warp collective: every lane deposits
// its fragments (a: 4 bf16x2 words, b: 2, c: 4 floats, the PTX ISA layout written out in
// kernels/mma.cuh), one warp barrier, then each lane computes its own four D elements from the
// gathered A and B in fp32 (the bf16 products are exact in fp32). Two slot arrays alternate as
// for the shuffles, so one barrier per MMA suffices.
inline float bf16_word_half(std::uint32_t w, int half) { return std::bit_cast<float>((half ? w >> 16 : w & 0xFFFFu) << 16); }

// Lane `lane`'s four D elements from its warp's gathered fragments (`warp_slots`: kMmaWords per
// lane). Its index math is fixed (and checked by the MMA test against a plain matmul) and it reads
// only the emulation's own slot array, so it is left out of ASan/UBSan instrumentation, which
// made it the largest cost of the sanitized runs; the kernels' fragments come in, and D goes
// out, through the instrumented caller.
#if defined(__GNUC__)
__attribute__((no_sanitize("address", "undefined")))
#endif
inline void mma_lane_products(float* out, const std::uint32_t* warp_slots, int lane) {
    constexpr std::size_t W = BlockSync::kMmaWords;
    const int g = lane / 4, q = lane % 4;
    // the lane's rows of A (g, g + 8) and columns of B (2q, 2q + 1), gathered once; no calls (a
    // call to an instrumented function would not be inlined here)
    float a_rows[2][16], b_cols[2][16];
    for (int k = 0; k < 16; ++k)
        for (int i = 0; i < 2; ++i) {
            // A(row, k): lane 4 * (row % 8) + (k % 8) / 2, word (row >= 8) + 2 * (k >= 8), half k % 2
            const int row = g + 8 * i;
            std::uint32_t w = warp_slots[static_cast<std::size_t>(4 * (row % 8) + (k % 8) / 2) * W + (row >= 8) + 2 * (k >= 8)];
            std::uint32_t bits = (k % 2 ? w >> 16 : w & 0xFFFFu) << 16;
            __builtin_memcpy(&a_rows[i][k], &bits, sizeof bits);
            // B(k, n): lane 4 * n + (k % 8) / 2, word 4 + (k >= 8), half k % 2
            const int n = 2 * q + i;
            w = warp_slots[static_cast<std::size_t>(4 * n + (k % 8) / 2) * W + 4 + (k >= 8)];
            bits = (k % 2 ? w >> 16 : w & 0xFFFFu) << 16;
            __builtin_memcpy(&b_cols[i][k], &bits, sizeof bits);
        }
    for (int e = 0; e < 4; ++e) {   // C/D element e of this lane: row g + 8 * (e / 2), column 2q + e % 2
        float acc;
        __builtin_memcpy(&acc, &warp_slots[static_cast<std::size_t>(lane) * W + 6 + static_cast<std::size_t>(e)], sizeof acc);
        for (int k = 0; k < 16; ++k) acc += a_rows[e / 2][k] * b_cols[e % 2][k];
        out[e] = acc;
    }
}

inline void mma_m16n8k16_bf16(float* d, const std::uint32_t* a, const std::uint32_t* b) {
    ThreadState& me = *current;
    BlockSync& s = *me.sync;
    constexpr std::size_t W = BlockSync::kMmaWords;
    const int t = me.position.linear, warp = t / 32, lane = t % 32;
    const std::size_t base = static_cast<std::size_t>(me.mma_parity) * (s.mma_exchange.size() / 2);
    me.mma_parity ^= 1;
    std::uint32_t* mine = &s.mma_exchange[base + static_cast<std::size_t>(t) * W];
    std::memcpy(mine, a, 4 * sizeof(std::uint32_t));
    std::memcpy(mine + 4, b, 2 * sizeof(std::uint32_t));
    std::memcpy(mine + 6, d, 4 * sizeof(float));
    me.scheduler->wait(s.warps[static_cast<std::size_t>(warp)]);
    float out[4];
    mma_lane_products(out, &s.mma_exchange[base + static_cast<std::size_t>(warp * 32) * W], lane);
    std::memcpy(d, out, sizeof out);
}

// __int_as_float: the bits of i read as a float (no conversion).
inline float int_as_float(int i) { return std::bit_cast<float>(i); }

// Runs body() as every thread of every block of a launch with block dimensions `block`.
template <class Body>
void launch(dim3 grid, dim3 block, Body body) {
    fibers::Scheduler::of_this_thread().run(grid, block, [](void* b) { (*static_cast<Body*>(b))(); }, &body);
}

// A 1-D block of `threads`.
template <class Body>
void launch(dim3 grid, int threads, Body body) {
    launch(grid, dim3(static_cast<unsigned>(threads), 1, 1), std::move(body));
}

} // namespace memtx_emulation

// The CUDA built-ins the kernels use, mapped onto the emulation.
#define threadIdx (::memtx_emulation::current->position.thread_idx)
#define blockIdx (::memtx_emulation::current->position.block_idx)
#define blockDim (::memtx_emulation::current->position.block_dim)
#define gridDim (::memtx_emulation::current->position.grid_dim)
#define __syncthreads() ::memtx_emulation::syncthreads()
#define __shfl_xor_sync(mask, v, lane_mask) ::memtx_emulation::shfl_xor((v), (lane_mask))
#define __int_as_float(i) ::memtx_emulation::int_as_float(i)
#define __syncwarp(...) ::memtx_emulation::syncwarp()
#define MEMTX_EMULATED_MMA_BF16(d, a, b) ::memtx_emulation::mma_m16n8k16_bf16((d), (a), (b))
#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __shared__
#define __shared__
#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __forceinline__
#define __forceinline__ inline
// Static shared memory: one array per kernel (function-local static), shared by the block's
// threads. The emulation runs one block at a time, so reuse by the next block is what the GPU does.
#define MEMTX_SHARED static
using std::max;
using std::min;

// Dynamic shared memory of the emulated block (the kernels declare `extern __shared__ float smem[]`,
// or `float4 smem4[]` where they need 16-byte alignment).
namespace memtx::cuda::kernels {
inline constexpr std::size_t kEmulatedSharedFloats = 64 * 1024;   // 256 KiB, above every kernel's need
float smem[kEmulatedSharedFloats];
float4 smem4[kEmulatedSharedFloats / 4];
} // namespace memtx::cuda::kernels
