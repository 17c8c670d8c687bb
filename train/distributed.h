// The processes of one training job, and the few collective operations training needs between them.
//
// `mpirun -np P hydra train ...` starts P processes ("ranks", numbered 0 to P-1). This is the one place
// that talks MPI (the only file that includes mpi.h is distributed.cpp); the rest of Hydra sees only the
// functions below. Without MPI compiled in (CMake option HYDRA_MPI off, or no Open MPI found), or when
// not started by an MPI launcher, there is one process: rank 0 of 1, and every collective is a no-op.
//
// Determinism: every reduction here adds the ranks' values in rank order 0, 1, ..., P-1, starting from
// +0, whatever the number of threads or the network: x = ((0 + x_0) + x_1) + ... + x_{P-1}. That is
// what lets P ranks reproduce a single process bit for bit (docs/distributed.md).
//
// Failure: every collective is started non-blocking and polled against a deadline ($HYDRA_MPI_TIMEOUT
// seconds, default 600). A rank that died or hangs makes the others print why and abort the whole job
// (MPI_Abort) instead of waiting forever; any MPI error aborts it too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace hydra::dist {

// Starts MPI when this process was started by an MPI launcher (mpirun sets OMPI_COMM_WORLD_SIZE, or
// PMIX_RANK / PMI_RANK for other launchers); otherwise does nothing. Call once, first thing in main.
void init(int* argc, char*** argv);
// Ends MPI (if init started it). Every rank must call it on its way out, unless it aborts.
void finalize();

bool compiled_in();          // whether this binary was built with MPI
std::string library();       // the first line of MPI_Get_library_version, or "" without MPI
int rank();                  // this process's rank, 0 when alone
int size();                  // the number of ranks, 1 when alone
int local_size();            // the ranks on this machine (shared-memory node), 1 when alone
double timeout_seconds();    // the deadline of one collective ($HYDRA_MPI_TIMEOUT, default 600)

// x[i] = sum over ranks, in rank order, of every rank's x[i]; every rank ends with the same values.
// Every rank must call with the same length.
void allreduce_in_rank_order(std::span<float> x);
void allreduce_in_rank_order(std::span<double> x);
// The same rank-ordered sum, started piece by piece so that it overlaps computation: start() a span as
// soon as its values are final (one layer's gradients, while backward goes on with the layers below),
// poll() now and then (Open MPI moves data only inside MPI calls), finish() to wait for the rest. Every
// rank must start spans of the same lengths in the same order. Each element is summed exactly as by
// allreduce_in_rank_order (which is start + finish), so overlapping changes no bit. A started piece
// holds a receive buffer as large as itself until its share has arrived; start() keeps those buffers
// under 64 MB (plus one 32 MB segment) by first completing the oldest pieces.
class RankOrderSum {
 public:
  RankOrderSum();
  ~RankOrderSum();
  RankOrderSum(const RankOrderSum&) = delete;
  RankOrderSum& operator=(const RankOrderSum&) = delete;
  void start(std::span<float> x);
  void poll();
  void finish();

  struct Piece;  // one segment in flight (distributed.cpp)

 private:
  int64_t receiving() const;  // floats in the receive buffers of the pieces in flight
  std::vector<std::unique_ptr<Piece>> pieces_;
};

// Every rank ends with root's bytes.
void broadcast(void* data, size_t bytes, int root);
void barrier();
// Ends every rank of the job with exit code `code` (exits this process when alone).
[[noreturn]] void abort(int code);

// Wall seconds spent inside the collectives above since the process started (communication time).
double communication_seconds();

}  // namespace hydra::dist
