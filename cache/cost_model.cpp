#include "cache/cost_model.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/error.h"

namespace cs {

std::string CostParams::describe() const {
  return fmt::format(
      "expert {:.2f} MB, copy {:.1f} GB/s + {:.0f} us, NVMe {:.2f} GB/s + {:.0f} us, DRAM "
      "{:.1f} GB/s, CPU expert [{}], GPU expert [{}], CPU pass fixed {:.0f} us, layer fixed "
      "{:.0f} us",
      double(expert_bytes) / 1e6, copy_rate / 1e9, copy_latency * 1e6, nvme_rate / 1e9,
      nvme_latency * 1e6, dram_rate / 1e9, format_token_costs(cpu), format_token_costs(gpu),
      cpu_fixed * 1e6, layer_fixed * 1e6);
}

std::string format_token_costs(const std::vector<TokenCost>& table) {
  std::string s;
  for (const TokenCost& c : table)
    s += fmt::format("{}{}:{:.1f}us", s.empty() ? "" : ",", c.tokens, c.seconds * 1e6);
  return s;
}

CostModel::CostModel(CostParams p) : p_(std::move(p)) {
  if (!(p_.copy_rate > 0) || !(p_.dram_rate > 0) || !(p_.gpu_rate > 0) || p_.nvme_rate < 0)
    fail(ErrorKind::kInvalidArgument,
         "cost model: rates must be positive (copy {}, DRAM {}, GPU {}, NVMe {})", p_.copy_rate,
         p_.dram_rate, p_.gpu_rate, p_.nvme_rate);
  for (const auto* t : {&p_.cpu, &p_.gpu})
    for (size_t i = 0; i < t->size(); ++i)
      if ((*t)[i].tokens < 1 || !((*t)[i].seconds >= 0) ||
          (i > 0 && (*t)[i].tokens <= (*t)[i - 1].tokens))
        fail(ErrorKind::kInvalidArgument,
             "cost model: token-cost table [{}] must have ascending token counts >= 1 and "
             "non-negative times",
             format_token_costs(*t));
}

double CostModel::interpolate(const std::vector<TokenCost>& t, int tokens, double fallback1) {
  tokens = std::max(tokens, 1);
  if (t.empty()) return fallback1 * tokens;
  if (tokens <= t.front().tokens) return t.front().seconds;
  for (size_t i = 1; i < t.size(); ++i)
    if (tokens <= t[i].tokens) {
      const double f = double(tokens - t[i - 1].tokens) / double(t[i].tokens - t[i - 1].tokens);
      return t[i - 1].seconds + f * (t[i].seconds - t[i - 1].seconds);
    }
  return t.back().seconds * double(tokens) / double(t.back().tokens);
}

double CostModel::copy_seconds() const {
  return double(p_.expert_bytes) / p_.copy_rate + p_.copy_latency;
}

double CostModel::nvme_seconds() const {
  return p_.nvme_rate > 0 ? double(p_.expert_bytes) / p_.nvme_rate + p_.nvme_latency : 0.0;
}

double CostModel::cpu_seconds(int tokens) const {
  const double read = double(p_.expert_bytes) / p_.dram_rate;
  return std::max(read, interpolate(p_.cpu, tokens, read));
}

double CostModel::gpu_seconds(int tokens) const {
  return interpolate(p_.gpu, tokens, double(p_.expert_bytes) / p_.gpu_rate);
}

PassTime CostModel::pass_seconds(const PassLoad& l) const {
  PassTime t;
  const int resident = l.gpu_resident + l.in_flight;
  t.copy_channel = (l.in_flight + double(l.stream_tokens.size())) * copy_seconds() +
                   l.nvme_stream * nvme_seconds() + resident * gpu_seconds(l.gpu_tokens_resident);
  for (int tok : l.stream_tokens) t.copy_channel += gpu_seconds(tok);
  if (!l.cpu_tokens.empty()) {
    t.cpu_channel = p_.cpu_fixed + l.nvme_cpu * nvme_seconds();
    for (int tok : l.cpu_tokens) t.cpu_channel += cpu_seconds(tok);
  }
  t.total = std::max(t.copy_channel, t.cpu_channel) + p_.layer_fixed;
  return t;
}

double CostModel::decode_token_seconds(int layers, double hits, double stream, double cpu,
                                       double other_seconds) const {
  const double copy = stream * copy_seconds() + (hits + stream) * gpu_seconds(1);
  const double cpu_t = cpu > 0 ? p_.cpu_fixed + cpu * cpu_seconds(1) : 0.0;
  return layers * (std::max(copy, cpu_t) + p_.layer_fixed) + other_seconds;
}

}  // namespace cs
