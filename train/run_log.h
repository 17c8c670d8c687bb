// The files a training run writes as it goes: metrics.csv, eval.csv and loss.svg in its out_dir.
//
//   metrics.csv  one row per optimizer step, numbered from 1:
//                step, lr, loss, loss_head<k> (each trained head), grad_norm, tokens_per_s, elapsed_s,
//                communication_s (of the step's time, the part spent waiting on other processes: mpirun)
//                (the loss in row s is the one step s computed before its update)
//   eval.csv     one row per evaluation: step, loss_head<k> (each evaluated head), ensemble_loss,
//                poe_loss, disagreement, and for SFT data exact_match_head<k>, exact_match_ensemble
//   loss.svg     the curves, drawn by gnuplot (a missing gnuplot is reported, never fatal)
//
// Rows are appended and flushed one at a time, so a run killed at any instant leaves at most one
// partial last line. Resuming from the checkpoint of step S keeps exactly the complete rows of steps
// <= S (rewriting the file atomically) and appends from there: the resumed logs equal those of a run
// never interrupted.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace hydra::train {

class CsvLog {
 public:
  CsvLog(std::string path, std::vector<std::string> columns);
  ~CsvLog();
  CsvLog(const CsvLog&) = delete;
  CsvLog& operator=(const CsvLog&) = delete;

  // Starts the file anew with just the header (atomically replacing any old one).
  void start();
  // Keeps the header and the complete rows whose step (first cell) is <= step; an error when the file's
  // header differs from this log's columns (another run's file). A missing file starts anew.
  void cut_back_to(int64_t step);
  // Appends one row (cells.size() == columns) and flushes it.
  void append(const std::vector<std::string>& cells);

  const std::string& path() const { return path_; }
  const std::vector<std::string>& columns() const { return columns_; }

 private:
  void open_for_append();

  std::string path_;
  std::vector<std::string> columns_;
  std::FILE* file_ = nullptr;
};

// A number as the logs write it: %.9g (enough digits to read a float32 back exactly).
std::string log_number(double value);

// Draws out_dir/loss.svg from metrics.csv and eval.csv (train loss per head; val loss per head, of the
// ensemble and of the product of experts) with gnuplot. Returns "" on success, else why not (gnuplot
// missing or failed); never throws for that.
std::string plot_losses(const std::string& out_dir, const CsvLog& metrics, const CsvLog* eval);

// Runs gnuplot with `script` on its standard input; "" on success, else why not.
std::string run_gnuplot(const std::string& script);
// A string as a gnuplot single-quoted literal.
std::string gnuplot_quoted(const std::string& s);

}  // namespace hydra::train
