#include "runtime/eval/routing_stats.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace cs {
namespace {

int reuse_bucket(int64_t d) {
  int b = 0;
  while ((int64_t(1) << b) < d && b < RoutingStats::kReuseBuckets - 1) ++b;
  return b;  // 1 -> 0, 2 -> 1, 3..4 -> 2, ..., 257..512 -> 9, more -> 10
}

}  // namespace

RoutingStats::RoutingStats(int n_layers, int n_experts, int k) : E_(n_experts), K_(k) {
  if (n_layers < 1 || n_experts < 1 || k < 1 || k > n_experts)
    fail(ErrorKind::kInvalidArgument, "routing stats: bad shape: {} layers, {} experts, top-{}",
         n_layers, n_experts, k);
  layers_.resize(size_t(n_layers));
  set_lru_capacities({k, 2 * k, n_experts / 4, n_experts / 2});
}

void RoutingStats::set_lru_capacities(std::vector<int> capacities) {
  for (int& c : capacities) c = std::clamp(c, 1, E_);
  std::sort(capacities.begin(), capacities.end());
  capacities.erase(std::unique(capacities.begin(), capacities.end()), capacities.end());
  capacities_ = std::move(capacities);
  for (LayerState& s : layers_) s.lru_hits.assign(capacities_.size(), 0);
}

void RoutingStats::close_request() {
  if (!open_) return;
  bool any = false;
  for (LayerState& s : layers_) {
    if (s.pos == 0) continue;
    any = true;
    s.working_set_sum += s.distinct;
    ++s.requests;
    s.pos = 0;
    s.distinct = 0;
    std::fill(s.last_use.begin(), s.last_use.end(), -1);
  }
  if (any) ++requests_;
  open_ = false;
}

void RoutingStats::begin_request() {
  close_request();
  open_ = true;
}

void RoutingStats::observe(int layer, int T, const int32_t* ids) {
  if (layer < 0 || layer >= int(layers_.size()))
    fail(ErrorKind::kInvalidArgument, "routing stats: layer {} outside 0 .. {}", layer,
         layers_.size() - 1);
  if (!open_) begin_request();
  LayerState& s = layers_[size_t(layer)];
  if (!s.seen) {
    s.seen = true;
    s.load.assign(size_t(E_), 0);
    s.last_use.assign(size_t(E_), -1);
    s.reuse_hist.assign(kReuseBuckets, 0);
    s.lru_hits.assign(capacities_.size(), 0);
  }
  for (int t = 0; t < T; ++t) {
    const int32_t* row = ids + size_t(t) * K_;
    for (int j = 0; j < K_; ++j) {
      const int e = row[j];
      if (e < 0 || e >= E_)
        fail(ErrorKind::kInvalidArgument, "routing stats: expert {} outside 0 .. {} in layer {}", e,
             E_ - 1, layer);
      // LRU position before this token (the stack holds only experts used before).
      const auto it = std::find(s.lru.begin(), s.lru.end(), e);
      if (it != s.lru.end()) {
        const int64_t rank = it - s.lru.begin();
        for (size_t c = 0; c < capacities_.size(); ++c)
          if (rank < capacities_[c]) ++s.lru_hits[c];
      }
      if (s.last_use[size_t(e)] < 0) {
        ++s.cold;
        ++s.distinct;
      } else {
        const int64_t d = s.pos - s.last_use[size_t(e)];
        ++s.reuse_hist[size_t(reuse_bucket(d))];
        s.reuse_sum += d;
        ++s.reused;
      }
      s.last_use[size_t(e)] = s.pos;
      ++s.load[size_t(e)];
      ++s.selections;
    }
    for (int j = K_ - 1; j >= 0; --j) {  // the token's experts move to the front together
      const int e = row[j];
      const auto it = std::find(s.lru.begin(), s.lru.end(), e);
      if (it != s.lru.end()) s.lru.erase(it);
      s.lru.insert(s.lru.begin(), e);
    }
    ++s.tokens;
    ++s.pos;
    if ((s.pos & (s.pos - 1)) == 0) {  // a power of two: record the working-set growth
      const size_t j = size_t(std::log2(double(s.pos)) + 0.5);
      if (growth_sum_.size() <= j) {
        growth_sum_.resize(j + 1, 0.0);
        growth_n_.resize(j + 1, 0);
      }
      growth_sum_[j] += s.distinct;
      ++growth_n_[j];
    }
  }
}

