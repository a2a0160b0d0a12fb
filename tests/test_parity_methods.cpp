// Parity of Skip-Retain (forced skip masks, aged memory) and cross-head attention (forced head
// maps) with the PyTorch reference: double 1e-10, float 1e-5 (loss) / 1e-4 (gradients).
#include "parity_common.hpp"

TEST_CASE("methods match the PyTorch reference fixtures (double)", "[parity][methods]") {
    parity::check_methods<double>(1e-10, 1e-10);
}

TEST_CASE("methods match the PyTorch reference fixtures (float)", "[parity][methods]") {
    parity::check_methods<float>(1e-5, 1e-4);
}
