#include "support/fixtures.h"

#include <cstdlib>
#include <stdexcept>

namespace hydra::test {

std::string source_path(const std::string& relative) {
  const char* root = std::getenv("HYDRA_SOURCE_DIR");
  if (root == nullptr || *root == '\0')
    throw std::runtime_error("HYDRA_SOURCE_DIR is not set: it must name the repository root, which holds "
                             "tests/fixtures/ (CTest sets it; by hand: HYDRA_SOURCE_DIR=$PWD build/test_...)");
  return std::string(root) + "/" + relative;
}

std::string fixture_path(const std::string& relative) { return source_path("tests/fixtures/" + relative); }

}  // namespace hydra::test
