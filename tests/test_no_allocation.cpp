// The training step loop allocates nothing: after the first step has planned the workspace,
// further steps (forward, backward, clip, Adam) and evaluation make no heap allocation.
// malloc/calloc/realloc are interposed to count calls (glibc); not built under sanitizers,
// which own malloc themselves.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstddef>

#include <memtx/memtx.hpp>

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
}
namespace {
std::atomic<long> g_heap_calls{0};
}
extern "C" void* malloc(std::size_t n) {
    g_heap_calls.fetch_add(1, std::memory_order_relaxed);
    return __libc_malloc(n);
}
extern "C" void* calloc(std::size_t a, std::size_t b) {
    g_heap_calls.fetch_add(1, std::memory_order_relaxed);
    return __libc_calloc(a, b);
}
extern "C" void* realloc(void* p, std::size_t n) {
    g_heap_calls.fetch_add(1, std::memory_order_relaxed);
    return __libc_realloc(p, n);
}

namespace {
constexpr memtx::ModelShape shape{.n_layer = 2, .d_model = 64, .n_head = 4, .d_head = 16, .d_inner = 128, .vocab = 50};
}

TEST_CASE("training steps after the first allocate nothing", "[allocation]") {
    memtx::TransformerXL<shape> model({.seed = 3, .dropout = 0.1f, .dropatt = 0.1f});
    memtx::Adam<float> opt(model, {});
    auto mem = model.make_memory(3, 24);
    std::vector<std::int32_t> x(3 * 16), y(3 * 16);
    for (std::size_t i = 0; i < x.size(); ++i) {
        x[i] = static_cast<std::int32_t>(i % 50);
        y[i] = static_cast<std::int32_t>((i * 7) % 50);
    }
    const int perm[4] = {2, 0, 3, 1};
    const int* maps[2] = {perm, nullptr};
    memtx::StepOptions opt_step;
    opt_step.head_maps = maps;
    opt_step.clamp_len = 20;

    memtx::train_step(model, opt, x, y, mem, opt_step);   // plans the workspace
    const long before = g_heap_calls.load();
    for (int s = 1; s < 5; ++s) {
        opt_step.step = static_cast<std::uint64_t>(s);
        memtx::train_step(model, opt, x, y, mem, opt_step);
    }
    memtx::StepOptions eval;
    eval.training = false;
    model.evaluate(x, y, mem, eval);
    CHECK(g_heap_calls.load() - before == 0);
    CHECK(mem.rows(0) == 24);

    SECTION("the counter does count") {
        const long start = g_heap_calls.load();
        std::vector<int> v(1000);
        CHECK(g_heap_calls.load() > start);
    }
}

TEST_CASE("Skip-Retain steps with memory of any age allocate nothing", "[allocation][skip-retain]") {
    constexpr memtx::ModelShape deep{.n_layer = 3, .d_model = 64, .n_head = 4, .d_head = 16, .d_inner = 128, .vocab = 50};
    memtx::TransformerXL<deep> model({.seed = 5, .dropout = 0.1f, .dropatt = 0.1f});
    memtx::Adam<float> opt(model, {});
    auto mem = model.make_memory(2, 20);
    std::vector<std::int32_t> x(2 * 16), y(2 * 16);
    for (std::size_t i = 0; i < x.size(); ++i) {
        x[i] = static_cast<std::int32_t>((i * 3) % 50);
        y[i] = static_cast<std::int32_t>((i * 11) % 50);
    }
    model.reserve(2, 16, 20, /*aged_bands=*/1);   // what the Trainer does in phase 1
    memtx::StepOptions step;
    std::uint8_t skip[3] = {0, 0, 0};
    step.skip = skip;
    memtx::train_step(model, opt, x, y, mem, step);
    const long before = g_heap_calls.load();
    // layer 1 skipped for ten steps in a row: its memory ages to 11 (far past any fixed reserve)
    for (int s = 1; s <= 12; ++s) {
        step.step = static_cast<std::uint64_t>(s);
        skip[1] = s <= 10;
        step.clamp_len = s % 3 == 0 ? 40 : 0;   // clamped and unclamped aged distances
        memtx::train_step(model, opt, x, y, mem, step);
        if (s == 10) CHECK(mem.age(1) == 11);
        if (s == 11) {   // kept 4 rows from before the skips beside 16 new: step 12 attends two bands
            CHECK(mem.row_age(1, 0) == 11);
            CHECK(mem.row_age(1, 3) == 11);
            CHECK(mem.row_age(1, 4) == 1);
        }
    }
    CHECK(g_heap_calls.load() - before == 0);
    CHECK(mem.age(1) == 1);
}
