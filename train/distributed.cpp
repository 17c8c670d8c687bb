#include "train/distributed.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tensor/error.h"
#include "tensor/parallel.h"

#ifdef HYDRA_HAS_MPI
#include <mpi.h>
#endif

namespace hydra::dist {

namespace {

double g_comm_seconds = 0;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Adds the wall time of one collective to g_comm_seconds.
struct CommTimer {
  double start = now_seconds();
  ~CommTimer() { g_comm_seconds += now_seconds() - start; }
};

[[maybe_unused]] double read_timeout() {
  const char* env = std::getenv("HYDRA_MPI_TIMEOUT");
  if (!env || !*env) return 600;
  char* end = nullptr;
  const double v = std::strtod(env, &end);
  HYDRA_CHECK(end != env && *end == '\0' && v > 0, "HYDRA_MPI_TIMEOUT='", env,
              "' is not a number of seconds (expected a number > 0)");
  return v;
}

}  // namespace

double communication_seconds() { return g_comm_seconds; }

#ifdef HYDRA_HAS_MPI

namespace {

bool g_started = false;
int g_rank = 0, g_size = 1, g_local_size = 1;
// RankOrderSum's reduce-scatters and all-gathers each go on a communicator of their own: MPI matches
// the collectives of one communicator by the order they are started, and the ranks interleave the two
// kinds differently (a rank starts a piece's all-gather when it sees its scatter done, which depends on
// timing), while each kind alone is started in the same order everywhere.
MPI_Comm g_scatter_comm = MPI_COMM_NULL, g_gather_comm = MPI_COMM_NULL;
double g_timeout = 600;

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"})
    if (std::getenv(var)) return true;
  return false;
}

[[noreturn]] void fail(const char* what, int code) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int len = 0;
  MPI_Error_string(code, text, &len);
  std::fprintf(stderr, "hydra: rank %d: MPI error in %s: %s; aborting the job\n", g_rank, what, text);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

void check(int code, const char* what) {
  if (code != MPI_SUCCESS) fail(what, code);
}

// Polls a non-blocking collective until it completes, or aborts the job at the deadline. Open MPI moves
// data only inside MPI calls (no progress thread), so the loop polls without sleeping, as a blocking
// call would.
void wait(MPI_Request& request, const char* what) {
  const double deadline = now_seconds() + g_timeout;
  int done = 0;
  for (uint64_t spins = 1;; ++spins) {
    check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), what);
    if (done) return;
    if (spins % 1024 == 0 && now_seconds() > deadline) {
      std::fprintf(stderr,
                   "hydra: rank %d: no answer from the other ranks for %.0f s in %s (a rank died or hangs; "
                   "HYDRA_MPI_TIMEOUT sets the limit); aborting the job\n",
                   g_rank, g_timeout, what);
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 1);
      std::_Exit(1);
    }
  }
}

// The reduce-scatter + all-gather works on segments of at most this many floats, so its receive
// buffer (P pieces of one segment) stays small however large the gradient slab.
constexpr int64_t kSegment = int64_t{1} << 23;  // 32 MB of float32
// The receive buffers of the pieces still scattering stay under this many floats (64 MB) plus one
// segment: starting a piece past it first completes the oldest ones. Without a cap, a slow network
// would let every bucket of the slab wait with a buffer of its size: a second gradient slab.
constexpr int64_t kMaxInFlight = int64_t{1} << 24;

}  // namespace

void init(int* argc, char*** argv) {
  if (g_started || !launched_by_mpi()) return;
  g_timeout = read_timeout();
  int provided = 0;
  // Only the main thread calls MPI; the TBB workers never do.
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    std::fprintf(stderr, "hydra: MPI_Init_thread failed\n");
    std::exit(1);
  }
  g_started = true;
  // Errors come back as codes, which fail() turns into a message and an abort of the whole job.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  check(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank), "MPI_Comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &g_size), "MPI_Comm_size");
  MPI_Comm local;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
  check(MPI_Comm_size(local, &g_local_size), "MPI_Comm_size");
  MPI_Comm_free(&local);
  check(MPI_Comm_dup(MPI_COMM_WORLD, &g_scatter_comm), "MPI_Comm_dup");
  check(MPI_Comm_dup(MPI_COMM_WORLD, &g_gather_comm), "MPI_Comm_dup");
}

