// A progress bar on stderr for long commands: redrawn in place on a terminal (at most ten times a
// second), one line per tenth of the work otherwise, so logs stay short.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace cs::cli {

class ProgressBar {
 public:
  // `unit` names what is counted ("tokens"); total > 0.
  ProgressBar(std::string label, int64_t total, std::string unit);
  // Reports `done` of total; `extra` is appended (e.g. "ppl 23.1").
  void update(int64_t done, const std::string& extra = {});
  // Draws the final state and ends the line.
  void finish(const std::string& extra = {});

 private:
  void draw(int64_t done, const std::string& extra, bool final);
  std::string label_, unit_;
  int64_t total_;
  bool tty_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace cs::cli
