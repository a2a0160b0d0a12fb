#pragma once
// The attention problems every CUDA attention test runs (on the GPU and under host emulation):
// geometries (memories of one age or of several), head maps, dropout, head dims, with random
// inputs drawn from a seed.
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "cpu_reference_attention.hpp"
#include "memtx/cuda/ops/rel_attention/params.hpp"

namespace memtx::testcases {

inline std::vector<double> random_vector(std::size_t n, std::mt19937_64& rng, double scale = 1.0) {
    std::normal_distribution<double> dist(0.0, scale);
    std::vector<double> x(n);
    for (auto& v : x) v = dist(rng);
    return x;
}

// Rows of one age in a memory that holds several (Skip-Retain keeps a skipped layer's rows).
struct Band {
    int rows, age;
};

struct Case {
    const char* name;
    int batch, n_head, d_head, q_len, mem_rows, mem_len, age, clamp_len;
    bool same_length;
    float dropatt;
    std::vector<int> head_map;
    std::vector<Band> bands;   // the memory's bands, oldest first; empty: one band of age `age`
};

// The geometry's memory bands: offset (age - 1) * Q per band (rel_position.hpp).
inline void set_bands(RelAttentionGeometry& g, const Case& c) {
    bool ok;
    if (c.bands.empty()) {
        ok = rel_set_memory_offset(g, (c.age - 1) * c.q_len);
    } else {
        std::vector<int> ends, offsets;
        for (const Band& b : c.bands) {
            ends.push_back((ends.empty() ? 0 : ends.back()) + b.rows);
            offsets.push_back((b.age - 1) * c.q_len);
        }
        ok = rel_set_memory_bands(g, static_cast<int>(c.bands.size()), ends.data(), offsets.data());
    }
    if (!ok) throw std::logic_error(std::string("attention case '") + c.name + "': its memory bands are out of order");
}

inline testref::AttentionProblem make_problem(const Case& c, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    testref::AttentionProblem p;
    p.batch = c.batch;
    p.n_head = c.n_head;
    p.d_head = c.d_head;
    p.geo.q_len = c.q_len;
    p.geo.mem_rows = c.mem_rows;
    p.geo.clamp_len = c.clamp_len;
    set_bands(p.geo, c);   // (after q_len, mem_rows and clamp_len: the bands' table rows depend on them)
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
        // Memories of several ages (M = 2.5 Q, bands oldest first): band sizes that are no
        // multiple of any key tile (32, 64), so tiles end at band boundaries mid-tile; each band
        // reads its own table rows, and with clamp_len its own clamped row.
        {"three bands (ages 4, 2, 1), permutation", 1, 2, 64, 40, 100, 100, 1, 0, false, 0.0f, {1, 0}, {{37, 4}, {34, 2}, {29, 1}}},
        {"three bands (ages 5, 3, 2), clamp_len mid-band, same_length, dropatt", 1, 2, 32, 40, 100, 100, 1, 150, true, 0.1f,
         {1, 0}, {{30, 5}, {45, 3}, {25, 2}}},
        {"three bands (ages 4, 2, 1), clamp_len inside the segment, head dim 128", 1, 2, 128, 40, 100, 100, 1, 30, false,
         0.0f, {}, {{37, 4}, {34, 2}, {29, 1}}},
        {"three bands (ages 5, 3, 2), same_length, non-injective map", 1, 2, 32, 40, 100, 100, 1, 0, true, 0.0f, {1, 1},
         {{66, 5}, {1, 3}, {33, 2}}},
        {"six bands, one of one row, clamp_len mid-band", 2, 2, 32, 24, 60, 60, 1, 120, false, 0.1f, {},
         {{7, 9}, {13, 7}, {1, 5}, {19, 4}, {12, 2}, {8, 1}}},
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

// A value as stored in T (float or bf16), and back.
template <class T>
T to_storage(double x) {
    if constexpr (std::is_same_v<T, float>) return static_cast<float>(x);
    else return __float2bfloat16_rn(static_cast<float>(x));
}
template <class T>
double from_storage(T x) {
    if constexpr (std::is_same_v<T, float>) return x;
    else return static_cast<double>(__bfloat162float(x));
}
// x rounded to what a T holds (bf16 inputs are compared against references on rounded inputs).
template <class T>
std::vector<double> rounded(const std::vector<double>& x) {
    std::vector<double> y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = from_storage(to_storage<T>(x[i]));
    return y;
}

// ||a - ref|| / ||ref||; infinity when a holds a NaN/inf (an element nothing wrote stays NaN).
inline double relative_error(const std::vector<double>& a, const std::vector<double>& ref) {
    if (a.size() != ref.size()) return INFINITY;
    double num = 0, den = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (!std::isfinite(a[i])) return INFINITY;
        num += (a[i] - ref[i]) * (a[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Where a test keeps one attention problem's tensors (device or emulated host memory).
template <class T>
struct AttentionBuffers {
    const T *q, *k, *v, *r, *u, *vb, *dout;
    T *out, *dq, *dk, *dv, *dr;
    float *lse, *out_fp32, *du, *dvb, *workspace;
    const int* head_map;   // null: identity
};

// The fused kernels' parameters for problem pr over those buffers (K and V in separate arrays,
// rows H*Dh wide); .fwd holds the forward's.
template <class T>
cuda::RelAttentionBackwardParams<T> attention_kernel_params(const testref::AttentionProblem& pr, const AttentionBuffers<T>& b) {
    const int HD = pr.n_head * pr.d_head;
    cuda::RelAttentionForwardParams<T> f;
    f.batch = pr.batch;
    f.n_head = pr.n_head;
    f.d_head = pr.d_head;
    f.geo = pr.geo;
    f.n_dist = pr.n_dist;
    f.scale = 1.0f / std::sqrt(static_cast<float>(pr.d_head));
    f.head_map = b.head_map;
    f.q = b.q;
    f.ld_q = HD;
    f.k = b.k;
    f.v = b.v;
    f.ld_kv = HD;
    f.r = b.r;
    f.ld_r = HD;
    f.r_w_bias = b.u;
    f.r_r_bias = b.vb;
    f.out = b.out;
    f.ld_out = HD;
    f.lse = b.lse;
    f.out_fp32 = b.out_fp32;
    f.dropatt = pr.dropatt;
    f.dropatt_stream = pr.dropatt_stream;
    f.batch_offset = pr.batch_offset;
    cuda::RelAttentionBackwardParams<T> g;
    g.fwd = f;
    g.dout = b.dout;
    g.ld_dout = HD;
    g.dq = b.dq;
    g.ld_dq = HD;
    g.dk = b.dk;
    g.dv = b.dv;
    g.ld_dkv = HD;
    g.dr = b.dr;
    g.ld_dr = HD;
    g.dr_w_bias = b.du;
    g.dr_r_bias = b.dvb;
    g.workspace = b.workspace;
    return g;
}

} // namespace memtx::testcases
