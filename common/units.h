// Parsing and printing of byte sizes and rates given by users ("22GiB", "25GB/s", "512MiB").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cs {

// Parses a size such as "22GiB", "1.5 GB", "4096" (bytes) or "512k". Binary (KiB, MiB, GiB, TiB)
// and decimal (kB, MB, GB, TB) units; a bare K/M/G/T means binary. Throws cs::Error naming
// `what` (the flag or key) when the text is not a size.
uint64_t parse_bytes(std::string_view text, std::string_view what);

// Parses a rate such as "25GB/s" or "7 GiB/s" into bytes per second.
double parse_rate(std::string_view text, std::string_view what);

// "21.4 GiB", "512.0 MiB", "900 B".
std::string format_bytes(double bytes);

}  // namespace cs
