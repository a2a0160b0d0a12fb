// Parity with the PyTorch reference in double: 1e-10 for losses and gradients.
#include "parity_common.hpp"

TEST_CASE("TransformerXL<double> matches the PyTorch reference fixtures", "[parity]") {
    parity::check_all<double>(1e-10, 1e-10);
}
