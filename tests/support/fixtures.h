// Where the committed test files are: tests/fixtures/ (and the fuzz corpora) under the source tree,
// which CTest names in HYDRA_SOURCE_DIR. A test run without it (a binary started by hand) fails at once
// with a message saying so, instead of looking for the files somewhere else.
#pragma once

#include <string>

namespace hydra::test {

// "<HYDRA_SOURCE_DIR>/<relative>", e.g. source_path("tests/fuzz/corpus"). Throws std::runtime_error
// when HYDRA_SOURCE_DIR is unset or empty.
std::string source_path(const std::string& relative);
// source_path("tests/fixtures/" + relative), e.g. fixture_path("npy/f32_2x3.npy").
std::string fixture_path(const std::string& relative);

}  // namespace hydra::test
