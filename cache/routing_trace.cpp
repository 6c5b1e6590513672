#include "cache/routing_trace.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"

namespace cs {
namespace {

constexpr char kMagic[8] = {'C', 'S', 'T', 'R', 'A', 'C', 'E', '\0'};

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  template <typename T>
  void put(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out_.append(b, sizeof(T));
  }
  template <typename T>
  void put_array(const T* p, size_t n) {
    out_.append(reinterpret_cast<const char*>(p), n * sizeof(T));
  }
  void put_ids(const std::vector<ExpertId>& v) {
    put(uint32_t(v.size()));
    for (ExpertId id : v) {
      put(uint16_t(id.layer));
      put(uint16_t(id.expert));
    }
  }

 private:
  std::string& out_;
};

class Reader {
 public:
  Reader(std::string_view b, std::string_view origin) : b_(b), origin_(origin) {}
  template <typename T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  template <typename T>
  void get_array(T* p, size_t n, const char* what) {
    need(n * sizeof(T), what);
    std::memcpy(p, b_.data() + pos_, n * sizeof(T));
    pos_ += n * sizeof(T);
  }
  std::string get_string(size_t n, const char* what) {
    need(n, what);
    std::string s(b_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  [[noreturn]] void bad(const std::string& msg) const {
    fail(ErrorKind::kBadFile, "{}: routing trace: {} (at byte {})", origin_, msg, pos_);
  }
  size_t left() const { return b_.size() - pos_; }

 private:
  void need(size_t n, const char* what) {
    if (b_.size() - pos_ < n) bad(fmt::format("truncated while reading {}", what));
  }
  std::string_view b_, origin_;
  size_t pos_ = 0;
};

constexpr uint32_t kFlagTruncated = 1, kFlagTokens = 2;

std::string encode_header(const TraceHeader& h, uint64_t n_steps, bool tokens) {
  std::string out;
  Writer w(out);
  out.append(kMagic, sizeof(kMagic));
  w.put(kTraceVersion);
  w.put(uint32_t(h.n_layers));
  w.put(uint32_t(h.n_experts));
  w.put(uint32_t(h.k));
  w.put(uint32_t(h.moe_layers.size()));
  for (int l : h.moe_layers) w.put(int32_t(l));
  w.put(uint64_t(h.expert_bytes));
  w.put(uint32_t(h.lookahead));
  w.put(uint32_t(h.horizon));
  w.put(double(h.threshold));
  w.put(uint32_t(h.max_batch));
  w.put(uint32_t((h.truncated ? kFlagTruncated : 0) | (tokens ? kFlagTokens : 0)));
  w.put(uint32_t(h.model.size()));
  out += h.model;
  w.put(n_steps);
  return out;
}

void encode_step(std::string& out, const TraceStep& s, bool tokens) {
  Writer w(out);
  w.put(uint32_t(s.request));
  w.put(uint32_t(s.T));
  if (tokens) w.put_array(s.tokens.data(), s.tokens.size());
  for (const TraceLayer& l : s.layers) {
    w.put(uint32_t(l.ahead));
    for (int32_t id : l.ids) w.put(uint16_t(id));
    w.put_array(l.weights.data(), l.weights.size());
    w.put_array(l.logits.data(), l.logits.size());
    w.put_ids(l.pred_lookahead);
    w.put_ids(l.pred_coactivation);
  }
}

std::vector<ExpertId> decode_ids(Reader& r, const TraceHeader& h) {
  const uint32_t n = r.get<uint32_t>("a prediction's length");
  if (uint64_t(n) * 4 > r.left())
    r.bad(fmt::format("truncated: a prediction of {} experts runs past the end", n));
  std::vector<ExpertId> v(n);
  for (ExpertId& id : v) {
    id.layer = r.get<uint16_t>("a predicted layer");
    id.expert = r.get<uint16_t>("a predicted expert");
    if (id.layer >= h.n_layers || id.expert >= h.n_experts)
      r.bad(fmt::format("predicted expert {} outside {} layers x {} experts", to_string(id),
                        h.n_layers, h.n_experts));
  }
  return v;
}

}  // namespace

int64_t RoutingTrace::tokens() const {
  int64_t n = 0;
  for (const TraceStep& s : steps) n += s.T;
  return n;
}

bool RoutingTrace::has_tokens() const {
  return !steps.empty() && std::all_of(steps.begin(), steps.end(), [](const TraceStep& s) {
    return s.tokens.size() == size_t(s.T);
  });
}

void lookahead_logits(const TraceLayer& l, int T, int n_experts, int ahead,
                      std::vector<float>& out) {
  const size_t row = size_t(ahead) * size_t(n_experts),
               stride = size_t(l.ahead) * size_t(n_experts);
  out.resize(size_t(T) * row);
  for (int t = 0; t < T; ++t)
    std::copy_n(l.logits.begin() + ptrdiff_t(size_t(t) * stride), row,
                out.begin() + ptrdiff_t(size_t(t) * row));
}

uint64_t encoded_step_bytes(const TraceHeader& h, const TraceStep& s) {
  uint64_t n = 8 + 4 * s.tokens.size();
  for (const TraceLayer& l : s.layers)
    n += 4 + l.ids.size() * 2 + l.weights.size() * 4 + l.logits.size() * 4 + 8 +
         4 * (l.pred_lookahead.size() + l.pred_coactivation.size());
  (void)h;
  return n;
}

std::string encode_trace(const RoutingTrace& t) {
  const bool tokens = t.has_tokens();
  std::string out = encode_header(t.header, t.steps.size(), tokens);
  for (const TraceStep& s : t.steps) encode_step(out, s, tokens);
  return out;
}

RoutingTrace decode_trace(std::string_view bytes, std::string_view origin) {
  Reader r(bytes, origin);
  char magic[8];
  r.get_array(magic, 8, "the magic");
  if (std::memcmp(magic, kMagic, 8) != 0) r.bad("not a routing trace (magic is not CSTRACE)");
  const uint32_t version = r.get<uint32_t>("the version");
  if (version != 1 && version != kTraceVersion)
    r.bad(fmt::format("version {} is not supported (this build reads versions 1 and {})", version,
                      kTraceVersion));
  RoutingTrace t;
  TraceHeader& h = t.header;
  h.n_layers = int(r.get<uint32_t>("n_layers"));
  h.n_experts = int(r.get<uint32_t>("n_experts"));
  h.k = int(r.get<uint32_t>("k"));
  const uint32_t n_moe = r.get<uint32_t>("the MoE layer count");
  if (h.n_layers <= 0 || h.n_layers > 4096 || h.n_experts <= 0 || h.n_experts > 65535 || h.k <= 0 ||
      h.k > h.n_experts || n_moe == 0 || int(n_moe) > h.n_layers)
    r.bad(fmt::format("implausible shape: {} layers, {} experts, top-{}, {} MoE layers", h.n_layers,
                      h.n_experts, h.k, n_moe));
  for (uint32_t i = 0; i < n_moe; ++i) {
    const int l = r.get<int32_t>("a MoE layer index");
    if (l < 0 || l >= h.n_layers || (!h.moe_layers.empty() && l <= h.moe_layers.back()))
      r.bad(fmt::format("MoE layer {} out of order or range", l));
    h.moe_layers.push_back(l);
  }
  h.expert_bytes = r.get<uint64_t>("expert_bytes");
  h.lookahead = int(r.get<uint32_t>("lookahead"));
  h.horizon = int(r.get<uint32_t>("horizon"));
  h.threshold = r.get<double>("threshold");
  h.max_batch = int(r.get<uint32_t>("max_batch"));
  const uint32_t flags = r.get<uint32_t>("flags");
  h.truncated = (flags & kFlagTruncated) != 0;
  const bool tokens = version >= 2 && (flags & kFlagTokens) != 0;  // version 1 had no ids
  const uint32_t name_len = r.get<uint32_t>("the model name length");
  if (name_len > 4096) r.bad("model name longer than 4096 bytes");
  h.model = r.get_string(name_len, "the model name");
  const uint64_t n_steps = r.get<uint64_t>("the step count");
  if (n_steps > r.left() / 8)
    r.bad(fmt::format("truncated: {} steps cannot fit the file", n_steps));
  t.steps.resize(size_t(n_steps));
  uint32_t last_request = 0;
  for (TraceStep& s : t.steps) {
    s.request = r.get<uint32_t>("a step's request");
    s.T = int(r.get<uint32_t>("a step's token count"));
    if (s.request < last_request) r.bad("requests out of order");
    last_request = s.request;
    if (s.T <= 0 || uint64_t(s.T) * (uint64_t(h.k) * 6 + (tokens ? 4 : 0)) > r.left())
      r.bad(fmt::format("truncated or bad: a step of {} tokens runs past the end", s.T));
    if (tokens) {
      s.tokens.resize(size_t(s.T));
      r.get_array(s.tokens.data(), s.tokens.size(), "token ids");
      for (int32_t id : s.tokens)
        if (id < 0) r.bad(fmt::format("token id {} is negative", id));
    }
    const size_t n = size_t(s.T) * size_t(h.k);
    s.layers.resize(h.moe_layers.size());
    for (size_t i = 0; i < s.layers.size(); ++i) {
      TraceLayer& l = s.layers[i];
      l.layer = h.moe_layers[i];
      l.ahead = int(r.get<uint32_t>("a layer's lookahead count"));
      if (l.ahead > h.lookahead || l.ahead > int(h.moe_layers.size() - 1 - i))
        r.bad(fmt::format("layer {}: {} lookahead layers recorded, at most {} allowed", l.layer,
                          l.ahead, std::min<size_t>(h.lookahead, h.moe_layers.size() - 1 - i)));
      l.ids.resize(n);
      for (int32_t& id : l.ids) {
        id = r.get<uint16_t>("an expert id");
        if (id >= h.n_experts)
          r.bad(fmt::format("layer {}: expert {} of {}", l.layer, id, h.n_experts));
      }
      l.weights.resize(n);
      r.get_array(l.weights.data(), n, "router weights");
      const uint64_t nl = uint64_t(s.T) * uint64_t(l.ahead) * uint64_t(h.n_experts);
      if (nl * 4 > r.left()) r.bad("truncated: lookahead logits run past the end");
      l.logits.resize(size_t(nl));
      r.get_array(l.logits.data(), size_t(nl), "lookahead logits");
      l.pred_lookahead = decode_ids(r, h);
      l.pred_coactivation = decode_ids(r, h);
    }
  }
  if (r.left() != 0) r.bad(fmt::format("{} bytes after the last step", r.left()));
  return t;
}

TraceBuilder::TraceBuilder(TraceHeader header, uint64_t max_bytes) : max_(max_bytes) {
  trace_.header = std::move(header);
  bytes_ = encode_header(trace_.header, 0, false).size();
}

bool TraceBuilder::add(TraceStep step) {
  if (trace_.header.truncated) return false;
  const uint64_t n = encoded_step_bytes(trace_.header, step);
  if (max_ > 0 && bytes_ + n > max_) {
    trace_.header.truncated = true;
    return false;
  }
  bytes_ += n;
  trace_.steps.push_back(std::move(step));
  return true;
}

}  // namespace cs
