// A progress bar on stderr for long commands (perplexity, convert, synth, info --verify): done,
// total, rate and ETA; redrawn in place on a terminal (at most ten times a second), one line per
// tenth of the work otherwise, so logs stay short. The unit "bytes" prints sizes (KiB, MiB, ...).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>

namespace cs::cli {

class ProgressBar {
 public:
  // `unit` names what is counted ("tokens", "bytes"). `quiet` draws nothing.
  ProgressBar(std::string label, int64_t total, std::string unit, bool quiet = false);
  // Reports `done` of total; `extra` is appended (e.g. "ppl 23.1").
  void update(int64_t done, const std::string& extra = {});
  // Reports progress when the total is known only as the work goes (a byte count).
  void update(int64_t done, int64_t total) {
    total_ = std::max<int64_t>(total, 1);
    update(done);
  }
  // Draws the final state and ends the line.
  void finish(const std::string& extra = {});
  void finish(int64_t total) {
    total_ = std::max<int64_t>(total, 1);
    finish();
  }

 private:
  void draw(int64_t done, const std::string& extra, bool final);
  std::string count(double n) const;
  std::string label_, unit_;
  int64_t total_;
  bool quiet_, tty_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace cs::cli
