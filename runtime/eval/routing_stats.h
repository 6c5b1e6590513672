// Routing statistics of a MoE model over a text, from the router decisions the forward pass
// reports (Transformer::set_routing_observer): how evenly each layer spreads tokens over its
// experts, how soon an expert is needed again, and how many distinct experts a request touches.
// These numbers decide how well an expert cache can work (docs/DEMO_MODEL.md, docs/PERF.md).
//
// Per MoE layer:
// - load: selections per expert; routing entropy H = -sum p_e log2 p_e of the load shares
//   (log2 E bits when uniform), experts never selected, the most and least loaded expert as a
//   multiple of the uniform share E * p_e.
// - reuse distance (within a request): for each selection of expert e at token t, t - t' where t'
//   is the last earlier token of the same request that selected e in this layer; a first use in
//   the request is "cold". Buckets 1, 2, 3-4, 5-8, ..., 257-512, >512.
// - LRU hit rate: the share of selections that a per-layer LRU cache of C experts, kept across
//   requests, would hold: the expert was among the C most recently used in this layer before
//   this token (the K experts of one token count as used together).
// - working set (per request): distinct experts a request selects in this layer, as a mean over
//   requests, and its growth with request length (mean distinct experts after 1, 2, 4, ... tokens).
// Routing depends only on the tokens before a position, so a request evaluated by prefill gives
// exactly the routing of decoding the same text token by token.
//
// Thread-safety: not thread-safe; feed it from the thread that runs the forward pass.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/engine/transformer.h"

namespace cs {

class RoutingStats {
 public:
  static constexpr int kReuseBuckets = 11;  // 1, 2, 3-4, ..., 257-512, >512
  // n_layers: all layers of the model (dense layers simply report nothing); E experts, K per token.
  RoutingStats(int n_layers, int n_experts, int k);

  // Starts a new request (a fresh context). Requests with no tokens are not counted.
  void begin_request();
  // The routing of T consecutive tokens in one layer: ids [T][K].
  void observe(int layer, int T, const int32_t* ids);
  // observe() as a Transformer routing observer. The RoutingStats must outlive its use.
  RoutingObserver observer();

  struct Layer {
    int layer = 0;
    int64_t tokens = 0, selections = 0;
    std::vector<int64_t> load;  // [E]
    double entropy_bits = 0, max_load_x_uniform = 0, min_load_x_uniform = 0;
    int experts_unused = 0;
    int64_t cold = 0;                      // first uses within a request
    std::vector<int64_t> reuse_histogram;  // [kReuseBuckets]
    double mean_reuse_distance = 0;        // over non-cold selections
    std::vector<int> lru_capacities;
    std::vector<double> lru_hit_rate;  // per capacity
    double mean_working_set = 0;       // distinct experts per request
  };
  struct Report {
    int n_experts = 0, k = 0, requests = 0;
    int64_t tokens = 0;  // per layer
    std::vector<Layer> layers;
    std::vector<int> growth_tokens;      // 1, 2, 4, ...
    std::vector<double> growth_experts;  // mean distinct experts per layer after that many tokens
    double mean_entropy_bits() const;
    double mean_working_set() const;
  };
  // LRU hit rates are reported for these cache sizes (experts per layer); default K, 2K, E/4, E/2.
  void set_lru_capacities(std::vector<int> capacities);
  Report report() const;

 private:
  struct LayerState {
    std::vector<int64_t> load;
    std::vector<int64_t> last_use;  // [E] token index in the current request, -1 = unused
    std::vector<int> lru;           // experts, most recent first (across requests)
    std::vector<int64_t> lru_hits;  // per capacity
    std::vector<int64_t> reuse_hist;
    int64_t cold = 0, reuse_sum = 0, reused = 0, tokens = 0, selections = 0;
    int64_t pos = 0;   // tokens of the current request seen in this layer
    int distinct = 0;  // distinct experts in the current request
    int64_t working_set_sum = 0;
    int requests = 0;
    bool seen = false;
  };
  void close_request();
  int E_, K_;
  std::vector<int> capacities_;
  std::vector<LayerState> layers_;
  // Working-set growth, summed over requests and layers: distinct experts at 2^j tokens.
  std::vector<double> growth_sum_;
  std::vector<int64_t> growth_n_;
  int requests_ = 0;
  bool open_ = false;
};

// The report as JSON (for docs and for the cache-policy tools).
nlohmann::json to_json(const RoutingStats::Report& r);

}  // namespace cs
