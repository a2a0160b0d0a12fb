#include "cpu_reference_attention.hpp"

#include <omp.h>

#include <cmath>

#include "memtx/core/aligned_vector.hpp"
#include "cpu_head_gather.hpp"   // benchmarks/baselines
#include "memtx/cpu/rel_attention.hpp"

namespace memtx::testref {

template <class T>
AttentionResult attention_cpu(const AttentionProblem& pr, const std::vector<double>& dout) {
    const int B = pr.batch, H = pr.n_head, Dh = pr.d_head, HD = H * Dh, Q = pr.geo.q_len, K = pr.geo.k_len(),
              ND = pr.n_dist, threads = omp_get_max_threads();
    const auto cast = [](const std::vector<double>& x) { return AlignedVector<T>(x.begin(), x.end()); };
    const AlignedVector<T> q = cast(pr.q), k = cast(pr.k), v = cast(pr.v), r = cast(pr.r), u = cast(pr.u), vb = cast(pr.vb),
                           dO = cast(dout);
    AlignedVector<T> out(static_cast<std::size_t>(B) * Q * HD), probs(static_cast<std::size_t>(B) * H * Q * K);
    AlignedVector<T> gemm_buffers(static_cast<std::size_t>(threads) * cpu::GemmScratch<T>::per_thread());
    AlignedVector<T> scratch(static_cast<std::size_t>(threads) * cpu::RelAttentionScratch::per_thread(Q, K, ND, Dh));
    AlignedVector<T> shared(cpu::RelAttentionBackwardScratch::shared(threads, B, H, ND, Dh));

    cpu::RelAttentionParams<T> p;
    p.batch = B;
    p.n_head = H;
    p.d_head = Dh;
    p.geo = pr.geo;
    p.n_dist = ND;
    p.scale = T(1) / std::sqrt(T(Dh));
    p.head_map = pr.head_map.empty() ? nullptr : pr.head_map.data();
    p.q = q.data();
    p.ld_q = HD;
    p.k = k.data();
    p.v = v.data();
    p.ld_kv = HD;
    p.r = r.data();
    p.ld_r = HD;
    p.r_w_bias = u.data();
    p.r_r_bias = vb.data();
    p.probs = probs.data();
    p.out = out.data();
    p.ld_out = HD;
    p.dropatt = pr.dropatt;
    p.dropatt_stream = pr.dropatt_stream;
    p.batch_offset = pr.batch_offset;
    p.gemm.buffers = gemm_buffers.data();
    p.gemm.threads = threads;
    cpu::rel_attention_forward(p, scratch.data());

    AlignedVector<T> dq(q.size()), dk(k.size()), dv(v.size()), dr(r.size()), du(u.size(), T(0)), dvb(vb.size(), T(0));
    cpu::RelAttentionGrads<T> g;
    g.dout = dO.data();
    g.ld_dout = HD;
    g.dq = dq.data();
    g.ld_dq = HD;
    g.dk = dk.data();
    g.dv = dv.data();
    g.ld_dkv = HD;
    g.dr = dr.data();
    g.ld_dr = HD;
    g.dr_w_bias = du.data();
    g.dr_r_bias = dvb.data();
    cpu::rel_attention_backward(p, g, scratch.data(), shared.data(), threads);

    const auto widen = [](const AlignedVector<T>& x) { return std::vector<double>(x.begin(), x.end()); };
    return {widen(out), widen(dq), widen(dk), widen(dv), widen(dr), widen(du), widen(dvb)};
}

template AttentionResult attention_cpu<float>(const AttentionProblem&, const std::vector<double>&);
template AttentionResult attention_cpu<double>(const AttentionProblem&, const std::vector<double>&);

void gather_heads_cpu(std::vector<float>& gathered, int ld_gathered, const std::vector<float>& source, int ld_source,
                      int rows, int n_head, int d_head, const std::vector<int>& map) {
    cpu::gather_heads(gathered.data(), ld_gathered, source.data(), ld_source, rows, n_head, d_head, map.data());
}

void scatter_heads_add_cpu(std::vector<float>& source, int ld_source, const std::vector<float>& gathered,
                           int ld_gathered, int rows, int n_head, int d_head, const std::vector<int>& map) {
    cpu::scatter_heads_add(source.data(), ld_source, gathered.data(), ld_gathered, rows, n_head, d_head, map.data());
}

} // namespace memtx::testref
