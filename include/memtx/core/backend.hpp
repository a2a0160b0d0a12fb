#pragma once
// Backend tags: the model's second template argument picks where it computes.
namespace memtx {

// Eigen on the host, OpenMP threads. float for training, double for gradient checks.
struct Cpu {};

} // namespace memtx
