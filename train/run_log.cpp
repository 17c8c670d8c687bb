#include "train/run_log.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <sstream>

#include "io/atomic_file.h"
#include "io/input_file.h"
#include "io/json_file.h"
#include "tensor/error.h"

namespace hydra::train {

namespace fs = std::filesystem;

namespace {

// A log holds one line of ~100 bytes per step: ten million steps fit in this, and it is read whole.
constexpr uint64_t kMaxLogBytes = uint64_t{1} << 30;

std::string join(const std::vector<std::string>& cells) {
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) line += (i ? "," : "") + cells[i];
  return line + "\n";
}

size_t count_cells(const std::string& line) { return static_cast<size_t>(std::count(line.begin(), line.end(), ',')) + 1; }

}  // namespace

std::string log_number(double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", value);
  return buf;
}

CsvLog::CsvLog(std::string path, std::vector<std::string> columns) : path_(std::move(path)), columns_(std::move(columns)) {}

CsvLog::~CsvLog() {
  if (file_) std::fclose(file_);
}

void CsvLog::open_for_append() {
  if (file_) std::fclose(file_);
  file_ = std::fopen(path_.c_str(), "ab");
  HYDRA_CHECK(file_ != nullptr, "cannot open ", path_, " for appending: ", std::strerror(errno));
}

void CsvLog::start() {
  io::write_file_atomic(path_, join(columns_));
  open_for_append();
}

void CsvLog::cut_back_to(int64_t step) {
  std::error_code ec;
  if (!fs::exists(path_, ec)) {
    start();
    return;
  }
  const std::string text = io::read_file(path_, "training log", kMaxLogBytes);
  std::istringstream in(text);
  std::string line, kept;
  bool header = true;
  // Only complete lines count: a kill while writing leaves a last line with no newline, whose first
  // cell may be a cut-off number ("1" of "12").
  size_t consumed = 0;
  while (std::getline(in, line)) {
    consumed += line.size() + 1;
    if (consumed > text.size()) break;  // the last line had no newline
    if (header) {
      HYDRA_CHECK(line + "\n" == join(columns_), path_, ": its columns are '", line, "' but this run writes '",
                  join(columns_).substr(0, join(columns_).size() - 1), "' (a log of another run?)");
      kept += line + "\n";
      header = false;
      continue;
    }
    if (count_cells(line) != columns_.size()) continue;
    long long row_step = 0;
    size_t used = 0;
    try {
      row_step = std::stoll(line, &used);
    } catch (const std::exception&) {
      continue;
    }
    if (line[used] != ',' || row_step > step) continue;
    kept += line + "\n";
  }
  if (header) kept = join(columns_);
  io::write_file_atomic(path_, kept);
  open_for_append();
}

void CsvLog::append(const std::vector<std::string>& cells) {
  HYDRA_ASSERT(cells.size() == columns_.size(), path_, ": ", cells.size(), " cells for ", columns_.size(), " columns");
  HYDRA_ASSERT(file_ != nullptr, path_, ": append before start/cut_back_to");
  const std::string line = join(cells);
  HYDRA_CHECK(std::fwrite(line.data(), 1, line.size(), file_) == line.size() && std::fflush(file_) == 0,
              "cannot write to ", path_, ": ", std::strerror(errno));
}

// ---- gnuplot ----

std::string run_gnuplot(const std::string& script) {
  int in[2];
  if (::pipe(in) != 0) return std::string("pipe failed: ") + std::strerror(errno);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(in[0]);
    ::close(in[1]);
    return std::string("fork failed: ") + std::strerror(errno);
  }
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::close(in[0]);
    ::close(in[1]);
    const int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    ::execlp("gnuplot", "gnuplot", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(in[0]);
  size_t done = 0;
  while (done < script.size()) {
    const ssize_t n = ::write(in[1], script.data() + done, script.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(in[1]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return "gnuplot is not installed (Debian package gnuplot-nox)";
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "gnuplot failed";
  return "";
}

std::string gnuplot_quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string plot_losses(const std::string& out_dir, const CsvLog& metrics, const CsvLog* eval) {
  const std::string svg = (fs::path(out_dir) / "loss.svg").string();
  const std::string temp = (fs::path(out_dir) / ".loss.svg.tmp").string();
  std::ostringstream s;
  s << "set terminal svg size 900,540 dynamic background rgb 'white'\n"
    << "set output " << gnuplot_quoted(temp) << "\n"
    << "set datafile separator ','\nset key outside right\nset grid\n"
    << "set xlabel 'step'\nset ylabel 'loss (nats per token)'\nset title 'Hydra training'\n"
    << "plot ";
  bool first = true;
  auto add = [&](const std::string& file, size_t column, const std::string& title, const std::string& style) {
    s << (first ? "" : ", \\\n     ") << gnuplot_quoted(file) << " using 1:" << column + 1 << " every ::1 with " << style
      << " title " << gnuplot_quoted(title);
    first = false;
  };
  for (size_t c = 0; c < metrics.columns().size(); ++c)
    if (metrics.columns()[c].starts_with("loss_head")) add(metrics.path(), c, "train " + metrics.columns()[c].substr(5), "lines");
  if (eval) {
    for (size_t c = 0; c < eval->columns().size(); ++c) {
      const std::string& name = eval->columns()[c];
      if (name.starts_with("loss_head")) add(eval->path(), c, "val " + name.substr(5), "linespoints");
      if (name == "ensemble_loss") add(eval->path(), c, "val ensemble (mean logits)", "linespoints lw 2");
      if (name == "poe_loss") add(eval->path(), c, "val product of experts", "linespoints lw 2");
    }
  }
  s << "\n";
  const std::string why = run_gnuplot(s.str());
  std::error_code ec;
  if (!why.empty()) {
    fs::remove(temp, ec);
    return why;
  }
  fs::rename(temp, svg, ec);
  if (ec) return "cannot rename " + temp + " to " + svg + ": " + ec.message();
  return "";
}

}  // namespace hydra::train
