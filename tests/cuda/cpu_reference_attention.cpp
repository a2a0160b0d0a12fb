#include "cpu_reference_attention.hpp"

#include <omp.h>

#include <algorithm>
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

AttentionResult attention_pairwise(const AttentionProblem& pr, const std::vector<double>& dout) {
    const RelAttentionGeometry& g = pr.geo;
    const int B = pr.batch, H = pr.n_head, Dh = pr.d_head, HD = H * Dh, Q = g.q_len, K = g.k_len();
    const double scale = 1.0 / std::sqrt(static_cast<double>(Dh));
    AttentionResult res{std::vector<double>(pr.q.size()), std::vector<double>(pr.q.size()), std::vector<double>(pr.k.size()),
                        std::vector<double>(pr.v.size()), std::vector<double>(pr.r.size()), std::vector<double>(pr.u.size()),
                        std::vector<double>(pr.vb.size())};
    const auto dot = [Dh](const double* a, const double* b) {
        double s = 0;
        for (int c = 0; c < Dh; ++c) s += a[c] * b[c];
        return s;
    };
    std::vector<double> qu(Dh), qv(Dh), prob(K), z(K), dp(K);
    for (int b = 0; b < B; ++b)
        for (int h = 0; h < H; ++h) {
            const int s = pr.head_map.empty() ? h : pr.head_map[static_cast<std::size_t>(h)];
            const auto key = [&](const std::vector<double>& x, int j) { return &x[(static_cast<std::size_t>(b) * K + j) * HD + s * Dh]; };
            const auto pos = [&](int row) { return &pr.r[static_cast<std::size_t>(row) * HD + s * Dh]; };
            for (int i = 0; i < Q; ++i) {
                const std::size_t qi = (static_cast<std::size_t>(b) * Q + i) * HD + h * Dh;
                for (int c = 0; c < Dh; ++c) {
                    qu[c] = pr.q[qi + c] + pr.u[h * Dh + c];
                    qv[c] = pr.q[qi + c] + pr.vb[h * Dh + c];
                }
                double mx = -INFINITY;
                for (int j = 0; j < K; ++j) {
                    prob[j] = -INFINITY;
                    if (rel_masked(g, i, j)) continue;
                    prob[j] = (dot(qu.data(), key(pr.k, j)) + dot(qv.data(), pos(rel_distance_row(g, i, j)))) * scale;
                    mx = std::max(mx, prob[j]);
                }
                double sum = 0;
                for (int j = 0; j < K; ++j) sum += prob[j] = std::exp(prob[j] - mx);
                double delta = 0;
                for (int j = 0; j < K; ++j) {
                    prob[j] /= sum;
                    const std::uint64_t e = ((static_cast<std::uint64_t>(pr.batch_offset + b) * H + h) * Q + i) * K + j;
                    z[j] = pr.dropatt_stream.keep(e, pr.dropatt) ? 1.0 / (1.0 - pr.dropatt) : 0.0;
                    dp[j] = dot(&dout[qi], key(pr.v, j));
                    delta += prob[j] * z[j] * dp[j];
                    for (int c = 0; c < Dh; ++c) res.out[qi + c] += prob[j] * z[j] * key(pr.v, j)[c];
                }
                for (int j = 0; j < K; ++j) {
                    if (rel_masked(g, i, j)) continue;
                    const double ds = prob[j] * (z[j] * dp[j] - delta) * scale;
                    const int row = rel_distance_row(g, i, j);
                    const std::size_t kj = (static_cast<std::size_t>(b) * K + j) * HD + s * Dh,
                                      rj = static_cast<std::size_t>(row) * HD + s * Dh;
                    for (int c = 0; c < Dh; ++c) {
                        res.dq[qi + c] += ds * (pr.k[kj + c] + pr.r[rj + c]);
                        res.du[h * Dh + c] += ds * pr.k[kj + c];
                        res.dvb[h * Dh + c] += ds * pr.r[rj + c];
                        res.dk[kj + c] += ds * qu[c];
                        res.dv[kj + c] += prob[j] * z[j] * dout[qi + c];
                        res.dr[rj + c] += ds * qv[c];
                    }
                }
            }
        }
    return res;
}

void gather_heads_cpu(std::vector<float>& gathered, int ld_gathered, const std::vector<float>& source, int ld_source,
                      int rows, int n_head, int d_head, const std::vector<int>& map) {
    cpu::gather_heads(gathered.data(), ld_gathered, source.data(), ld_source, rows, n_head, d_head, map.data());
}

void scatter_heads_add_cpu(std::vector<float>& source, int ld_source, const std::vector<float>& gathered,
                           int ld_gathered, int rows, int n_head, int d_head, const std::vector<int>& map) {
    cpu::scatter_heads_add(source.data(), ld_source, gathered.data(), ld_gathered, rows, n_head, d_head, map.data());
}

} // namespace memtx::testref