void finalize() {
  if (!g_started) return;
  g_started = false;
  MPI_Comm_free(&g_scatter_comm);
  MPI_Comm_free(&g_gather_comm);
  MPI_Finalize();
}

bool compiled_in() { return true; }

std::string library() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
  int len = 0;
  MPI_Get_library_version(text, &len);  // one of the few MPI calls allowed before MPI_Init
  std::string s(text, static_cast<size_t>(std::max(len, 0)));
  s = s.substr(0, s.find('\n'));
  while (!s.empty() && (s.back() == '\0' || s.back() == ' ' || s.back() == ',')) s.pop_back();
  return s;
}

int rank() { return g_rank; }
int size() { return g_size; }
int local_size() { return g_local_size; }
double timeout_seconds() { return g_timeout; }

// One segment of a RankOrderSum: first a reduce-scatter (rank q receives every rank's copy of the
// elements it owns), then, once this rank has added its own elements in rank order, an all-gather.
struct RankOrderSum::Piece {
  float* seg = nullptr;
  std::vector<int> counts, displs, recv_counts, recv_displs;
  std::vector<float> received;  // P copies of this rank's elements, rank after rank
  MPI_Request request = MPI_REQUEST_NULL;
  bool gathering = false;
};

namespace {

using Piece = RankOrderSum::Piece;

void start_scatter(Piece& p, float* seg, int64_t len) {
  const int P = g_size;
  p.seg = seg;
  p.counts.resize(P);
  p.displs.resize(P);
  p.recv_counts.resize(P);
  p.recv_displs.resize(P);
  // Rank q owns elements [len*q/P, len*(q+1)/P) of the segment: it receives every rank's copy of them.
  for (int q = 0; q < P; ++q) {
    const int64_t b = len * q / P, e = len * (q + 1) / P;
    p.counts[q] = static_cast<int>(e - b);
    p.displs[q] = static_cast<int>(b);
  }
  const int mine = p.counts[g_rank];
  for (int q = 0; q < P; ++q) {
    p.recv_counts[q] = mine;
    p.recv_displs[q] = q * mine;
  }
  p.received.resize(static_cast<size_t>(P) * static_cast<size_t>(mine));
  check(MPI_Ialltoallv(seg, p.counts.data(), p.displs.data(), MPI_FLOAT, p.received.data(), p.recv_counts.data(),
                       p.recv_displs.data(), MPI_FLOAT, g_scatter_comm, &p.request),
        "MPI_Ialltoallv");
}

// The sum, in rank order from +0, of each owned element; then every rank gathers every rank's sums.
void add_and_gather(Piece& p) {
  const int P = g_size, mine = p.counts[g_rank];
  float* out = p.seg + p.displs[g_rank];
  const float* in = p.received.data();
  parallel_for(0, mine, int64_t{1} << 14, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      float sum = 0.0f;
      for (int q = 0; q < P; ++q) sum += in[static_cast<int64_t>(q) * mine + i];
      out[i] = sum;
    }
  });
  std::vector<float>().swap(p.received);
  check(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, p.seg, p.counts.data(), p.displs.data(), MPI_FLOAT,
                        g_gather_comm, &p.request),
        "MPI_Iallgatherv");
  p.gathering = true;
}

// Moves a piece along as far as it can go; true once it is complete. `block` waits (with the deadline).
// Every rank must issue the pieces' all-gathers in the same order (MPI matches collectives by the order
// they are started), so a piece's all-gather may start only after every earlier piece's did: the
// caller advances the pieces in order and stops at the first still scattering.
bool advance(Piece& p, bool block) {
  for (;;) {
    if (block) {
      wait(p.request, p.gathering ? "the gradient all-gather" : "the gradient reduce-scatter");
    } else {
      int done = 0;
      check(MPI_Test(&p.request, &done, MPI_STATUS_IGNORE), "MPI_Test");
      if (!done) return false;
    }
    if (p.gathering) return true;
    add_and_gather(p);
  }
}

}  // namespace

RankOrderSum::RankOrderSum() = default;

