// A progress line on stderr for long jobs (convert, synth, info --verify): percentage, bytes,
// rate and ETA. Redrawn in place at most 10 times a second on a terminal; one line every 10 s
// otherwise (logs stay short).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace cs::cli {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label, bool quiet = false);
  void update(uint64_t done, uint64_t total);
  // Prints the final line: total bytes, elapsed time, average rate.
  void finish(uint64_t total);
  double seconds() const;

 private:
  std::string label_;
  bool quiet_, tty_;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace cs::cli
