#pragma once
// Static shared memory of a kernel: `MEMTX_SHARED float scratch[kMaxWarps];` is a __shared__
// array on the GPU. The host emulation of the kernels (tests/emulation/cuda_emulation.hpp)
// defines MEMTX_SHARED first, as `static`: it must define __shared__ away for the
// `extern __shared__` (dynamic) declarations, which would turn a plain `__shared__` array into
// one private copy per emulated thread.
#ifndef MEMTX_SHARED
#define MEMTX_SHARED __shared__
#endif
