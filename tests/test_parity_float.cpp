// Parity with the PyTorch reference in float: 1e-5 for losses, 1e-4 for gradients.
#include "parity_common.hpp"

TEST_CASE("TransformerXL<float> matches the PyTorch reference fixtures", "[parity]") {
    parity::check_all<float>(1e-5, 1e-4);
}
