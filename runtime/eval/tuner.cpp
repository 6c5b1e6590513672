#include "runtime/eval/tuner.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <sstream>

#include "cache/hybrid_chooser.h"
#include "common/error.h"
#include "common/units.h"

namespace cs {
namespace {

constexpr uint64_t kReserve = 768ull << 20;    // driver and libraries (as the executor)
constexpr uint64_t kWorkspace = 256ull << 20;  // activations, expert tables, lookahead logits

struct PredictorChoice {
  PredictorKind kind;
  int horizon;
  double threshold;
};

}  // namespace

std::string TuneCandidate::label() const {
  ReplayConfig c = replay;
  c.chooser = nullptr;
  std::string s = describe(c);
  s += fmt::format(", {}", offload_mode_name(mode));
  if (hot > 0 && replay.hot_set.empty()) s += fmt::format(", hot {}", hot);
  return s;
}

int slots_for_budget(const ModelShape& shape, uint64_t vram_budget, int context,
                     std::string* note) {
  const uint64_t kv = uint64_t(context) * shape.kv_bytes_per_token;
  const uint64_t fixed = kReserve + kWorkspace + shape.dense_bytes + kv;
  const int64_t left = int64_t(vram_budget) - int64_t(fixed);
  const int slots = int(std::min<int64_t>(std::max<int64_t>(left, 0) / int64_t(shape.expert_bytes),
                                          int64_t(shape.expert_total())));
  if (note)
    *note = fmt::format(
        "{} VRAM - {} dense weights - {} KV cache ({} tokens) - {} reserve and workspace = {} "
        "slots of {}",
        format_bytes(double(vram_budget)), format_bytes(double(shape.dense_bytes)),
        format_bytes(double(kv)), context, format_bytes(double(kReserve + kWorkspace)), slots,
        format_bytes(double(shape.expert_bytes)));
  return slots;
}

double dense_step_seconds(const ModelShape& shape, const HardwareProfile& hw) {
  return double(shape.dense_bytes - shape.embed_bytes) / hw.vram_bw;
}

std::vector<TuneCandidate> tune_candidates(const RoutingTrace& trace, int gpu_slots,
                                           int host_slots) {
  const TraceHeader& h = trace.header;
  const int n_moe = int(h.moe_layers.size());
  std::vector<PredictorChoice> preds = {{PredictorKind::kNone, 1, 0.05},
                                        {PredictorKind::kLookahead, 1, 0.05},
                                        {PredictorKind::kLookahead, 1, 0.2},
                                        {PredictorKind::kCoactivation, 1, 0.1}};
  if (h.lookahead >= 2) preds.push_back({PredictorKind::kLookahead, 2, 0.05});
  std::vector<SlotAllocation> allocs = {SlotAllocation::kGlobal};
  if (gpu_slots >= h.k * n_moe) allocs.push_back(SlotAllocation::kPerLayer);
  const std::vector<OffloadMode> modes = {OffloadMode::kStream, OffloadMode::kCpu,
                                          OffloadMode::kHybrid};
  std::vector<int> hots = {0};
  // A hot set of a quarter of the slots, when it leaves room for a token in every partition.
  if (gpu_slots / 4 >= 1 && gpu_slots - gpu_slots / 4 > h.k * n_moe) hots.push_back(gpu_slots / 4);
  std::vector<TuneCandidate> out;
  for (PolicyKind p : {PolicyKind::kLru, PolicyKind::kLfu, PolicyKind::kRouterFreq})
    for (SlotAllocation a : allocs)
      for (const PredictorChoice& pc : preds)
        for (int hot : hots)
          for (OffloadMode m : modes) {
            TuneCandidate c;
            c.replay.gpu_slots = gpu_slots;
            c.replay.host_slots = host_slots;
            c.replay.policy = p;
            c.replay.allocation = a;
            c.replay.predictor = pc.kind;
            c.replay.horizon = pc.horizon;
            c.replay.threshold = pc.threshold;
            c.replay.miss_path = m == OffloadMode::kCpu ? MissPath::kCpu : MissPath::kStream;
            c.mode = m;
            c.hot = hot;
            out.push_back(c);
          }
  return out;
}

TuneReport tune(const RoutingTrace& trace, const ModelShape& shape, const TuneOptions& o) {
  const TraceHeader& h = trace.header;
  if (shape.n_experts != h.n_experts || shape.k != h.k ||
      shape.n_moe_layers != int(h.moe_layers.size()))
    fail(ErrorKind::kInvalidArgument,
         "tune: the trace ({} MoE layers, {} experts, top-{}) was not recorded on this model ({} "
         "MoE layers, {} experts, top-{})",
         h.moe_layers.size(), h.n_experts, h.k, shape.n_moe_layers, shape.n_experts, shape.k);
  TuneReport r;
  r.shape = shape;
  r.cost = o.hardware.cost_params(shape.expert_bytes);
  const CostModel cost(r.cost);
  if (o.gpu_slots > 0) {
    r.gpu_slots = int(std::min<uint64_t>(uint64_t(o.gpu_slots), shape.expert_total()));
    r.slots_note = fmt::format("{} slots (given)", r.gpu_slots);
  } else {
    r.gpu_slots = slots_for_budget(shape, o.vram_budget ? o.vram_budget : o.hardware.vram,
                                   o.context, &r.slots_note);
  }
  if (r.gpu_slots < h.k)
    fail(ErrorKind::kOutOfMemory, "tune: {}: fewer than the {} slots one token needs", r.slots_note,
         h.k);
  r.host_slots = o.host_budget ? int(o.host_budget / shape.expert_bytes) : 0;
  if (r.host_slots >= int(shape.expert_total())) r.host_slots = 0;
  // Non-expert work: the dense weights read once per step at the GPU's memory rate, and the
  // prefill FLOPs of the dense part per token.
  const double step_s =
      o.step_seconds >= 0 ? o.step_seconds : dense_step_seconds(shape, o.hardware);
  const double token_s = o.token_seconds >= 0 ? o.token_seconds : 0.0;

  const std::vector<HotSetEntry> hot_all = hot_set_from_trace(trace, r.gpu_slots);
  for (TuneCandidate c : tune_candidates(trace, r.gpu_slots, r.host_slots)) {
    c.replay.hot_set.assign(
        hot_all.begin(), hot_all.begin() + std::min<ptrdiff_t>(c.hot, ptrdiff_t(hot_all.size())));
    c.replay.cost = &cost;
    c.replay.step_seconds = step_s;
    c.replay.token_seconds = token_s;
    std::unique_ptr<HybridChooser> chooser;
    if (c.mode == OffloadMode::kHybrid) {
      chooser = std::make_unique<HybridChooser>(cost, 0.0);
      c.replay.chooser = chooser.get();
    }
    TuneRow row{c, replay_trace(trace, c.replay)};
    row.candidate.replay.chooser = nullptr;
    row.candidate.replay.cost = nullptr;
    r.rows.push_back(std::move(row));
  }
  std::stable_sort(r.rows.begin(), r.rows.end(), [](const TuneRow& a, const TuneRow& b) {
    if (a.result.seconds != b.result.seconds) return a.result.seconds < b.result.seconds;
    return a.result.served_rate() > b.result.served_rate();
  });
  // The runtime's defaults (OffloadConfig{}): router_freq, global, lookahead 1 at 0.05, no hot
  // set, hybrid where the build has it, else stream.
  const OffloadConfig d;
  const OffloadMode dmode = OffloadMode::kHybrid;
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const TuneCandidate& c = r.rows[i].candidate;
    if (c.replay.policy == d.cache.policy && c.replay.allocation == d.cache.allocation &&
        c.replay.predictor == d.predictor.kind && c.replay.horizon == d.predictor.horizon &&
        c.replay.threshold == d.predictor.threshold && c.hot == 0 && c.mode == dmode) {
      r.default_row = i;
      break;
    }
  }
  if (r.rows.front().candidate.hot > 0) r.hot_set = r.rows.front().candidate.replay.hot_set;
  r.belady = replay_belady(trace, r.gpu_slots, SlotAllocation::kGlobal);

