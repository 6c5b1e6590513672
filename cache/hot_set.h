// The pinned hot set: experts kept in GPU slots for the whole run, chosen from a profile
// (written by `coldstream tune`, or by hand). This file parses and writes the profile's text;
// reading the file is the caller's job (cache/ touches no files).
//
// Format (text, one expert per line; '#' starts a comment; blank lines are ignored):
//   # coldstream hot set v1
//   <layer> <expert> [<score>]
// The first line, when it is a comment naming a version, must say v1. Later entries of the same
// expert are ignored. Order matters: when the hot set does not fit, the first entries win.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cache/expert_id.h"

namespace cs {

struct HotSetEntry {
  ExpertId id;
  double score = 0;
};

// Throws cs::Error naming `origin`, the line and what was expected, for malformed lines and
// experts outside n_layers x n_experts.
std::vector<HotSetEntry> parse_hot_set(std::string_view text, std::string_view origin, int n_layers,
                                       int n_experts);
std::string format_hot_set(const std::vector<HotSetEntry>& entries);

}  // namespace cs
