#include "common/units.h"

#include <cctype>
#include <cmath>
#include <string>

#include "common/error.h"

namespace cs {
namespace {

std::string lower(std::string_view s) {
  std::string out;
  for (char c : s)
    if (!std::isspace(static_cast<unsigned char>(c)))
      out += char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

double unit_factor(const std::string& unit, std::string_view text, std::string_view what) {
  if (unit.empty() || unit == "b") return 1;
  static const struct {
    const char* name;
    double factor;
  } kUnits[] = {
      {"k", 1024.0},          {"kib", 1024.0},          {"kb", 1e3},
      {"m", 1048576.0},       {"mib", 1048576.0},       {"mb", 1e6},
      {"g", 1073741824.0},    {"gib", 1073741824.0},    {"gb", 1e9},
      {"t", 1099511627776.0}, {"tib", 1099511627776.0}, {"tb", 1e12},
  };
  for (const auto& u : kUnits)
    if (unit == u.name) return u.factor;
  fail(ErrorKind::kInvalidArgument,
       "{}: '{}' is not a size (expected a number and a unit such as 22GiB or 512MB)", what, text);
}

double parse_scaled(std::string_view text, std::string_view what, std::string s) {
  size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(s, &pos);
  } catch (...) {
    fail(ErrorKind::kInvalidArgument,
         "{}: '{}' is not a size (expected a number and a unit such as 22GiB)", what, text);
  }
  if (!(value >= 0) || std::isinf(value))
    fail(ErrorKind::kInvalidArgument, "{}: '{}' must be a non-negative finite size", what, text);
  return value * unit_factor(s.substr(pos), text, what);
}

}  // namespace

uint64_t parse_bytes(std::string_view text, std::string_view what) {
  return uint64_t(std::llround(parse_scaled(text, what, lower(text))));
}

double parse_rate(std::string_view text, std::string_view what) {
  std::string s = lower(text);
  if (s.size() < 2 || s.substr(s.size() - 2) != "/s")
    fail(ErrorKind::kInvalidArgument,
         "{}: '{}' is not a rate (expected a size per second such as 25GB/s)", what, text);
  return parse_scaled(text, what, s.substr(0, s.size() - 2));
}

std::string format_bytes(double bytes) {
  static const char* kNames[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (bytes >= 1024 && i < 4) bytes /= 1024, ++i;
  return i == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.1f} {}", bytes, kNames[i]);
}

}  // namespace cs
