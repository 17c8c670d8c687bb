// bench_tokenize: single-thread encoding speed of io/tokenizer, in MB/s of input text.
//
//   build/bench_tokenize [--reps N] [--tokenizer T.json[.zst] ...] [TEXT_FILE ...]
//
// Defaults: the GPT-2 and cl100k fixtures (tests/fixtures/tokenizer, found from $HYDRA_SOURCE_DIR or
// the current directory) and, without text files, the fixture prose repeated to 4 MB (an optimistic
// case: after the first copy every pre-token is a cache hit). Each rep encodes the whole text with a
// fresh tokenizer (empty pre-token cache); load time is not counted. Prints every rep and the medians
// of two rates: per wall-clock second, and per second of this thread's CPU time (the "per core" figure,
// steadier when other processes share the cores).
#include <time.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "io/tokenizer.h"

namespace {

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "bench_tokenize: cannot open " << path << "\n";
    std::exit(2);
  }
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

std::string maybe_unzstd(const std::string& path, std::string bytes) {
  if (path.size() < 4 || path.compare(path.size() - 4, 4, ".zst") != 0) return bytes;
  const unsigned long long size = ZSTD_getFrameContentSize(bytes.data(), bytes.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN) {
    std::cerr << "bench_tokenize: " << path << " is not a zstd frame with a known size\n";
    std::exit(2);
  }
  std::string out(size, '\0');
  if (ZSTD_isError(ZSTD_decompress(out.data(), out.size(), bytes.data(), bytes.size()))) {
    std::cerr << "bench_tokenize: cannot decompress " << path << "\n";
    std::exit(2);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 3;
  std::vector<std::string> tokenizers, texts;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--tokenizer" && i + 1 < argc) {
      tokenizers.push_back(argv[++i]);
    } else {
      texts.push_back(arg);
    }
  }
  const char* root = std::getenv("HYDRA_SOURCE_DIR");
  const std::string fixtures = std::string(root ? root : ".") + "/tests/fixtures/tokenizer/";
  if (tokenizers.empty()) tokenizers = {fixtures + "gpt2.tokenizer.json.zst", fixtures + "cl100k.tokenizer.json.zst"};

  std::string text;
  std::string what;
  if (texts.empty()) {
    const std::string prose = read_file(fixtures + "prose.txt");
    while (text.size() < (4u << 20)) text += prose;
    what = "fixture prose repeated";
  } else {
    for (const std::string& path : texts) text += read_file(path);
    what = std::to_string(texts.size()) + " file(s)";
  }
  std::printf("text: %s, %.2f MB\n", what.c_str(), text.size() / 1e6);

  for (const std::string& path : tokenizers) {
    const hydra::io::Tokenizer loaded = hydra::io::Tokenizer::from_json(maybe_unzstd(path, read_file(path)), path);
    std::vector<double> mbps, cpu_mbps;
    size_t count = 0;
    for (int r = 0; r < reps; ++r) {
      const hydra::io::Tokenizer tok = loaded;  // a fresh copy: empty cache
      std::vector<uint32_t> ids;
      ids.reserve(text.size() / 3);
      const double cpu_start = thread_cpu_seconds();
      const auto start = std::chrono::steady_clock::now();
      tok.encode(text, ids, false, "bench text");
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double cpu_seconds = thread_cpu_seconds() - cpu_start;
      count = ids.size();
      mbps.push_back(text.size() / 1e6 / seconds);
      cpu_mbps.push_back(text.size() / 1e6 / cpu_seconds);
      std::printf("  %s rep %d: %.2f MB/s wall, %.2f MB/s CPU\n", path.c_str(), r, mbps.back(), cpu_mbps.back());
    }
    std::sort(mbps.begin(), mbps.end());
    std::sort(cpu_mbps.begin(), cpu_mbps.end());
    std::printf("%s: %zu tokens (%.2f bytes/token), median %.2f MB/s wall, %.2f MB/s per CPU second, 1 thread\n",
                path.c_str(), count, static_cast<double>(text.size()) / count, mbps[mbps.size() / 2],
                cpu_mbps[cpu_mbps.size() / 2]);
  }
  return 0;
}
