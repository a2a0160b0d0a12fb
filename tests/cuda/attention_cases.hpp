#pragma once
// The attention problems every CUDA attention test runs (on the GPU and under host emulation):
// geometries, head maps, dropout, head dims, with random inputs drawn from a seed.
#include <cstdint>
#include <random>
#include <vector>

#include "cpu_reference_attention.hpp"

namespace memtx::testcases {

inline std::vector<double> random_vector(std::size_t n, std::mt19937_64& rng, double scale = 1.0) {
    std::normal_distribution<double> dist(0.0, scale);
    std::vector<double> x(n);
    for (auto& v : x) v = dist(rng);
    return x;
}

struct Case {
    const char* name;
    int batch, n_head, d_head, q_len, mem_rows, mem_len, age, clamp_len;
    bool same_length;
    float dropatt;
    std::vector<int> head_map;
};

inline testref::AttentionProblem make_problem(const Case& c, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    testref::AttentionProblem p;
    p.batch = c.batch;
    p.n_head = c.n_head;
    p.d_head = c.d_head;
    p.geo.q_len = c.q_len;
    p.geo.mem_rows = c.mem_rows;
    p.geo.mem_offset = (c.age - 1) * c.q_len;
    p.geo.clamp_len = c.clamp_len;
    p.geo.same_length = c.same_length;
    p.geo.same_length_shift = same_length_shift(c.q_len, c.mem_rows + c.q_len, c.mem_len);
    p.n_dist = rel_distance_count(p.geo);
    p.head_map = c.head_map;
    p.dropatt = c.dropatt;
    p.dropatt_stream = RandomStream{seed, 7, 2, RandomPurpose::dropout_attention_prob};
    p.batch_offset = 3;
    const std::size_t HD = static_cast<std::size_t>(c.n_head) * c.d_head, K = c.mem_rows + c.q_len;
    p.q = random_vector(c.batch * c.q_len * HD, rng);
    p.k = random_vector(c.batch * K * HD, rng);
    p.v = random_vector(c.batch * K * HD, rng);
    p.r = random_vector(p.n_dist * HD, rng);
    p.u = random_vector(HD, rng, 0.5);
    p.vb = random_vector(HD, rng, 0.5);
    return p;
}

inline std::vector<Case> cases() {
    return {
        {"no memory, Q not a tile multiple", 2, 2, 64, 70, 0, 0, 1, 0, false, 0.0f, {}},
        {"memory longer than the segment, permutation", 2, 3, 32, 37, 100, 100, 1, 0, false, 0.0f, {2, 0, 1}},
        {"clamp_len inside the memory", 1, 2, 64, 64, 64, 64, 1, 50, false, 0.0f, {}},
        {"same_length", 2, 2, 32, 40, 48, 48, 1, 0, true, 0.0f, {}},
        {"aged memory, non-injective map, dropatt", 1, 4, 128, 33, 40, 40, 3, 0, false, 0.1f, {1, 1, 0, 2}},
        {"aged memory with clamp_len, dropatt, same_length", 2, 2, 32, 24, 30, 30, 2, 45, true, 0.2f, {1, 0}},
        {"short memory, head dim 128", 1, 2, 128, 65, 17, 17, 1, 0, false, 0.0f, {}},
        {"aged memory wholly past clamp_len", 2, 2, 64, 20, 16, 16, 3, 30, false, 0.0f, {1, 0}},
        {"aged memory, clamp_len between segment and memory", 1, 3, 32, 70, 66, 66, 2, 100, false, 0.1f, {2, 1, 0}},
    };
}

inline const char* names[] = {"out", "dq", "dk", "dv", "dr", "du", "dvb"};

inline std::vector<const std::vector<double>*> fields(const testref::AttentionResult& r) {
    return {&r.out, &r.dq, &r.dk, &r.dv, &r.dr, &r.du, &r.dvb};
}


inline bool is_permutation(const std::vector<int>& map) {
    std::vector<int> seen(map.size(), 0);
    for (int s : map)
        if (s < 0 || s >= static_cast<int>(map.size()) || seen[static_cast<std::size_t>(s)]++) return false;
    return true;
}

} // namespace memtx::testcases
