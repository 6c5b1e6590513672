#include "runtime/engine/offload_calibration.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "common/error.h"
#include "common/stats.h"
#include "offload/copy_engine.h"

namespace cs {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Token t routed to experts 0..k-1 with equal weights: each of the k experts sees every token.
struct Batch {
  std::vector<float> x, w;
  std::vector<int32_t> ids;
  Batch(int T, int H, int k) : x(size_t(T) * size_t(H)), w(size_t(T) * size_t(k), 1.0f / k) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    for (float& v : x) v = d(rng);
    for (int t = 0; t < T; ++t)
      for (int j = 0; j < k; ++j) ids.push_back(j);
  }
};

}  // namespace

size_t calibration_scratch_bytes(int hidden, int k, int max_tokens) {
  const int T = calibration_token_counts(max_tokens).back();
  return size_t(T) * (2 * size_t(hidden) + 2 * size_t(k)) * 4;
}

std::vector<int> calibration_token_counts(int max_tokens) {
  std::vector<int> out;
  for (int t : {1, 4, 16, 64, 256})
    if (t <= std::max(1, max_tokens)) out.push_back(t);
  return out;
}

CostParams calibrate_offload(const CalibrationInputs& in, std::string* report) {
  const int H = in.hidden, K = in.k;
  if (!in.gpu || !in.cpu || !in.copies || int(in.host_blobs.size()) < K || !in.gpu_slots ||
      !in.gpu_table || !in.gpu_scratch)
    fail(ErrorKind::kInternal, "offload calibration: incomplete inputs");
  CostParams p = in.defaults;
  p.expert_bytes = in.slot_bytes;
  auto note = [&](const std::string& s) {
    if (report) *report += s + "\n";
  };
  const size_t n_blobs = in.host_blobs.size();

  // Copy rate: k blobs at a time into k GPU slots; the best of 4 rounds after a warm-up.
  {
    std::vector<double> t;
    for (int r = 0; r < 5; ++r) {
      const auto t0 = Clock::now();
      uint64_t last = 0;
      for (int j = 0; j < K; ++j)
        last = in.copies->copy(in.gpu_slots + uint64_t(j) * in.slot_bytes,
                               in.host_blobs[(size_t(r) * size_t(K) + size_t(j)) % n_blobs],
                               in.slot_bytes);
      in.copies->wait(last);
      if (r > 0) t.push_back(since(t0));
    }
    const double best = *std::min_element(t.begin(), t.end());
    p.copy_rate = double(K) * double(in.slot_bytes) / std::max(best, 1e-9);
    note(fmt::format("copy: {} blobs of {:.2f} MB in {:.3f} ms: {:.1f} GB/s", K,
                     double(in.slot_bytes) / 1e6, best * 1e3, p.copy_rate / 1e9));
  }

  // CPU experts at each token count: k experts from host blobs that rotate so that each round
  // reads weights no cache holds (as in decode), per-expert time = round / k.
  std::vector<ExpertWeights> table(size_t(in.n_experts));
  const std::vector<int> counts = calibration_token_counts(in.max_tokens);
  size_t next_blob = 0;
  p.cpu.clear();
  for (int T : counts) {
    Batch b(T, H, K);
    std::vector<float> out(size_t(T) * size_t(H));
    std::vector<double> t;
    const int rounds = T >= 64 ? 3 : 6;
    for (int r = 0; r < rounds; ++r) {
      for (int j = 0; j < K; ++j)
        table[size_t(j)] = expert_views(in.layout, in.host_blobs[next_blob++ % n_blobs]);
      MoeArgs a;
      a.x = b.x.data();
      a.T = T;
      a.hidden = H;
      a.ids = b.ids.data();
      a.weights = b.w.data();
      a.k = K;
      a.table = table.data();
      a.n_experts = in.n_experts;
      a.dtype = in.dtype;
      a.inter = in.inter;
      a.out = out.data();
      const auto t0 = Clock::now();
      in.cpu->moe(a);
      if (r > 0) t.push_back(since(t0) / K);
    }
    p.cpu.push_back({T, median(t)});
  }
  p.dram_rate = double(in.slot_bytes) / std::max(p.cpu.front().seconds, 1e-9);
  note(
      fmt::format("CPU expert (seconds per expert by tokens): [{}], {:.1f} GB/s of weights at 1 "
                  "token",
                  format_token_costs(p.cpu), p.dram_rate / 1e9));

  // GPU experts: the k blobs just copied to the slots, same token counts.
  std::vector<ExpertWeights> gtable(size_t(in.n_experts));
  for (int j = 0; j < K; ++j)
    gtable[size_t(j)] = expert_views(in.layout, in.gpu_slots + uint64_t(j) * in.slot_bytes);
  in.gpu->upload(in.gpu_table, gtable.data(), gtable.size() * sizeof(ExpertWeights));
  p.gpu.clear();
  for (int T : counts) {
    Batch b(T, H, K);
    float* x = in.gpu_scratch;
    float* out = x + size_t(T) * size_t(H);
    auto* ids = reinterpret_cast<int32_t*>(out + size_t(T) * size_t(H));
    float* w = reinterpret_cast<float*>(ids + size_t(T) * size_t(K));
    in.gpu->upload(x, b.x.data(), b.x.size() * 4);
    in.gpu->upload(ids, b.ids.data(), b.ids.size() * 4);
    in.gpu->upload(w, b.w.data(), b.w.size() * 4);
    MoeArgs a;
    a.x = x;
    a.T = T;
    a.hidden = H;
    a.ids = ids;
    a.weights = w;
    a.k = K;
    a.table = in.gpu_table;
    a.n_experts = in.n_experts;
    a.dtype = in.dtype;
    a.inter = in.inter;
    a.out = out;
    std::vector<double> t;
    for (int r = 0; r < 6; ++r) {
      in.gpu->synchronize();
      const auto t0 = Clock::now();
      in.gpu->moe(a);
      in.gpu->synchronize();
      if (r > 0) t.push_back(since(t0) / K);
    }
    p.gpu.push_back({T, median(t)});
  }
  p.gpu_rate = double(in.slot_bytes) / std::max(p.gpu.front().seconds, 1e-9);
  note(fmt::format("GPU expert (seconds per expert by tokens, launch and sync included): [{}]",
                   format_token_costs(p.gpu)));

  // Fixed cost of a CPU pass at one token: hidden state down, partial result up, one add.
  {
    std::vector<float> h(static_cast<size_t>(H));
    float* x = in.gpu_scratch;
    float* y = x + size_t(H);
    std::vector<double> t;
    for (int r = 0; r < 8; ++r) {
      in.gpu->synchronize();
      const auto t0 = Clock::now();
      in.gpu->download(h.data(), x, h.size() * 4);
      in.gpu->upload(y, h.data(), h.size() * 4);
      in.gpu->add(x, y, H);
      in.gpu->synchronize();
      if (r > 0) t.push_back(since(t0));
    }
    p.cpu_fixed = median(t);
    p.layer_fixed = 2 * p.cpu_fixed;  // two small downloads (routing) plus launches
    note(fmt::format("CPU pass fixed cost: {:.1f} us", p.cpu_fixed * 1e6));
  }
  return p;
}

}  // namespace cs