  std::vector<int> sizes = o.curve_sizes;
  if (sizes.empty()) {
    const int total = int(shape.expert_total());
    for (int s = h.k; s < total; s *= 2) sizes.push_back(s);
    sizes.push_back(total);
    sizes.push_back(r.gpu_slots);
    std::sort(sizes.begin(), sizes.end());
    sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  }
  for (PolicyKind p :
       {PolicyKind::kLru, PolicyKind::kLfu, PolicyKind::kRouterFreq, PolicyKind::kBelady}) {
    TuneReport::Curve cv;
    cv.policy = policy_name(p);
    for (int s : sizes) {
      ReplayConfig c;
      c.gpu_slots = s;
      c.policy = p;
      c.predictor = PredictorKind::kNone;
      cv.sizes.push_back(s);
      cv.hit_rate.push_back(replay_trace(trace, c).hit_rate());
    }
    r.curves.push_back(std::move(cv));
  }
  return r;
}

OffloadConfig candidate_config(const TuneCandidate& c, const TuneOptions& o,
                               const std::string& hot_set_path) {
  OffloadConfig cfg;
  auto set = [&](const char* key, const std::string& v) { set_offload_key(cfg, key, v, "tune"); };
  set("cache.policy", policy_name(c.replay.policy));
  set("cache.allocation", slot_allocation_name(c.replay.allocation));
  set("predictor.kind", predictor_name(c.replay.predictor));
  set("predictor.horizon", std::to_string(c.replay.horizon));
  set("predictor.threshold", fmt::format("{:g}", c.replay.threshold));
  set("offload.mode", offload_mode_name(c.mode));
  if (c.hot > 0 && !hot_set_path.empty()) set("cache.hot_set", hot_set_path);
  if (o.vram_budget) cfg.device.vram_budget = o.vram_budget;
  if (o.host_budget) cfg.memory.host_budget = o.host_budget;
  return cfg;
}

