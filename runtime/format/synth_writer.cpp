// write_synth: generates the weights of a synthetic model in parallel and writes the packed file
// and its GGUF twin at disk speed.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>

#include "common/error.h"
#include "common/half.h"
#include "runtime/format/gguf.h"
#include "runtime/format/gguf_export.h"
#include "runtime/format/gguf_writer.h"
#include "runtime/format/packed_writer.h"
#include "runtime/format/synth.h"
#include "runtime/model/weight_id.h"

namespace cs {
namespace {

uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// xoshiro256**: fast, and one independent stream per task, so output does not depend on the
// number of threads.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& v : s_) v = seed = splitmix(seed);
  }
  uint64_t next() {
    const uint64_t r = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return r;
  }
  float uniform() { return float(next() >> 40) * (1.0f / 16777216.0f); }
  float normal() {
    const float u = std::max(uniform(), 1e-7f), v = uniform();
    return std::sqrt(-2.0f * std::log(u)) * std::cos(6.2831853f * v);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

constexpr float kQ4CodeStd = 4.3205f;  // std of q - 8 for q uniform on 1..15: sqrt(56/3)
constexpr float kQ8CodeStd = 73.61f;   // std of q uniform on -127..127

// Zero-mean Q4 (symmetric, group 32) rows whose weights have standard deviation `std`.
void gen_q4(Rng& rng, int64_t rows, int64_t cols, float std, uint8_t* codes, uint16_t* scales) {
  for (int64_t g = 0; g < rows * cols / 32; ++g)
    scales[g] = f32_to_f16(std / kQ4CodeStd * (0.8f + 0.4f * rng.uniform()));
  const int64_t n = rows * cols / 2;
  for (int64_t i = 0; i < n; i += 2) {
    const uint64_t r = rng.next();
    uint8_t q[4];
    for (int j = 0; j < 4; ++j) q[j] = uint8_t(1 + ((((r >> (16 * j)) & 0xffff) * 15) >> 16));
    codes[i] = uint8_t(q[0] | (q[1] << 4));
    if (i + 1 < n) codes[i + 1] = uint8_t(q[2] | (q[3] << 4));
  }
}

void gen_q8(Rng& rng, int64_t rows, int64_t cols, float std, int8_t* codes, uint16_t* scales) {
  for (int64_t g = 0; g < rows * cols / 32; ++g)
    scales[g] = f32_to_f16(std / kQ8CodeStd * (0.8f + 0.4f * rng.uniform()));
  for (int64_t i = 0; i < rows * cols; i += 4) {
    const uint64_t r = rng.next();
    for (int64_t j = 0; j < 4 && i + j < rows * cols; ++j)
      codes[i + j] = int8_t(int((((r >> (16 * j)) & 0xffff) * 255) >> 16) - 127);
  }
}

// Our group-32 rows as GGML blocks: Q4_0 {d, 16 code bytes} or Q8_0 {d, 32 codes}.
std::vector<uint8_t> to_blocks(bool q4, int64_t rows, int64_t cols, const uint8_t* codes,
                               const uint16_t* scales) {
  const int64_t nb = rows * cols / 32, cb = q4 ? 16 : 32;
  std::vector<uint8_t> out(size_t(nb * (2 + cb)));
  for (int64_t b = 0; b < nb; ++b) {
    std::memcpy(&out[size_t(b * (2 + cb))], &scales[b], 2);
    std::memcpy(&out[size_t(b * (2 + cb) + 2)], codes + b * cb, size_t(cb));
  }
  return out;
}

struct Task {
  size_t tensor = 0;  // index into the packed tensor list; SIZE_MAX for an expert
  int64_t row0 = 0, rows = 0;
  int layer = -1, expert = -1;
};

class SynthJob {
 public:
  SynthJob(const SynthOptions& o, const ModelConfig& c)
      : o_(o), c_(c), ids_(non_expert_weights(c)) {
    for (int l : moe_layers(c)) {
      std::vector<float> s =
          zipf_router_scales(c.n_experts, c.n_experts_per_tok, o.skew, splitmix(o.seed ^ l));
      // Popular experts differ per layer.
      Rng rng(splitmix(o.seed * 31 + l));
      for (size_t i = s.size(); i > 1; --i) std::swap(s[i - 1], s[rng.next() % i]);
      router_scale_[l] = std::move(s);
    }
  }

  std::vector<PackedTensorEntry> entries() const {
    std::vector<PackedTensorEntry> out;
    for (const WeightId& id : ids_) {
      const WeightShape s = weight_shape(c_, id);
      const WeightClass k = weight_class(id.role);
      TensorFormat f{DType::kQ8, 32, false};
      if (k == WeightClass::kNorm || k == WeightClass::kRouter) f = {DType::kF32, 0, false};
      out.push_back({canonical_name(id), f, s.rows, s.cols});
    }
    return out;
  }

  void declare_gguf(GgufWriter& g) {
    write_gguf_metadata(g, c_, "coldstream synth " + o_.shape, synth_vocab(c_));
    g.set_u32("general.file_type", 2);  // mostly Q4_0
    for (size_t i = 0; i < ids_.size(); ++i) {
      const WeightId& id = ids_[i];
      const WeightShape s = weight_shape(c_, id);
      const bool vec = s.rows == 1;
      const uint32_t type = weight_class(id.role) == WeightClass::kNorm ||
                                    weight_class(id.role) == WeightClass::kRouter
                                ? kGgmlF32
                                : kGgmlQ8_0;
      std::vector<int64_t> dims = vec ? std::vector<int64_t>{s.cols} : std::vector{s.cols, s.rows};
      gguf_index_[i] = g.add_tensor(gguf_tensor_name(id), type, dims);
    }
    const int64_t H = c_.hidden_size, I = c_.moe_intermediate_size, E = c_.n_experts;
    for (int l : moe_layers(c_)) {
      expert_index_[l] = {
          g.add_tensor(gguf_tensor_name({WeightRole::kExpertGate, l}), kGgmlQ4_0, {H, I, E}),
          g.add_tensor(gguf_tensor_name({WeightRole::kExpertUp, l}), kGgmlQ4_0, {H, I, E}),
          g.add_tensor(gguf_tensor_name({WeightRole::kExpertDown, l}), kGgmlQ4_0, {I, H, E})};
    }
  }

  std::vector<Task> tasks(const std::vector<PackedTensorEntry>& t) const {
    std::vector<Task> out;
    for (int l : moe_layers(c_))
      for (int e = 0; e < c_.n_experts; ++e) out.push_back({SIZE_MAX, 0, 0, l, e});
    for (size_t i = 0; i < t.size(); ++i)
      for (int64_t r = 0; r < t[i].rows; r += 2048)
        out.push_back({i, r, std::min<int64_t>(2048, t[i].rows - r)});
    return out;
  }

  // Generates one task's weights and writes them to both files; returns bytes written.
  uint64_t run(const Task& t, PackedWriter& pw, GgufWriter* gw) {
    Rng rng(
        splitmix(o_.seed ^ splitmix(t.tensor * 1000003ull + uint64_t(t.row0) * 7919ull +
                                    uint64_t(t.layer + 1) * 104729ull + uint64_t(t.expert + 1))));
    if (t.tensor == SIZE_MAX) return run_expert(t, rng, pw, gw);
    const PackedTensorEntry& e = pw.tensors()[t.tensor];
    const WeightId& id = ids_[t.tensor];
    const int64_t n = t.rows, C = e.cols;
    if (e.format.dtype == DType::kF32) {
      std::vector<float> v(size_t(n * C), 1.0f);  // norms: ones
      if (id.role == WeightRole::kRouter)
        for (int64_t r = 0; r < n; ++r)
          for (int64_t cidx = 0; cidx < C; ++cidx)
            v[size_t(r * C + cidx)] =
                rng.normal() / std::sqrt(float(C)) * router_scale_.at(id.layer)[size_t(t.row0 + r)];
      pw.write_rows(t.tensor, t.row0, n, v.data(), nullptr, nullptr);
      if (gw) gw->write(gguf_index_.at(t.tensor), uint64_t(t.row0 * C) * 4, v.data(), v.size() * 4);
      return v.size() * 4 * (gw ? 2 : 1);
    }
    // Q8 group 32: embeddings with unit-variance entries, projections with unit-variance outputs.
    const float std = id.role == WeightRole::kEmbed ? 1.0f : 1.0f / std::sqrt(float(C));
    std::vector<int8_t> codes(size_t(n * C));
    std::vector<uint16_t> scales(size_t(n * C / 32));
    gen_q8(rng, n, C, std, codes.data(), scales.data());
    pw.write_rows(t.tensor, t.row0, n, codes.data(), scales.data(), nullptr);
    if (!gw) return codes.size() + scales.size() * 2;
    const std::vector<uint8_t> blocks =
        to_blocks(false, n, C, reinterpret_cast<const uint8_t*>(codes.data()), scales.data());
    const uint64_t row_bytes = uint64_t(C / 32) * 34;
    const bool permute = gguf_qk_row(c_, id.role, 1) != 1;
    for (int64_t r = 0; r < n && permute; ++r)
      gw->write(gguf_index_.at(t.tensor),
                uint64_t(gguf_qk_row(c_, id.role, t.row0 + r)) * row_bytes,
                &blocks[size_t(r * row_bytes)], row_bytes);
    if (!permute)
      gw->write(gguf_index_.at(t.tensor), uint64_t(t.row0) * row_bytes, blocks.data(),
                blocks.size());
    return codes.size() + scales.size() * 2 + blocks.size();
  }

 private:
  uint64_t run_expert(const Task& t, Rng& rng, PackedWriter& pw, GgufWriter* gw) {
    const ExpertLayout& L = pw.expert_layout();
    std::vector<uint8_t> blob(L.bytes, 0);
    const MatLayout* mats[3] = {&L.gate, &L.up, &L.down};
    uint64_t bytes = blob.size();
    for (int i = 0; i < 3; ++i) {
      const MatLayout& m = *mats[i];
      uint8_t* codes = blob.data() + m.data_offset;
      uint16_t* scales = reinterpret_cast<uint16_t*>(blob.data() + m.scales_offset);
      gen_q4(rng, m.rows, m.cols, 1.0f / std::sqrt(float(m.cols)), codes, scales);
      if (!gw) continue;
      const std::vector<uint8_t> blocks = to_blocks(true, m.rows, m.cols, codes, scales);
      gw->write(expert_index_.at(t.layer)[i], uint64_t(t.expert) * blocks.size(), blocks.data(),
                blocks.size());
      bytes += blocks.size();
    }
    pw.write_expert(t.layer, t.expert, blob.data());
    return bytes;
  }

  const SynthOptions& o_;
  const ModelConfig& c_;
  std::vector<WeightId> ids_;
  std::map<int, std::vector<float>> router_scale_;
  std::map<size_t, size_t> gguf_index_;
  std::map<int, std::array<size_t, 3>> expert_index_;
};

}  // namespace

std::vector<float> zipf_router_scales(int n_experts, int k, double skew, uint64_t seed) {
  std::vector<float> s(static_cast<size_t>(n_experts), 1.0f);
  if (skew <= 0) return s;
  // Target share of selections per expert, (rank+1)^-skew, as a per-token selection
  // probability k * share, capped below 1.
  std::vector<double> target(static_cast<size_t>(n_experts));
  double sum = 0;
  for (int e = 0; e < n_experts; ++e) sum += target[size_t(e)] = std::pow(e + 1.0, -skew);
  for (double& t : target) t = std::min(0.95, k * t / sum);
  // Router logits of a random hidden state are about s_e * z_e with z_e ~ N(0, 1): simulate and
  // adjust each scale towards its target selection rate.
  Rng rng(seed);
  const int samples = 4000;
  std::vector<float> logit(static_cast<size_t>(n_experts));
  std::vector<int> order(static_cast<size_t>(n_experts));
  for (int iter = 0; iter < 40; ++iter) {
    std::vector<int> hits(size_t(n_experts), 0);
    for (int t = 0; t < samples; ++t) {
      for (int e = 0; e < n_experts; ++e) logit[size_t(e)] = s[size_t(e)] * rng.normal();
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [&](int a, int b) { return logit[size_t(a)] > logit[size_t(b)]; });
      for (int j = 0; j < k; ++j) ++hits[size_t(order[size_t(j)])];
    }
    for (int e = 0; e < n_experts; ++e) {
      const double got = std::max(1.0, double(hits[size_t(e)])) / samples;
      s[size_t(e)] *= float(std::clamp(std::pow(target[size_t(e)] / got, 0.5), 0.5, 2.0));
    }
  }
  const float mean = std::accumulate(s.begin(), s.end(), 0.0f) / float(n_experts);
  for (float& x : s) x /= mean;
  return s;
}

