#pragma once
// Which part of each batch a process trains on in data-parallel training.

namespace memtx {

// Which part of each batch this process trains on, in data-parallel training (train/trainer.hpp):
// rank `rank` of `ranks` processes. A task that splits its batches takes one in its constructor;
// the default is the whole batch.
struct RankSlice {
    int rank = 0;
    int ranks = 1;
    // Its rows [begin(n), end(n)) of n: contiguous, as even as n allows (rank r's end is r + 1's begin).
    int begin(int n) const { return static_cast<int>(static_cast<long long>(n) * rank / ranks); }
    int end(int n) const { return static_cast<int>(static_cast<long long>(n) * (rank + 1) / ranks); }
};

} // namespace memtx
