// The memory limit of this process (the contract is in machine_memory.h).
#include "tensor/machine_memory.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>

#include "tensor/error.h"

namespace hydra {

namespace {

// The first number in a file ("max" or a missing file: no limit).
uint64_t limit_from_file(const char* path) {
  std::ifstream in(path);
  unsigned long long v = 0;
  if (in >> v && v > 0) return v;
  return std::numeric_limits<uint64_t>::max();
}

uint64_t rlimit_bytes(int resource) {
  struct rlimit r {};
  if (::getrlimit(resource, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return std::numeric_limits<uint64_t>::max();
  return r.rlim_cur;
}

uint64_t compute_limit() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  uint64_t limit = pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page)
                                         : std::numeric_limits<uint64_t>::max();
  limit = std::min({limit, limit_from_file("/sys/fs/cgroup/memory.max"),
                    limit_from_file("/sys/fs/cgroup/memory/memory.limit_in_bytes"), rlimit_bytes(RLIMIT_AS),
                    rlimit_bytes(RLIMIT_DATA)});
  if (const char* env = std::getenv("HYDRA_MEMORY_LIMIT_MB")) {
    char* end = nullptr;
    const unsigned long long mb = std::strtoull(env, &end, 10);
    if (end != env && *end == '\0' && mb > 0 && mb < (uint64_t{1} << 44)) limit = std::min<uint64_t>(limit, mb << 20);
  }
  return limit;
}

}  // namespace

uint64_t machine_memory_bytes() {
  static const uint64_t limit = compute_limit();
  return limit;
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes >= 1024 && u < 6) {
    bytes /= 1024;
    ++u;
  }
  char text[64];
  std::snprintf(text, sizeof text, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return text;
}

void check_fits_in_memory(uint64_t bytes, const std::string& what) {
  const uint64_t limit = machine_memory_bytes();
  HYDRA_CHECK(bytes <= limit, what, " needs ", human_bytes(static_cast<double>(bytes)), " (", bytes,
              " bytes), more than this machine's memory (", human_bytes(static_cast<double>(limit)), ")");
}

}  // namespace hydra
