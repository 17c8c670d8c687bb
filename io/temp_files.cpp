// Temp names, the signal-time registry and its handler (the contract is in temp_files.h).
#include "io/temp_files.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "tensor/error.h"

namespace hydra::io {

namespace {

// The table the handler walks: fixed storage, atomics only (no allocation, no locks).
constexpr int kSlots = 64;
constexpr size_t kPathBytes = 4096;
struct Slot {
  std::atomic<int> state{0};  // 0 free, 1 being filled, 2 registered
  bool is_directory = false;
  char path[kPathBytes];
};
Slot slots[kSlots];

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};

// 0: normal; 1: outputs being published (a signal waits); 2: a signal's cleanup has begun.
std::atomic<int> phase{0};
std::atomic<int> deferred_signal{0};

// Unlinks every entry of a flat directory, then the directory: open, getdents64, unlinkat and rmdir are
// all plain system calls, safe in a signal handler (opendir/readdir allocate and are not).
void remove_flat_directory(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return;
  alignas(8) char buffer[8192];
  while (true) {
    const long n = ::syscall(SYS_getdents64, fd, buffer, sizeof buffer);
    if (n <= 0) break;
    for (long at = 0; at < n;) {
      // struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
      unsigned short reclen = 0;
      std::memcpy(&reclen, buffer + at + 16, 2);
      const char* name = buffer + at + 19;
      if (std::strcmp(name, ".") != 0 && std::strcmp(name, "..") != 0) ::unlinkat(fd, name, 0);
      at += reclen;
    }
  }
  ::close(fd);
  ::rmdir(path);
}

// Removes every registered temp, then ends the process as `sig` would have.
[[noreturn]] void clean_up_and_die(int sig) {
  for (Slot& slot : slots) {
    if (slot.state.load(std::memory_order_acquire) != 2) continue;
    if (slot.is_directory) remove_flat_directory(slot.path);
    else ::unlink(slot.path);
  }
  // Default action and re-raise: the process ends as the signal says (exit status 128 + sig).
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(sig, &dfl, nullptr);
  sigset_t unblock;
  sigemptyset(&unblock);
  sigaddset(&unblock, sig);
  ::pthread_sigmask(SIG_UNBLOCK, &unblock, nullptr);
  ::raise(sig);
  ::_exit(128 + sig);  // not reached: the default action of these signals ends the process
}

void on_signal(int sig) {
  int expected = 0;
  if (phase.compare_exchange_strong(expected, 2)) clean_up_and_die(sig);
  // Publishing (phase 1): SignalsDeferred's end acts on it. Cleaning already (phase 2): nothing to add.
  if (expected == 1) deferred_signal.store(sig);
}

std::string random_hex16() {
  unsigned char bytes[8];
  if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) {
    // No entropy source: the pid, a counter and the clock still make a collision vanishingly unlikely
    // (and the O_EXCL/mkdir that follows refuses one).
    static std::atomic<uint64_t> counter{0};
    uint64_t mix = (static_cast<uint64_t>(::getpid()) << 32) ^ counter.fetch_add(1) ^
                   static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    std::memcpy(bytes, &mix, sizeof bytes);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (unsigned char b : bytes) {
    s += kHex[b >> 4];
    s += kHex[b & 15];
  }
  return s;
}

}  // namespace

std::string temp_name_prefix(const std::string& target_file_name) {
  // NOTE: built with append, not `"." + string`: GCC 12 warns falsely (-Wrestrict) on the latter.
  return std::string(".").append(target_file_name).append(".hydra-tmp-");
}

bool is_temp_name(const std::string& file_name, const std::string& target_file_name) {
  const std::string prefix = temp_name_prefix(target_file_name);
  if (file_name.size() != prefix.size() + 16 || file_name.compare(0, prefix.size(), prefix) != 0) return false;
  return file_name.find_first_not_of("0123456789abcdef", prefix.size()) == std::string::npos;
}

std::string temp_path_for(const std::string& target) {
  const std::filesystem::path p(target);
  const std::string name = temp_name_prefix(p.filename().string()) + random_hex16();
  return p.has_parent_path() ? (p.parent_path() / name).string() : name;
}

TempRegistration::TempRegistration(const std::string& path, bool is_directory) {
  if (path.size() >= kPathBytes) return;
  for (int i = 0; i < kSlots; ++i) {
    int expected = 0;
    if (!slots[i].state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) continue;
    std::memcpy(slots[i].path, path.c_str(), path.size() + 1);
    slots[i].is_directory = is_directory;
    slots[i].state.store(2, std::memory_order_release);
    slot_ = i;
    return;
  }
}

TempRegistration::~TempRegistration() {
  if (slot_ >= 0) slots[slot_].state.store(0, std::memory_order_release);
}

void remove_temps_on_signals() {
  static std::atomic<bool> installed{false};
  if (installed.exchange(true)) return;
  struct sigaction action {};
  action.sa_handler = on_signal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  for (int sig : kSignals) sigaddset(&action.sa_mask, sig);  // one cleanup at a time
  for (int sig : kSignals) ::sigaction(sig, &action, nullptr);
}

SignalsDeferred::SignalsDeferred() {
  // A signal's cleanup may already run on another thread: then the process is about to end.
  for (int expected = 0; !phase.compare_exchange_strong(expected, 1); expected = 0) ::usleep(1000);
}

SignalsDeferred::~SignalsDeferred() {
  phase.store(0);
  if (const int sig = deferred_signal.exchange(0); sig != 0) {
    int expected = 0;
    if (phase.compare_exchange_strong(expected, 2)) clean_up_and_die(sig);
  }
}

void signal_point(const char* name) {
  const char* at = std::getenv("HYDRA_TEST_SIGNAL_AT");
  if (at != nullptr && std::strcmp(at, name) == 0) ::kill(::getpid(), SIGTERM);
}

}  // namespace hydra::io
