#include "apps/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

#include "common/units.h"

namespace cs::cli {

ProgressBar::ProgressBar(std::string label, bool quiet)
    : label_(std::move(label)),
      quiet_(quiet),
      tty_(::isatty(2) != 0),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

double ProgressBar::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::update(uint64_t done, uint64_t total) {
  if (quiet_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_).count();
  if (since < (tty_ ? 0.1 : 10.0) && done < total) return;
  last_ = now;
  const double t = std::max(1e-6, seconds());
  const double rate = double(done) / t;
  const double frac = total ? double(done) / double(total) : 1.0;
  const int eta = rate > 0 ? int(double(total - done) / rate) : 0;
  const int width = 24, filled = int(frac * width);
  fmt::print(stderr, "{}{} [{}{}] {:5.1f}%  {} / {}  {}/s  ETA {}:{:02}{}", tty_ ? "\r" : "",
             label_, std::string(size_t(filled), '#'), std::string(size_t(width - filled), ' '),
             100 * frac, format_bytes(double(done)), format_bytes(double(total)),
             format_bytes(rate), eta / 60, eta % 60, tty_ ? "   " : "\n");
  std::fflush(stderr);
}

void ProgressBar::finish(uint64_t total) {
  if (quiet_) return;
  const double t = std::max(1e-6, seconds());
  fmt::print(stderr, "{}{}: {} in {:.1f} s ({}/s)\n", tty_ ? "\r\033[K" : "", label_,
             format_bytes(double(total)), t, format_bytes(double(total) / t));
}

}  // namespace cs::cli
