// Where the committed test fixtures are: tests/fixtures/ under the source tree, which CTest names in
// HYDRA_SOURCE_DIR. A test run without it (a binary started by hand) fails at once with a message saying
// so, instead of looking for the fixtures somewhere else.
#pragma once

#include <string>

namespace hydra::test {

// "<HYDRA_SOURCE_DIR>/tests/fixtures/<relative>", e.g. fixture_path("npy/f32_2x3.npy"). Throws
// std::runtime_error when HYDRA_SOURCE_DIR is unset or empty.
std::string fixture_path(const std::string& relative);

}  // namespace hydra::test
