// The routing-statistics table `coldstream routing-stats` prints, shared with `coldstream trace`.
#pragma once

#include "runtime/eval/routing_stats.h"

namespace cs::cli {

// ppl <= 0: no perplexity to print.
void print_routing_report(const RoutingStats::Report& r, double ppl);

}  // namespace cs::cli