std::string format_tuned_config(const TuneReport& r, const OffloadConfig& cfg,
                                const std::string& header_comment) {
  const TuneRow& best = r.rows.front();
  const TuneRow& def = r.rows[r.default_row];
  std::string out;
  std::istringstream hc(header_comment);
  for (std::string line; std::getline(hc, line);) out += "# " + line + "\n";
  out += fmt::format(
      "# Chosen: {}\n#   replayed hit rate {:.1f}% (served from a slot {:.1f}%), predicted "
      "decode {:.1f} tok/s, prefill {:.1f} tok/s\n#   the default ({}) : hit rate {:.1f}%, "
      "decode {:.1f} tok/s, prefill {:.1f} tok/s\n#   Belady's optimum at {} slots without "
      "prefetch: {:.1f}%\n# Keys marked 'tuned' were chosen by the replay; the others are the "
      "defaults (docs/CONFIG.md).\n\n",
      best.candidate.label(), 100 * best.result.hit_rate(), 100 * best.result.served_rate(),
      best.result.decode_tok_s(), best.result.prefill_tok_s(), def.candidate.label(),
      100 * def.result.hit_rate(), def.result.decode_tok_s(), def.result.prefill_tok_s(),
      r.gpu_slots, 100 * r.belady.hit_rate());
  const std::vector<std::string> tuned = {"policy",    "allocation", "kind", "horizon",
                                          "threshold", "hot_set",    "mode"};
  std::istringstream body(format_offload_config(cfg));
  std::string section;
  for (std::string line; std::getline(body, line);) {
    if (!line.empty() && line[0] == '[') section = line;
    const std::string key = line.substr(0, line.find(' '));
    const bool mark = std::find(tuned.begin(), tuned.end(), key) != tuned.end() &&
                      (section != "[cache]" || key != "hot_set" || best.candidate.hot > 0);
    out += line + (mark ? "  # tuned" : "") + "\n";
  }
  return out;
}