SynthResult write_synth(const SynthOptions& o) {
  SynthResult result;
  result.config = synth_shape(o.shape, o.layers);
  const ModelConfig& c = result.config;
  if (!(o.skew >= 0 && o.skew <= 10))
    fail(ErrorKind::kInvalidArgument, "--skew: {} is outside 0..10", o.skew);
  SynthJob job(o, c);
  PackedHeaderInfo info;
  info.config = c;
  info.tokenizer = synth_vocab_blob(synth_vocab(c));
  info.provenance = {{"tool", "coldstream synth 0.1.0"},
                     {"shape", o.shape},
                     {"layers", c.n_layers},
                     {"skew", o.skew},
                     {"seed", o.seed}};
  OutputFile out(o.out, o.force, o.pwrite);
  PackedWriter pw(out, std::move(info), job.entries(), {DType::kQ4, 32, false});
  std::unique_ptr<OutputFile> gout;
  std::unique_ptr<GgufWriter> gw;
  if (!o.gguf.empty()) {
    gout = std::make_unique<OutputFile>(o.gguf, o.force, o.pwrite);
    gw = std::make_unique<GgufWriter>(*gout);
    job.declare_gguf(*gw);
    gw->layout();
  }
  const uint64_t total = pw.file_bytes() + (gw ? gw->file_bytes() : 0);
  const std::vector<Task> tasks = job.tasks(pw.tensors());
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  uint64_t done = 0;
  std::exception_ptr error;
  auto work = [&] {
    try {
      for (size_t i = next++; i < tasks.size() && !stop; i = next++) {
        const uint64_t n = job.run(tasks[i], pw, gw.get());
        std::lock_guard<std::mutex> lock(mu);
        done += n;
        if (o.progress) o.progress(std::min(done, total), total);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!error) error = std::current_exception();
      stop = true;
    }
  };
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const size_t n_threads = std::min<size_t>(tasks.size(), o.threads > 0 ? size_t(o.threads) : hw);
  std::vector<std::thread> pool;
  for (size_t t = 1; t < n_threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  if (error) std::rethrow_exception(error);
  pw.finish();
  result.bytes = pw.file_bytes();
  if (gw) {
    gw->finish();
    result.gguf_bytes = gw->file_bytes();
  }
  return result;
}

}  // namespace cs
