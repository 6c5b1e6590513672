#include "runtime/model/memory_model.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "kernels/quant.h"

namespace cs {
namespace {

// Owns every array of an in-memory model.
struct Arena {
  std::vector<std::unique_ptr<uint8_t[]>> blocks;
  uint8_t* take(size_t bytes) {
    blocks.push_back(std::make_unique_for_overwrite<uint8_t[]>(std::max<size_t>(bytes, 16)));
    return blocks.back().get();
  }
};

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
float uniform(uint64_t& s) {  // [-1, 1)
  return float(splitmix(s) >> 40) * 0x1p-23f - 1.0f;
}

// A [rows][cols] matrix of `dt` from float rows produced by `row(r, out)`.
template <typename RowFn>
MatView make_matrix(Arena& a, DType dt, int64_t rows, int64_t cols, int group, bool asym,
                    RowFn row) {
  MatView v;
  v.dtype = dt;
  v.rows = rows;
  v.cols = cols;
  const bool quant = dt == DType::kQ4 || dt == DType::kQ8;
  if (quant) {
    if (cols % group != 0 || (dt == DType::kQ4 && cols % 32 != 0))
      fail(ErrorKind::kInvalidArgument, "{} needs columns divisible by {} (got {})", dtype_name(dt),
           dt == DType::kQ4 ? std::max(group, 32) : group, cols);
    v.group = group;
  }
  uint8_t* data = a.take(dtype_data_bytes(dt, rows, cols));
  uint16_t* scales =
      quant ? reinterpret_cast<uint16_t*>(a.take(size_t(rows) * (cols / group) * 2)) : nullptr;
  uint16_t* mins = quant && asym && dt == DType::kQ4
                       ? reinterpret_cast<uint16_t*>(a.take(size_t(rows) * (cols / group) * 2))
                       : nullptr;
  std::vector<float> f(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    row(r, f.data());
    const size_t g = size_t(r) * size_t(quant ? cols / group : 0);
    switch (dt) {
      case DType::kF32:
        std::memcpy(data + size_t(r) * cols * 4, f.data(), size_t(cols) * 4);
        break;
      case DType::kF16:
      case DType::kBF16: {
        uint16_t* o = reinterpret_cast<uint16_t*>(data) + size_t(r) * cols;
        for (int64_t c = 0; c < cols; ++c)
          o[c] = dt == DType::kF16 ? f32_to_f16(f[c]) : f32_to_bf16(f[c]);
        break;
      }
      case DType::kQ8:
        quantize_row_q8(f, group, reinterpret_cast<int8_t*>(data) + size_t(r) * cols, scales + g);
        break;
      case DType::kQ4:
        quantize_row_q4(f, group, mins != nullptr, data + size_t(r) * cols / 2, scales + g,
                        mins ? mins + g : nullptr);
        break;
    }
  }
  v.data = data;
  v.scales = scales;
  v.mins = mins;
  return v;
}

MatView convert(Arena& a, const MatView& src, DType dt, int group, bool asym) {
  if (src.empty()) return src;
  return make_matrix(a, dt, src.rows, src.cols, group, asym,
                     [&](int64_t r, float* out) { dequantize_row(src, r, out); });
}

// Random Q4 codes 1..15 (zero mean after the -8 offset) and scales d with d * 4.32 ~ 1/sqrt(C):
// each weight has a standard deviation near 1/sqrt(C), so W x keeps the size of x.
MatView random_q4(Arena& a, int64_t rows, int64_t cols, int group, uint64_t seed) {
  MatView v;
  v.dtype = DType::kQ4;
  v.rows = rows;
  v.cols = cols;
  v.group = group;
  uint8_t* data = a.take(size_t(rows) * cols / 2);
  uint16_t* scales = reinterpret_cast<uint16_t*>(a.take(size_t(rows) * (cols / group) * 2));
  uint64_t s = seed;
  // One random byte per code: byte % 15 is uniform over 0..14 up to 1/256.
  for (size_t i = 0; i < size_t(rows) * cols / 2; i += 4) {
    uint64_t r = splitmix(s);
    for (size_t j = 0; j < 4 && i + j < size_t(rows) * cols / 2; ++j, r >>= 16)
      data[i + j] = uint8_t(1 + (r & 0xff) % 15) | uint8_t((1 + ((r >> 8) & 0xff) % 15) << 4);
  }
  const float d = 1.0f / (4.32f * std::sqrt(float(cols)));
  for (size_t i = 0; i < size_t(rows) * (cols / group); ++i)
    scales[i] = f32_to_f16(d * (0.75f + 0.25f * uniform(s)));
  v.data = data;
  v.scales = scales;
  return v;
}

MatView random_matrix(Arena& a, DType dt, int64_t rows, int64_t cols, float stddev,
                      const MemoryModelOptions& o, uint64_t seed) {
  if (dt == DType::kQ4 && !o.asymmetric && std::fabs(stddev * std::sqrt(float(cols)) - 1) < 1e-3f)
    return random_q4(a, rows, cols, o.group, seed);
  uint64_t s = seed;
  const float amp = stddev * std::sqrt(3.0f);  // uniform [-amp, amp) has this deviation
  return make_matrix(a, dt, rows, cols, o.group, o.asymmetric, [&](int64_t, float* out) {
    for (int64_t c = 0; c < cols; ++c) out[c] = amp * uniform(s);
  });
}

MatView ones(Arena& a, int64_t n) {
  MatView v;
  v.dtype = DType::kF32;
  v.rows = 1;
  v.cols = n;
  float* p = reinterpret_cast<float*>(a.take(size_t(n) * 4));
  std::fill(p, p + n, 1.0f);
  v.data = p;
  return v;
}

template <typename Fn>
void parallel_for(int n, int threads, Fn fn) {
  if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  std::atomic<int> next{0};
  for (int t = 0; t < std::min(threads, n); ++t)
    pool.emplace_back([&] {
      for (int i; (i = next.fetch_add(1)) < n;) fn(i);
    });
  for (auto& t : pool) t.join();
}

}  // namespace

std::unique_ptr<Model> quantize_model(const Model& src, const MemoryModelOptions& o) {
  auto arena = std::make_shared<Arena>();
  Arena& a = *arena;
  const ModelConfig& c = src.config();
  const ModelWeights& sw = src.weights();
  ModelWeights w;
  w.embed = convert(a, sw.embed, o.dense, o.group, o.asymmetric);
  w.final_norm = sw.final_norm;
  w.lm_head = sw.lm_head.data == sw.embed.data
                  ? w.embed
                  : convert(a, sw.lm_head, o.dense, o.group, o.asymmetric);
  std::vector<std::vector<ExpertWeights>> experts(static_cast<size_t>(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& s = sw.layers[l];
    LayerWeights d = s;
    for (auto [dst, from] :
         {std::pair{&d.wq, &s.wq}, {&d.wk, &s.wk}, {&d.wv, &s.wv}, {&d.wo, &s.wo}})
      *dst = convert(a, *from, o.dense, o.group, o.asymmetric);
    d.dense = {convert(a, s.dense.gate, o.experts, o.group, o.asymmetric),
               convert(a, s.dense.up, o.experts, o.group, o.asymmetric),
               convert(a, s.dense.down, o.experts, o.group, o.asymmetric)};
    w.layers.push_back(d);
    if (!c.is_moe_layer(l)) continue;
    for (int e = 0; e < c.n_experts; ++e) {
      const ExpertWeights x = src.experts().host_view(l, e);
      experts[l].push_back({convert(a, x.gate, o.experts, o.group, o.asymmetric),
                            convert(a, x.up, o.experts, o.group, o.asymmetric),
                            convert(a, x.down, o.experts, o.group, o.asymmetric)});
    }
  }
  // The source's norms and routers stay where they are: keep the source model's memory alive
  // is the caller's job (the quantized model references them).
  return Model::from_weights(c, std::move(w), std::move(experts), arena);
}

std::unique_ptr<Model> random_model(const ModelConfig& c, const MemoryModelOptions& o) {
  auto arena = std::make_shared<Arena>();
  const int64_t H = c.hidden_size, V = c.vocab_size, D = c.head_dim;
  const float inv_h = 1.0f / std::sqrt(float(H));
  ModelWeights w;
  std::vector<std::vector<ExpertWeights>> experts(static_cast<size_t>(c.n_layers));
  w.layers.resize(size_t(c.n_layers));
  // One arena per layer so layers build in parallel.
  std::vector<Arena> layer_arenas(size_t(c.n_layers) + 1);
  Arena& a = layer_arenas.back();
  w.embed = random_matrix(a, o.dense, V, H, 1.0f, o, o.seed * 1000003 + 1);
  w.final_norm = ones(a, H);
  w.lm_head = c.tie_word_embeddings
                  ? w.embed
                  : random_matrix(a, o.dense, V, H, inv_h, o, o.seed * 1000003 + 2);
  parallel_for(c.n_layers, o.threads, [&](int l) {
    Arena& la = layer_arenas[l];
    const uint64_t base = (o.seed * 1000003 + uint64_t(l) + 3) * 0x100000;
    LayerWeights& L = w.layers[l];
    L.attn_norm = ones(la, H);
    L.ffn_norm = ones(la, H);
    L.wq = random_matrix(la, o.dense, c.q_dim(), H, inv_h, o, base + 1);
    L.wk = random_matrix(la, o.dense, c.kv_dim(), H, inv_h, o, base + 2);
    L.wv = random_matrix(la, o.dense, c.kv_dim(), H, inv_h, o, base + 3);
    L.wo =
        random_matrix(la, o.dense, H, c.q_dim(), 1.0f / std::sqrt(float(c.q_dim())), o, base + 4);
    if (c.qk_norm) {
      L.q_norm = ones(la, D);
      L.k_norm = ones(la, D);
    }
    if (!c.is_moe_layer(l)) {
      const int64_t I = c.intermediate_size;
      L.dense = {random_matrix(la, o.experts, I, H, inv_h, o, base + 5),
                 random_matrix(la, o.experts, I, H, inv_h, o, base + 6),
                 random_matrix(la, o.experts, H, I, 1.0f / std::sqrt(float(I)), o, base + 7)};
      return;
    }
    L.router = random_matrix(la, DType::kF32, c.n_experts, H, o.router_scale * inv_h, o, base + 8);
    const int64_t I = c.moe_intermediate_size;
    for (int e = 0; e < c.n_experts; ++e) {
      const uint64_t eb = base + 16 + uint64_t(e) * 4;
      experts[l].push_back(
          {random_matrix(la, o.experts, I, H, inv_h, o, eb),
           random_matrix(la, o.experts, I, H, inv_h, o, eb + 1),
           random_matrix(la, o.experts, H, I, 1.0f / std::sqrt(float(I)), o, eb + 2)});
    }
  });
  auto owner = std::make_shared<std::vector<Arena>>(std::move(layer_arenas));
  return Model::from_weights(c, std::move(w), std::move(experts), owner);
}

ModelBytes model_bytes(const Model& m) {
  auto bytes = [](const MatView& v) -> size_t {
    if (v.empty()) return 0;
    const size_t groups = v.group > 0 ? size_t(v.rows) * size_t(v.cols / v.group) : 0;
    return dtype_data_bytes(v.dtype, v.rows, v.cols) + (v.scales ? groups * 2 : 0) +
           (v.mins ? groups * 2 : 0);
  };
  const ModelConfig& c = m.config();
  const ModelWeights& w = m.weights();
  ModelBytes b;
  b.dense = bytes(w.embed) + bytes(w.final_norm) +
            (w.lm_head.data == w.embed.data ? 0 : bytes(w.lm_head));
  for (const LayerWeights& L : w.layers)
    for (const MatView* v : {&L.attn_norm, &L.wq, &L.wk, &L.wv, &L.wo, &L.q_norm, &L.k_norm,
                             &L.ffn_norm, &L.router, &L.dense.gate, &L.dense.up, &L.dense.down})
      b.dense += bytes(*v);
  for (int l = 0; l < c.n_layers; ++l) {
    if (!c.is_moe_layer(l)) continue;
    for (int e = 0; e < c.n_experts; ++e) {
      const ExpertWeights x = m.experts().host_view(l, e);
      const size_t eb = bytes(x.gate) + bytes(x.up) + bytes(x.down);
      b.experts += eb;
      b.per_expert = eb;
    }
  }
  return b;
}

}  // namespace cs