std::string format_tune_table(const TuneReport& r, size_t max_rows) {
  std::string s =
      fmt::format("{:>4} {:>7} {:>7} {:>7} {:>9} {:>9} {:>6} {:>6}  {}\n", "rank", "hit%",
                  "served%", "PCIe/t", "decode/s", "prefill/s", "prec", "recall", "configuration");
  auto row = [&](size_t i, const TuneRow& x, const char* tag) {
    const ReplayResult& q = x.result;
    const double per_tok = q.tokens ? double(q.bytes_host_to_gpu) / double(q.tokens) : 0;
    s += fmt::format("{:>4} {:>7.1f} {:>7.1f} {:>7} {:>9.1f} {:>9.1f} {:>6.3f} {:>6.3f}  {}{}\n",
                     i + 1, 100 * q.hit_rate(), 100 * q.served_rate(), format_bytes(per_tok),
                     q.decode_tok_s(), q.prefill_tok_s(), q.prediction.precision(),
                     q.prediction.recall(), x.candidate.label(), tag);
  };
  for (size_t i = 0; i < r.rows.size() && i < max_rows; ++i)
    row(i, r.rows[i], i == r.default_row ? "  (default)" : "");
  if (r.default_row >= max_rows) row(r.default_row, r.rows[r.default_row], "  (default)");
  s += fmt::format("Belady's optimum at {} slots (no prefetch): hit rate {:.1f}%\n", r.gpu_slots,
                   100 * r.belady.hit_rate());
  return s;
}

std::string format_curves_svg(const TuneReport& r) {
  const double W = 640, H = 400, L = 60, R = 150, T = 30, B = 50;
  int max_size = 1;
  for (const auto& c : r.curves)
    for (int x : c.sizes) max_size = std::max(max_size, x);
  auto px = [&](int x) {
    return L + (W - L - R) * std::log2(double(x)) / std::log2(double(max_size));
  };
  auto py = [&](double y) { return T + (H - T - B) * (1 - y); };
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" "
      "fill=\"white\"/>\n<text x=\"{}\" y=\"18\">Hit rate against GPU cache size "
      "(experts), no prefetch: {}</text>\n",
      W, H, L, r.shape.name);
  s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n", L, py(0),
                   W - R, py(0));
  s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n", L, py(0),
                   L, py(1));
  for (int i = 0; i <= 4; ++i)
    s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}%</text>\n", L - 5,
                     py(i / 4.0) + 4, i * 25);
  if (!r.curves.empty())
    for (int x : r.curves.front().sizes)
      s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", px(x),
                       py(0) + 16, x);
  s += fmt::format(
      "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">cache size (experts, log "
      "scale); the tuned size is {}</text>\n",
      (L + W - R) / 2, H - 10, r.gpu_slots);
  const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#000000"};
  for (size_t i = 0; i < r.curves.size(); ++i) {
    const auto& c = r.curves[i];
    std::string pts;
    for (size_t j = 0; j < c.sizes.size(); ++j)
      pts += fmt::format("{:.1f},{:.1f} ", px(c.sizes[j]), py(c.hit_rate[j]));
    s += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} points=\"{}\"/>\n",
                     colors[i % 4], c.policy == "belady" ? " stroke-dasharray=\"6,3\"" : "", pts);
    s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"{}\">{}</text>\n", W - R + 10,
                     T + 20 + 18 * double(i), colors[i % 4], c.policy);
  }
  s += "</svg>\n";
  return s;
}

}  // namespace cs
