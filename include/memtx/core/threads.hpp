#pragma once
// Thread count for the CPU backend (OpenMP, which Eigen's GEMMs use too).
#include <omp.h>

#include "memtx/core/error.hpp"

namespace memtx {

inline void set_num_threads(int n) {
    require(n > 0, "thread count must be positive, got ", n);
    omp_set_num_threads(n);
}

inline int num_threads() { return omp_get_max_threads(); }

} // namespace memtx