RoutingObserver RoutingStats::observer() {
  return [this](int layer, int T, const int32_t* ids, const float*) { observe(layer, T, ids); };
}

RoutingStats::Report RoutingStats::report() const {
  Report r;
  r.n_experts = E_;
  r.k = K_;
  r.requests = requests_;
  bool open_counts = false;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerState& s = layers_[l];
    if (!s.seen || s.selections == 0) continue;
    if (s.pos > 0) open_counts = true;
    Layer o;
    o.layer = int(l);
    o.tokens = s.tokens;
    o.selections = s.selections;
    o.load = s.load;
    double h = 0;
    int64_t mx = 0, mn = s.selections;
    for (int64_t c : s.load) {
      if (c > 0) {
        const double p = double(c) / double(s.selections);
        h -= p * std::log2(p);
      } else {
        ++o.experts_unused;
      }
      mx = std::max(mx, c);
      mn = std::min(mn, c);
    }
    o.entropy_bits = h;
    o.max_load_x_uniform = double(mx) * E_ / double(s.selections);
    o.min_load_x_uniform = double(mn) * E_ / double(s.selections);
    o.cold = s.cold;
    o.reuse_histogram = s.reuse_hist;
    o.mean_reuse_distance = s.reused ? double(s.reuse_sum) / double(s.reused) : 0.0;
    o.lru_capacities = capacities_;
    for (int64_t hits : s.lru_hits) o.lru_hit_rate.push_back(double(hits) / double(s.selections));
    const int64_t reqs = s.requests + (s.pos > 0 ? 1 : 0);
    o.mean_working_set = reqs ? double(s.working_set_sum + s.distinct) / double(reqs) : 0.0;
    r.tokens = std::max(r.tokens, s.tokens);
    r.layers.push_back(std::move(o));
  }
  if (open_counts) ++r.requests;
  for (size_t j = 0; j < growth_sum_.size(); ++j) {
    r.growth_tokens.push_back(1 << j);
    r.growth_experts.push_back(growth_n_[j] ? growth_sum_[j] / double(growth_n_[j]) : 0.0);
  }
  return r;
}

double RoutingStats::Report::mean_entropy_bits() const {
  double s = 0;
  for (const Layer& l : layers) s += l.entropy_bits;
  return layers.empty() ? 0.0 : s / double(layers.size());
}

double RoutingStats::Report::mean_working_set() const {
  double s = 0;
  for (const Layer& l : layers) s += l.mean_working_set;
  return layers.empty() ? 0.0 : s / double(layers.size());
}

nlohmann::json to_json(const RoutingStats::Report& r) {
  nlohmann::json j;
  j["experts"] = r.n_experts;
  j["experts_per_token"] = r.k;
  j["requests"] = r.requests;
  j["tokens"] = r.tokens;
  j["mean_entropy_bits"] = r.mean_entropy_bits();
  j["mean_working_set"] = r.mean_working_set();
  j["working_set_growth"] = {{"tokens", r.growth_tokens}, {"experts", r.growth_experts}};
  j["reuse_buckets"] = {"1",     "2",      "3-4",     "5-8",     "9-16", "17-32",
                        "33-64", "65-128", "129-256", "257-512", ">512"};
  nlohmann::json layers = nlohmann::json::array();
  for (const RoutingStats::Layer& l : r.layers) {
    layers.push_back({{"layer", l.layer},
                      {"tokens", l.tokens},
                      {"entropy_bits", l.entropy_bits},
                      {"max_load_x_uniform", l.max_load_x_uniform},
                      {"min_load_x_uniform", l.min_load_x_uniform},
                      {"experts_unused", l.experts_unused},
                      {"load", l.load},
                      {"cold", l.cold},
                      {"reuse_histogram", l.reuse_histogram},
                      {"mean_reuse_distance", l.mean_reuse_distance},
                      {"lru_capacities", l.lru_capacities},
                      {"lru_hit_rate", l.lru_hit_rate},
                      {"mean_working_set", l.mean_working_set}});
  }
  j["layers"] = layers;
  return j;
}

}  // namespace cs
