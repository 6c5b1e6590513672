#include "runtime/format/converter.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "common/error.h"
#include "runtime/format/packed_writer.h"

namespace cs {
namespace {

// Serialises progress reports from worker threads.
class ProgressMeter {
 public:
  ProgressMeter(const ConvertOptions& o, uint64_t total) : o_(o), total_(total) {}
  void add(uint64_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    done_ += bytes;
    if (o_.progress) o_.progress(std::min(done_, total_), total_);
  }

 private:
  const ConvertOptions& o_;
  std::mutex mu_;
  uint64_t done_ = 0, total_;
};

void write_tensor(const Checkpoint& in, const WeightId& id, size_t index, PackedWriter& w,
                  ProgressMeter& meter) {
  const PackedTensorEntry& t = w.tensors()[index];
  auto src = in.open(id);
  const uint64_t row_bytes = t.data_bytes() / uint64_t(t.rows);
  const uint64_t srow = t.scale_bytes() / uint64_t(t.rows);
  const int64_t chunk = std::max<int64_t>(1, int64_t((16u << 20) / (row_bytes + 2 * srow + 1)));
  std::vector<uint8_t> data;
  std::vector<uint16_t> scales, mins;
  for (int64_t r0 = 0; r0 < t.rows; r0 += chunk) {
    const int64_t n = std::min(chunk, t.rows - r0);
    data.resize(size_t(n * row_bytes));
    scales.resize(size_t(n * srow / 2));
    mins.resize(t.format.asymmetric ? scales.size() : 0);
    encode_rows(*src, t.format, r0, n, data.data(), scales.data(), mins.data());
    w.write_rows(index, r0, n, data.data(), scales.data(), mins.data());
    meter.add(n * (row_bytes + srow * (t.format.asymmetric ? 2 : 1)));
  }
}

void encode_expert(const Checkpoint& in, int layer, int expert, const ExpertLayout& L,
                   const TensorFormat& f, uint8_t* blob) {
  const MatLayout* mats[3] = {&L.gate, &L.up, &L.down};
  const WeightRole roles[3] = {WeightRole::kExpertGate, WeightRole::kExpertUp,
                               WeightRole::kExpertDown};
  for (int i = 0; i < 3; ++i) {
    auto src = in.open({roles[i], layer, expert});
    const MatLayout& m = *mats[i];
    encode_rows(*src, f, 0, m.rows, blob + m.data_offset,
                reinterpret_cast<uint16_t*>(blob + m.scales_offset),
                reinterpret_cast<uint16_t*>(blob + m.mins_offset));
  }
}

void write_experts(const Checkpoint& in, const ConvertOptions& o, const TensorFormat& f,
                   PackedWriter& w, ProgressMeter& meter) {
  const ModelConfig& c = in.config();
  const std::vector<int> layers = moe_layers(c);
  const size_t total = layers.size() * size_t(c.n_experts);
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const size_t n_threads = std::min<size_t>(total, o.threads > 0 ? size_t(o.threads) : hw);
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::exception_ptr error;
  std::mutex error_mu;
  auto work = [&] {
    std::vector<uint8_t> blob(w.expert_layout().bytes, 0);
    try {
      for (size_t i = next++; i < total && !stop; i = next++) {
        const int layer = layers[i / size_t(c.n_experts)], e = int(i % size_t(c.n_experts));
        encode_expert(in, layer, e, w.expert_layout(), f, blob.data());
        w.write_expert(layer, e, blob.data());
        meter.add(blob.size());
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu);
      if (!error) error = std::current_exception();
      stop = true;
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < n_threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace

TensorFormat choose_format(const QuantPolicy& policy, WeightClass c,
                           const std::optional<TensorFormat>& native) {
  const TensorFormat& want = policy.of(c);
  if (policy.keep_native && native && native->dtype == want.dtype && c != WeightClass::kNorm &&
      c != WeightClass::kRouter)
    return *native;
  return want;
}

ConvertResult convert_to_packed(const Checkpoint& in, const std::string& out,
                                const ConvertOptions& o) {
  o.policy.validate();
  const ModelConfig& c = in.config();
  auto note = [&](const std::string& what, const std::string& msg) {
    if (o.note && !msg.empty()) o.note(what + ": " + msg);
  };
  std::vector<WeightId> ids = non_expert_weights(c);
  std::vector<PackedTensorEntry> entries;
  for (const WeightId& id : ids) {
    PackedTensorEntry t;
    t.name = canonical_name(id);
    auto src = in.open(id);
    t.rows = src->rows();
    t.cols = src->cols();
    std::string msg;
    t.format =
        fit_format(choose_format(o.policy, weight_class(id.role), src->native()), t.cols, &msg);
    note(t.name, msg);
    entries.push_back(std::move(t));
  }
  ConvertResult result;
  const std::vector<int> layers = moe_layers(c);
  if (!layers.empty()) {
    // One format for every blob: the stored 4-bit format of the first expert's matrices when
    // the policy keeps them (asymmetric if any is, the smallest group), so that mixed files
    // (Q4_0 with Q4_1, Q4_K with Q6_K) lose nothing that can be kept.
    std::optional<TensorFormat> native;
    for (WeightRole r : {WeightRole::kExpertGate, WeightRole::kExpertUp, WeightRole::kExpertDown}) {
      const std::optional<TensorFormat> n = in.open({r, layers[0], 0})->native();
      if (!n || n->dtype != DType::kQ4) continue;
      if (!native) native = n;
      native->asymmetric = native->asymmetric || n->asymmetric;
      native->group = std::min(native->group, n->group);
    }
    std::string m1, m2;
    TensorFormat f = choose_format(o.policy, WeightClass::kExperts, native);
    f = fit_format(fit_format(f, c.hidden_size, &m1), c.moe_intermediate_size, &m2);
    note("experts", m1.empty() ? m2 : m1);
    result.expert_format = f;
  }
  PackedHeaderInfo info;
  info.config = c;
  info.tokenizer = in.tokenizer();
  info.chat = in.chat();
  info.provenance = {{"source", in.origin()},
                     {"source_kind", in.kind()},
                     {"policy", o.policy.describe()},
                     {"tool", "coldstream convert 0.1.0"}};
  OutputFile file(out, o.force, o.pwrite);
  PackedWriter w(file, std::move(info), std::move(entries), result.expert_format);
  ProgressMeter meter(o, w.file_bytes());
  for (size_t i = 0; i < ids.size(); ++i) write_tensor(in, ids[i], i, w, meter);
  if (!layers.empty()) write_experts(in, o, result.expert_format, w, meter);
  w.finish();
  result.bytes = w.file_bytes();
  return result;
}

}  // namespace cs
