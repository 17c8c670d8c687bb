// Hydra's temporary files and directories (io/atomic_file.h, io/atomic_dir.h): named so that only
// Hydra's own can match, marked, and removed when the process is interrupted.
//
// Names: a temp for `target` is "<dir>/.<name>.hydra-tmp-<16 hex digits>" beside it (the same file
// system, so the final rename is atomic), the digits random (getrandom). A temp directory also holds a
// marker file, kTempMarker, written first: "hydra temp <pid>\n". A later writer removes a leftover temp
// directory only when its name has exactly that form, it is a real directory (not a symlink), its
// marker is there and says so, and that process is gone: a user's ".x.tmp-notes/" is never touched.
//
// Interruption: every temp is registered while it exists, in a fixed table an async-signal-safe handler
// can walk. remove_temps_on_signals() (the CLI calls it once, at start) installs handlers for SIGINT,
// SIGTERM and SIGHUP that unlink every registered temp file and empty and remove every registered temp
// directory (they are flat: files only), then re-raise the signal with its default action, so the exit
// status still says how the process ended. SIGKILL and power loss cannot be caught: a temp directory
// left then is removed by the next writer of that target (its marker names a dead process); a temp
// file left then stays, its name saying what it is.
//
// For tests, signal_point(name): when $HYDRA_TEST_SIGNAL_AT equals `name`, the process sends itself
// SIGTERM there, so an interruption can be tested at a chosen instant.
#pragma once

#include <string>

namespace hydra::io {

inline constexpr const char* kTempMarker = ".hydra-temp";

// "<dir>/.<name>.hydra-tmp-<16 random hex digits>" for `target`.
std::string temp_path_for(const std::string& target);
// The prefix every temp name of `target`'s file name starts with (".<name>.hydra-tmp-").
std::string temp_name_prefix(const std::string& target_file_name);
// True when `file_name` is exactly temp_name_prefix(target_file_name) followed by 16 hex digits.
bool is_temp_name(const std::string& file_name, const std::string& target_file_name);

// Registers a temp path for removal on SIGINT/SIGTERM/SIGHUP while this object lives. Up to 64 temps
// at once are covered (beyond that, the temp is still removed normally, just not on a signal).
class TempRegistration {
 public:
  TempRegistration(const std::string& path, bool is_directory);
  ~TempRegistration();
  TempRegistration(const TempRegistration&) = delete;
  TempRegistration& operator=(const TempRegistration&) = delete;

 private:
  int slot_ = -1;
};

// Installs the signal handlers (idempotent).
void remove_temps_on_signals();

// Defers SIGINT, SIGTERM and SIGHUP while it lives, in every thread: for the few renames that publish
// several outputs, so no signal lands between two of them. A signal that arrives meanwhile is acted on
// (the cleanup, then the default action) when it ends. One at a time per process.
class SignalsDeferred {
 public:
  SignalsDeferred();
  ~SignalsDeferred();
  SignalsDeferred(const SignalsDeferred&) = delete;
  SignalsDeferred& operator=(const SignalsDeferred&) = delete;
};

// For tests: raises SIGTERM when $HYDRA_TEST_SIGNAL_AT == name.
void signal_point(const char* name);

}  // namespace hydra::io
