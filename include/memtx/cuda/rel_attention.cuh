#pragma once
// The fused relative attention on a stream: head-dim dispatch and the <<<>>> launcher of the
// launch templates in rel_attention_launch.hpp (stream_launcher.cuh; kernel bodies in kernels/).
//
//   rel_attention_forward(p, stream)                 O and lse
//   rel_attention_backward(p, stream)                dq, dk, dv, dr written; du, dvb accumulated
//   rel_attention_backward_workspace_floats(...)     size of p.workspace
// bf16 runs the tensor-core kernels where the device's shared memory per block holds them, fp32
// the SIMT kernels (rel_attention_launch.hpp).
#include <cuda_runtime.h>

#include "memtx/core/error.hpp"
#include "memtx/cuda/check.hpp"
#include "memtx/cuda/rel_attention_launch.hpp"
#include "memtx/cuda/stream_launcher.cuh"

namespace memtx::cuda {

namespace detail {

// Calls f.template operator()<Dh>() for the run-time head dim.
template <class F>
void dispatch_head_dim(int d_head, F&& f) {
    switch (d_head) {
    case 32: f.template operator()<32>(); break;
    case 64: f.template operator()<64>(); break;
    case 128: f.template operator()<128>(); break;
    default:
        throw Error(memtx::detail::concat("CUDA relative attention: head dim ", d_head, " is not compiled (32, 64, 128 are)"));
    }
}

// The current device's opt-in shared memory per block (what the tensor-core kernels may use).
inline std::size_t device_smem_optin() {
    int dev = 0, bytes = 0;
    MEMTX_CUDA_CHECK(cudaGetDevice(&dev));
    MEMTX_CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    return static_cast<std::size_t>(bytes);
}

template <class T>
void check_params(const RelAttentionForwardParams<T>& p) {
    require(p.batch > 0 && p.n_head > 0 && p.geo.q_len > 0, "CUDA relative attention: empty problem (batch ", p.batch,
            ", heads ", p.n_head, ", q_len ", p.geo.q_len, ")");
    require(p.n_dist >= rel_distance_count(p.geo), "CUDA relative attention: r holds ", p.n_dist,
            " distance rows, the geometry needs ", rel_distance_count(p.geo));
    require(p.n_head <= 65535 && p.batch <= 65535, "CUDA relative attention: batch and heads must be <= 65535");
    require(p.dropatt >= 0.0f && p.dropatt < 1.0f, "CUDA relative attention: dropatt ", p.dropatt, " outside [0, 1)");
}

} // namespace detail

template <class T>
void rel_attention_forward(const RelAttentionForwardParams<T>& p, cudaStream_t stream) {
    detail::check_params(p);
    const std::size_t smem = detail::device_smem_optin();
    detail::dispatch_head_dim(p.d_head,
                              [&]<int Dh>() { rel_attention_forward_sequence<Dh, T>(p, detail::StreamLauncher{stream}, smem); });
}

template <class T>
void rel_attention_backward(const RelAttentionBackwardParams<T>& p, cudaStream_t stream) {
    detail::check_params(p.fwd);
    require(p.workspace != nullptr, "CUDA relative attention backward: no workspace");
    const std::size_t smem = detail::device_smem_optin();
    detail::dispatch_head_dim(p.fwd.d_head,
                              [&]<int Dh>() { rel_attention_backward_sequence<Dh, T>(p, detail::StreamLauncher{stream}, smem); });
}

} // namespace memtx::cuda
