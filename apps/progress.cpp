#include "apps/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "common/units.h"

namespace cs::cli {
namespace {

std::string duration(double s) {
  if (s < 0 || s > 1e7) return "?";
  const int t = int(s + 0.5);
  return t >= 3600 ? fmt::format("{}h{:02}m", t / 3600, t / 60 % 60)
                   : fmt::format("{}m{:02}s", t / 60, t % 60);
}

}  // namespace

ProgressBar::ProgressBar(std::string label, int64_t total, std::string unit, bool quiet)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(std::max<int64_t>(total, 1)),
      quiet_(quiet),
      tty_(isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

void ProgressBar::update(int64_t done, const std::string& extra) {
  if (quiet_) return;
  const auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  } else {
    if (done >= total_) return;  // finish() draws the last line
    const int decile = int(10 * done / total_);
    if (decile == last_decile_) return;
    last_decile_ = decile;
  }
  last_draw_ = now;
  draw(done, extra, false);
}

void ProgressBar::finish(const std::string& extra) {
  if (!quiet_) draw(total_, extra, true);
}

std::string ProgressBar::count(double n) const {
  return unit_ == "bytes" ? format_bytes(n) : fmt::format("{:.0f} {}", n, unit_);
}

void ProgressBar::draw(int64_t done, const std::string& extra, bool final) {
  const double frac = std::clamp(double(done) / double(total_), 0.0, 1.0);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = secs > 0 ? double(done) / secs : 0.0;
  const double eta = rate > 0 ? double(total_ - done) / rate : -1;
  constexpr int kWidth = 24;
  const int filled = int(frac * kWidth);
  const std::string bar =
      std::string(size_t(filled), '#') + std::string(size_t(kWidth - filled), '.');
  const std::string rate_str =
      unit_ == "bytes" ? format_bytes(rate) + "/s" : fmt::format("{:.1f} {}/s", rate, unit_);
  const std::string line =
      fmt::format("{} [{}] {:3.0f}% {} / {} {} {} {}", label_, bar, 100 * frac, count(double(done)),
                  count(double(total_)), rate_str,
                  final ? fmt::format("in {}", duration(secs)) : "ETA " + duration(eta), extra);
  if (tty_)
    fmt::print(stderr, "\r{}\x1b[K{}", line, final ? "\n" : "");
  else
    fmt::print(stderr, "{}\n", line);
  std::fflush(stderr);
}

}  // namespace cs::cli
