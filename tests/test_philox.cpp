// Philox-4x32-10: known-answer vectors (Random123's kat_vectors), the vectorised block path
// against the scalar one, stream separation, and the index math helpers of relative attention.
#include <catch2/catch.hpp>

#include <set>
#include <vector>

#include <memtx/core/philox.hpp>
#include <memtx/core/rel_position.hpp>
#include <memtx/cpu/dropout.hpp>

TEST_CASE("Philox4x32-10 reproduces the Random123 known-answer vectors", "[philox]") {
    using memtx::Philox4x32;
    auto run = [](Philox4x32 c, std::uint32_t k0, std::uint32_t k1) { return memtx::philox4x32_10(c, k0, k1); };
    const auto zero = run({{0, 0, 0, 0}}, 0, 0);
    CHECK(zero.v[0] == 0x6627e8d5u);
    CHECK(zero.v[1] == 0xe169c58du);
    CHECK(zero.v[2] == 0xbc57ac4cu);
    CHECK(zero.v[3] == 0x9b00dbd8u);
    const auto ones = run({{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu);
    CHECK(ones.v[0] == 0x408f276du);
    CHECK(ones.v[1] == 0x41c83b0eu);
    CHECK(ones.v[2] == 0xa20bc7c6u);
    CHECK(ones.v[3] == 0x6d5451fdu);
    const auto pi = run({{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u);
    CHECK(pi.v[0] == 0xd16cfe09u);
    CHECK(pi.v[1] == 0x94fdccebu);
    CHECK(pi.v[2] == 0x5001e420u);
    CHECK(pi.v[3] == 0x24126ea1u);
}

TEST_CASE("the vectorised block path draws the scalar path's words", "[philox]") {
    const memtx::RandomStream rs{0x123456789abcdefull, 77, 3, memtx::RandomPurpose::dropout_ff_inner};
    for (std::uint64_t first : {std::uint64_t{0}, std::uint64_t{5}, (std::uint64_t{1} << 32) - 3}) {
        for (int n : {1, 15, 16, 17, 40}) {
            std::vector<std::uint32_t> words(4 * static_cast<std::size_t>(n));
            rs.blocks(first, n, words.data());
            for (int i = 0; i < 4 * n; ++i) REQUIRE(words[i] == rs.word(4 * first + static_cast<std::uint64_t>(i)));
        }
    }
}

TEST_CASE("streams differ by seed, step, layer and purpose", "[philox]") {
    const memtx::RandomStream base{1, 2, 3, memtx::RandomPurpose::dropout_embedding};
    std::set<std::uint32_t> firsts{base.word(0)};
    auto other = base;
    other.seed = 9;
    firsts.insert(other.word(0));
    other = base;
    other.step = 3;
    firsts.insert(other.word(0));
    other = base;
    other.layer = 4;
    firsts.insert(other.word(0));
    other = base;
    other.purpose = memtx::RandomPurpose::dropout_output;
    firsts.insert(other.word(0));
    CHECK(firsts.size() == 5);
}

TEST_CASE("dropout keeps about 1 - p, scales kept values, and matches RandomStream::keep", "[philox][dropout]") {
    const memtx::RandomStream rs{4, 1, 0, memtx::RandomPurpose::dropout_attention_out};
    const int rows = 37, cols = 301;
    const float p = 0.3f;
    std::vector<double> x(rows * cols, 1.0);
    memtx::cpu::dropout_apply(x.data(), rows, cols, cols, rs, 11, p);
    int kept = 0;
    for (int i = 0; i < rows * cols; ++i) {
        const bool keep = rs.keep(11 + static_cast<std::uint64_t>(i), p);
        REQUIRE((x[i] != 0) == keep);
        if (keep) {
            CHECK(x[i] == Approx(1.0 / 0.7));
            ++kept;
        }
    }
    CHECK(double(kept) / (rows * cols) == Approx(0.7).margin(0.02));
}

TEST_CASE("relative attention index math", "[rel_position]") {
    memtx::RelAttentionGeometry g;
    g.q_len = 3;
    g.mem_rows = 4;
    REQUIRE(memtx::rel_set_memory_offset(g, 0));
    SECTION("causal mask and distances over [memory; segment]") {
        CHECK_FALSE(memtx::rel_masked(g, 0, 4));   // query 0 sees itself (key M + 0)
        CHECK(memtx::rel_masked(g, 0, 5));
        CHECK(memtx::rel_distance(g, 2, 0) == 6);  // M + i - j
        CHECK(memtx::rel_distance(g, 2, 6) == 0);
        CHECK(memtx::rel_distance_count(g) == 7);
    }
    SECTION("aged memory shifts memory keys only") {
        REQUIRE(memtx::rel_set_memory_offset(g, 2 * g.q_len));
        CHECK(memtx::rel_distance(g, 1, 3) == 2 + 6);
        CHECK(memtx::rel_distance(g, 1, 4) == 1);
        // rows: segment distances 0..2 in rows 0..2, memory distances 7..12 in rows 3..8
        CHECK(g.bands[0].shift == 4);
        CHECK(memtx::rel_distance_row(g, 1, 3) == 4);
        CHECK(memtx::rel_row_distance(g, 4) == 8);
        CHECK(memtx::rel_distance_count(g) == 9);
        for (int i = 0; i < g.q_len; ++i)
            for (int j = 0; j <= g.mem_rows + i; ++j)
                CHECK(memtx::rel_row_distance(g, memtx::rel_distance_row(g, i, j)) == memtx::rel_distance(g, i, j));
    }
    SECTION("aged memory with every memory key past clamp_len reads one row after the segment's") {
        g.clamp_len = 5;   // memory distances >= 10 all clamp to 5; segment distances 0..2
        REQUIRE(memtx::rel_set_memory_offset(g, 3 * g.q_len));
        CHECK(memtx::rel_distance_row(g, 0, 0) == g.q_len);
        CHECK(memtx::rel_row_distance(g, g.q_len) == 5);
        CHECK(memtx::rel_distance_count(g) == g.q_len + 1);
    }
    SECTION("memory in bands of different ages: each band keeps its own offset and its own rows") {
        // Q = 3, M = 7: rows 0..1 age 4 (offset 9), rows 2..4 age 2 (offset 3), rows 5..6 age 1
        g.mem_rows = 7;
        const int ends[3] = {2, 5, 7}, offsets[3] = {9, 3, 0};
        REQUIRE(memtx::rel_set_memory_bands(g, 3, ends, offsets));
        CHECK(memtx::rel_distance(g, 0, 6) == 1);           // newest band: M + i - j
        CHECK(memtx::rel_distance(g, 0, 4) == 3 + 3);       // middle band: + 3
        CHECK(memtx::rel_distance(g, 2, 0) == 9 + 9);       // oldest band: + 9
        CHECK(memtx::rel_true_distance(g, 1, 2) == 6 + 3);
        // rows: 0..2 segment, the newest band's distances 1..4 as rows 1..4 (shift 0), the middle
        // band's 6..10 in rows 5..9, the oldest band's 15..18 in rows 10..13
        CHECK(g.bands[2].shift == 0);
        CHECK(g.bands[1].first_row == 5);
        CHECK(g.bands[1].shift == 1);
        CHECK(g.bands[0].first_row == 10);
        CHECK(g.bands[0].shift == 5);
        CHECK(memtx::rel_distance_count(g) == 14);
        CHECK(memtx::rel_distance_count(g) <= memtx::rel_distance_count_bound(3, 7, 3));
        for (int clamp : {0, 5, 8, 12, 30}) {
            g.clamp_len = clamp;
            REQUIRE(memtx::rel_set_memory_bands(g, 3, ends, offsets));
            const int n = memtx::rel_distance_count(g);
            CHECK(n <= memtx::rel_distance_count_bound(3, 7, 3));
            for (int i = 0; i < g.q_len; ++i)
                for (int j = 0; j <= g.mem_rows + i; ++j) {
                    const int row = memtx::rel_distance_row(g, i, j);
                    REQUIRE(row >= 0);
                    REQUIRE(row < n);
                    const int d = g.mem_rows + i - j + (j < 2 ? 9 : j < 5 ? 3 : 0);
                    REQUIRE(memtx::rel_distance(g, i, j) == (clamp > 0 ? std::min(d, clamp) : d));
                    REQUIRE(memtx::rel_row_distance(g, row) == memtx::rel_distance(g, i, j));
                }
        }
    }
    SECTION("bands out of order or past the memory are refused") {
        const int ends[2] = {2, 4}, rising[2] = {0, 3}, equal[2] = {3, 3}, ok[2] = {6, 3};
        CHECK_FALSE(memtx::rel_set_memory_bands(g, 2, ends, rising));
        CHECK_FALSE(memtx::rel_set_memory_bands(g, 2, ends, equal));
        const int short_ends[2] = {2, 3};
        CHECK_FALSE(memtx::rel_set_memory_bands(g, 2, short_ends, ok));
        CHECK(memtx::rel_set_memory_bands(g, 2, ends, ok));
        CHECK(memtx::rel_bands_consistent(g));
        g.mem_rows = 5;
        CHECK_FALSE(memtx::rel_bands_consistent(g));
    }
    SECTION("clamp_len") {
        g.clamp_len = 2;
        REQUIRE(memtx::rel_set_memory_offset(g, 0));   // the rows depend on clamp_len: lay them out again
        CHECK(memtx::rel_distance(g, 2, 0) == 2);
        CHECK(memtx::rel_distance_count(g) == 3);
    }
    SECTION("the unmasked keys of each query form the interval rel_key_range gives") {
        for (int mem_len : {2, 4, 9})
            for (int same : {0, 1})
                for (int m : {0, 2, 4}) {
                    memtx::RelAttentionGeometry h;
                    h.q_len = 5;
                    h.mem_rows = m;
                    h.same_length = same != 0;
                    h.same_length_shift = memtx::same_length_shift(5, m + 5, mem_len);
                    REQUIRE(memtx::rel_set_memory_offset(h, 0));
                    for (int i = 0; i < h.q_len; ++i) {
                        const auto r = memtx::rel_key_range(h, i);
                        for (int j = 0; j < h.k_len(); ++j)
                            REQUIRE(memtx::rel_masked(h, i, j) == (j < r.first || j > r.last));
                    }
                }
    }
    SECTION("same_length: the reference's tril(ones, -s)") {
        CHECK(memtx::same_length_shift(3, 7, 4) == 0);   // K - mem_len = 3 > 0: s = Q - 3
        CHECK(memtx::same_length_shift(3, 3, 4) == 3);   // K <= mem_len: s = Q
        g.same_length = true;
        g.same_length_shift = memtx::same_length_shift(3, 7, 4);
        CHECK(memtx::rel_masked(g, 1, 1));      // j <= i - s
        CHECK_FALSE(memtx::rel_masked(g, 1, 2));
    }
}
