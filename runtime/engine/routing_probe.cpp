#include "runtime/engine/routing_probe.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "runtime/engine/session.h"

namespace cs {

double RoutingStats::normalized_entropy(size_t i) const {
  const std::vector<int64_t>& c = counts[i];
  double total = 0, h = 0;
  for (int64_t n : c) total += double(n);
  if (total == 0 || c.size() < 2) return 0;
  for (int64_t n : c)
    if (n > 0) h -= double(n) / total * std::log(double(n) / total);
  return h / std::log(double(c.size()));
}

int RoutingStats::experts_used(size_t i) const {
  return int(std::count_if(counts[i].begin(), counts[i].end(), [](int64_t n) { return n > 0; }));
}

double RoutingStats::min_normalized_entropy() const {
  double m = 1;
  for (size_t i = 0; i < counts.size(); ++i) m = std::min(m, normalized_entropy(i));
  return m;
}

double RoutingStats::mean_normalized_entropy() const {
  double s = 0;
  for (size_t i = 0; i < counts.size(); ++i) s += normalized_entropy(i);
  return counts.empty() ? 0 : s / double(counts.size());
}

int RoutingStats::min_experts_used() const {
  int m = counts.empty() ? 0 : int(counts[0].size());
  for (size_t i = 0; i < counts.size(); ++i) m = std::min(m, experts_used(i));
  return m;
}

double RoutingStats::top_share(size_t i) const {
  int64_t total = 0, top = 0;
  for (int64_t n : counts[i]) total += n, top = std::max(top, n);
  return total ? double(top) / double(total) : 0;
}

RoutingStats probe_routing(const Model& model, Backend& backend, int prompt_tokens,
                           int decode_tokens, uint64_t seed) {
  const ModelConfig& c = model.config();
  RoutingStats st;
  std::map<int, size_t> slot;
  for (int l = 0; l < c.n_layers; ++l)
    if (c.is_moe_layer(l)) {
      slot[l] = st.layers.size();
      st.layers.push_back(l);
    }
  st.counts.assign(st.layers.size(), std::vector<int64_t>(size_t(c.n_experts), 0));
  SessionOptions so;
  so.transformer.n_ctx = prompt_tokens + decode_tokens + 1;
  Session session(model, backend, so);
  session.transformer().set_routing_observer(
      [&](int layer, int T, const int32_t* ids, const float*) {
        std::vector<int64_t>& cnt = st.counts[slot.at(layer)];
        for (int i = 0; i < T * c.n_experts_per_tok; ++i) ++cnt[size_t(ids[i])];
      });
  std::mt19937_64 rng(seed);
  std::vector<int32_t> prompt(size_t(std::max(1, prompt_tokens)));
  for (int32_t& t : prompt) t = int32_t(rng() % uint64_t(c.vocab_size));
  GenerateOptions g;
  g.max_tokens = decode_tokens;
  g.sampling.temperature = 1.0f;
  g.sampling.top_k = 0;
  g.sampling.top_p = 1.0f;
  g.sampling.seed = seed;
  session.generate(prompt, g);
  for (float x : session.last_logits()) st.finite = st.finite && std::isfinite(x);
  // The last sampled token is not fed back, so prompt + decode - 1 tokens were routed.
  st.tokens = int(prompt.size()) + std::max(0, decode_tokens - 1);
  return st;
}

}  // namespace cs