RankOrderSum::~RankOrderSum() {
  if (pieces_.empty()) return;
  // Only an error between start() and finish() gets here. MPI may still write into the buffers being
  // freed, and the other ranks wait for this one's part of the sum: the job cannot go on.
  std::fprintf(stderr, "hydra: rank %d: a gradient sum was still in flight when an error ended the step; "
               "ending the job\n", g_rank);
  abort(1);
}

void RankOrderSum::start(std::span<float> x) {
  if (g_size == 1) return;
  CommTimer timer;
  const int64_t n = static_cast<int64_t>(x.size());
  for (int64_t s0 = 0; s0 < n; s0 += kSegment) {
    // Oldest first, as every rank does: a rank waiting here waits for pieces every rank has started.
    while (!pieces_.empty() && receiving() > kMaxInFlight) {
      advance(*pieces_.front(), true);
      pieces_.erase(pieces_.begin());
    }
    pieces_.push_back(std::make_unique<Piece>());
    start_scatter(*pieces_.back(), x.data() + s0, std::min(kSegment, n - s0));
  }
}

int64_t RankOrderSum::receiving() const {
  int64_t floats = 0;
  for (const auto& p : pieces_) floats += static_cast<int64_t>(p->received.size());
  return floats;
}

void RankOrderSum::poll() {
  if (pieces_.empty()) return;
  CommTimer timer;
  for (auto& p : pieces_) {
    const bool was_scattering = !p->gathering;
    if (advance(*p, false)) {
      p.reset();
    } else if (was_scattering && !p->gathering) {
      break;  // its all-gather has not started: no later piece's may start before it
    }
  }
  std::erase(pieces_, nullptr);
}

void RankOrderSum::finish() {
  if (pieces_.empty()) return;
  CommTimer timer;
  for (auto& p : pieces_) advance(*p, true);
  pieces_.clear();
}

void allreduce_in_rank_order(std::span<float> x) {
  RankOrderSum sum;
  sum.start(x);
  sum.finish();
}

void allreduce_in_rank_order(std::span<double> x) {
  if (g_size == 1) return;
  CommTimer timer;
  // Small (losses, norms): every rank gathers every rank's values and adds them itself.
  const int n = static_cast<int>(x.size());
  std::vector<double> all(static_cast<size_t>(n) * static_cast<size_t>(g_size));
  MPI_Request req;
  check(MPI_Iallgather(x.data(), n, MPI_DOUBLE, all.data(), n, MPI_DOUBLE, MPI_COMM_WORLD, &req), "MPI_Iallgather");
  wait(req, "an all-gather of losses and norms");
  for (int i = 0; i < n; ++i) {
    double sum = 0.0;
    for (int q = 0; q < g_size; ++q) sum += all[static_cast<size_t>(q) * n + i];
    x[static_cast<size_t>(i)] = sum;
  }
}

void broadcast(void* data, size_t bytes, int root) {
  if (g_size == 1) return;
  CommTimer timer;
  char* p = static_cast<char*>(data);
  constexpr size_t kMax = size_t{1} << 30;  // MPI counts are int
  for (size_t off = 0; off < bytes; off += kMax) {
    MPI_Request req;
    check(MPI_Ibcast(p + off, static_cast<int>(std::min(kMax, bytes - off)), MPI_BYTE, root, MPI_COMM_WORLD, &req),
          "MPI_Ibcast");
    wait(req, "a broadcast");
  }
}

void barrier() {
  if (g_size == 1) return;
  CommTimer timer;
  MPI_Request req;
  check(MPI_Ibarrier(MPI_COMM_WORLD, &req), "MPI_Ibarrier");
  wait(req, "a barrier");
}

void abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (g_started) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

#else  // no MPI: one process

void init(int*, char***) {}
void finalize() {}
bool compiled_in() { return false; }
std::string library() { return ""; }
int rank() { return 0; }
int size() { return 1; }
int local_size() { return 1; }
double timeout_seconds() { return 600; }
void allreduce_in_rank_order(std::span<float>) {}
void allreduce_in_rank_order(std::span<double>) {}
struct RankOrderSum::Piece {};
RankOrderSum::RankOrderSum() = default;
RankOrderSum::~RankOrderSum() = default;
void RankOrderSum::start(std::span<float>) {}
void RankOrderSum::poll() {}
void RankOrderSum::finish() {}
void broadcast(void*, size_t, int) {}
void barrier() {}
void abort(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

#endif

}  // namespace hydra::dist
