// The offload executor gives bit-identical logits to the resident executor, whatever the budget,
// slot allocation, policy, predictor, prefill chunking, logits rows or host tier (NVMe reads
// included), on the CPU reference backend with the host-only copy engine; read faults surface as
// errors and never change a result.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <random>

#include "cache/planner.h"
#include "common/error.h"
#include "offload/blob_pack.h"
#include "offload/fault_injection.h"
#include "runtime/engine/offload_locator.h"
#include "runtime/engine/offload_moe_executor.h"
#include "runtime/engine/session.h"
#include "runtime/format/synth.h"
#include "tests/common/fixtures.h"

using namespace cs;

namespace {

struct Outputs {
  std::vector<float> prefill;  // logits of every prompt position
  std::vector<float> decode;   // logits after each of 6 greedy tokens
  std::vector<int32_t> tokens;
};

Outputs run(const Model& m, Backend& b, MoeExecutor* moe, const std::vector<int32_t>& prompt,
            int max_batch, int logits_rows = 0) {
  Outputs o;
  SessionOptions so;
  so.transformer.max_batch = max_batch;
  so.transformer.logits_rows = logits_rows;
  Session s(m, b, so, moe);
  o.prefill = s.eval_all(prompt);
  Session d(m, b, so, moe);
  std::span<const float> logits = d.eval(prompt);
  for (int i = 0; i < 6; ++i) {
    const int32_t t = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    o.tokens.push_back(t);
    logits = d.eval(std::vector<int32_t>{t});
    o.decode.insert(o.decode.end(), logits.begin(), logits.end());
  }
  return o;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

int moe_layer_count(const Model& m) {
  int n = 0;
  for (int l = 0; l < m.config().n_layers; ++l) n += m.config().is_moe_layer(l);
  return n;
}

// The model's experts written as a scratch blob file (what the packed file will hold).
ExpertLocator write_experts(const Model& m, const std::string& path) {
  const ModelConfig& c = m.config();
  std::vector<ExpertLayout> layouts(size_t(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l)
    if (c.is_moe_layer(l)) layouts[size_t(l)] = layout_of(m.experts().host_view(l, 0));
  return write_blob_file(path, c.n_layers, c.n_experts, layouts, [&](int l, int e, void* dst) {
    pack_expert_blob(m.experts().host_view(l, e), layouts[size_t(l)], dst);
  });
}

// Bit-identity holds for the stream path; the hybrid and cpu modes have their own test with a
// measured tolerance (test_offload_hybrid.cpp).
struct Case {
  Case() { cfg.offload.mode = OffloadMode::kStream; }
  std::string name;
  OffloadConfig cfg;
  int slots = 0;
};

OffloadOptions options(const Case& c, const ExpertLocator* loc = nullptr) {
  OffloadOptions o;
  o.config = c.cfg;
  o.gpu_slots = c.slots;
  o.locator = loc;
  o.log = [](const std::string&) {};
  return o;
}

std::vector<Case> cases(const Model& m) {
  const int K = m.config().n_experts_per_tok, n_moe = moe_layer_count(m);
  const int all = n_moe * m.config().n_experts;
  std::vector<Case> out;
  for (int slots : {K, K + 1, all / 2, all})
    for (PolicyKind p : {PolicyKind::kLru, PolicyKind::kLfu, PolicyKind::kRouterFreq})
      for (PredictorKind pk :
           {PredictorKind::kNone, PredictorKind::kLookahead, PredictorKind::kCoactivation}) {
        Case c;
        c.slots = slots;
        c.cfg.cache.policy = p;
        c.cfg.predictor.kind = pk;
        c.cfg.predictor.threshold = 0.01;
        c.name = fmt::format("{} slots, {}, {}", slots, policy_name(p), predictor_name(pk));
        out.push_back(c);
      }
  Case h2;
  h2.slots = K + 2;
  h2.cfg.predictor.horizon = 2;
  h2.cfg.predictor.threshold = 0.0;
  h2.name = "lookahead horizon 2, threshold 0";
  out.push_back(h2);
  Case pl;
  pl.slots = K * n_moe;
  pl.cfg.cache.allocation = SlotAllocation::kPerLayer;
  pl.name = "per-layer slots, k each";
  out.push_back(pl);
  Case pl2 = pl;
  pl2.slots = all;
  pl2.name = "per-layer slots, all";
  out.push_back(pl2);
  return out;
}

void check_model(const std::string& name) {
  auto model = Model::load(test::fixture(name));
  test::Reference ref(name);
  auto backend = make_cpu_reference_backend();
  for (const char* p : {"b", "d"}) {
    const std::vector<int32_t> prompt = ref.ints(fmt::format("prompt.{}", p));
    const Outputs want = run(*model, *backend, nullptr, prompt, 256);
    for (const Case& c : cases(*model))
      for (int max_batch : {256, 3}) {
        CAPTURE(name);
        CAPTURE(p);
        CAPTURE(c.name);
        CAPTURE(max_batch);
        Case cc = c;
        cc.cfg.device.max_batch = max_batch;
        OffloadMoeExecutor ex(*backend, *model, options(cc));
        // Small chunks also compute lm_head a row at a time (a one-row logits buffer).
        const Outputs got = run(*model, *backend, &ex, prompt, max_batch, max_batch == 3 ? 1 : 0);
        CHECK(same_bits(got.prefill, want.prefill));
        CHECK(same_bits(got.decode, want.decode));
        CHECK(got.tokens == want.tokens);
        const OffloadTelemetry& t = ex.telemetry();
        CHECK(t.total.expert_uses == t.total.hits + t.total.waits + t.total.demand + t.total.cpu);
        if (c.slots == moe_layer_count(*model) * model->config().n_experts &&
            c.cfg.cache.allocation == SlotAllocation::kGlobal)
          CHECK(t.total.gpu_evictions == 0);
      }
  }
}

}  // namespace

TEST_CASE("offload: logits identical to resident across budgets and policies (Qwen3-MoE)") {
  check_model("qwen3moe");
}
TEST_CASE("offload: logits identical to resident, dense layer and tied embeddings") {
  check_model("qwen3moe-dense");
}
TEST_CASE("offload: logits identical to resident (Mixtral)") {
  check_model("mixtral");
}

TEST_CASE("offload: the NVMe tier (io_uring reads into a small host cache) changes nothing") {
  auto model = Model::load(test::fixture("qwen3moe"));
  test::Reference ref("qwen3moe");
  auto backend = make_cpu_reference_backend();
  test::TempDir dir;
  const ExpertLocator loc = write_experts(*model, dir.file("experts.bin"));
  const uint64_t blob = loc.max_blob_bytes();
  const int K = model->config().n_experts_per_tok;
  for (const char* p : {"a", "d"}) {
    const std::vector<int32_t> prompt = ref.ints(fmt::format("prompt.{}", p));
    const Outputs want = run(*model, *backend, nullptr, prompt, 256);
    for (int host_slots : {K, K + 3, 100})
      for (PredictorKind pk : {PredictorKind::kNone, PredictorKind::kLookahead}) {
        CAPTURE(p);
        CAPTURE(host_slots);
        CAPTURE(predictor_name(pk));
        Case c;
        c.slots = K + 1;
        c.cfg.memory.host_budget = uint64_t(host_slots) * blob;
        c.cfg.predictor.kind = pk;
        c.cfg.predictor.threshold = 0.0;
        c.cfg.device.max_batch = 4;
        OffloadMoeExecutor ex(*backend, *model, options(c, &loc));
        const Outputs got = run(*model, *backend, &ex, prompt, 4);
        CHECK(same_bits(got.prefill, want.prefill));
        CHECK(same_bits(got.decode, want.decode));
        const OffloadTelemetry& t = ex.telemetry();
        if (host_slots < 24) CHECK(t.total.bytes_nvme_to_host > 0);
        if (host_slots == 100) CHECK(t.total.bytes_nvme_to_host == 0);  // loaded at start-up
      }
  }
}

TEST_CASE(
    "offload: read faults are retried, or surface naming the expert; bad bytes are never used") {
  auto model = Model::load(test::fixture("qwen3moe"));
  test::Reference ref("qwen3moe");
  auto backend = make_cpu_reference_backend();
  test::TempDir dir;
  const ExpertLocator loc = write_experts(*model, dir.file("experts.bin"));
  const std::vector<int32_t> prompt = ref.ints("prompt.c");
  const Outputs want = run(*model, *backend, nullptr, prompt, 256);
  // The first expert the first token routes to in the first layer: read first, on demand.
  ExpertId first;
  {
    Session s(*model, *backend);
    s.transformer().set_routing_observer([&](int layer, int, const int32_t* ids, const float*) {
      if (!first.valid()) first = {layer, ids[0]};
    });
    s.eval(prompt);
  }
  const int K = model->config().n_experts_per_tok;
  Case c;
  c.slots = K + 1;
  c.cfg.memory.host_budget = uint64_t(K + 2) * loc.max_blob_bytes();
  c.cfg.io.retries = 2;
  c.cfg.predictor.kind = PredictorKind::kLookahead;
  c.cfg.predictor.threshold = 0.0;

  SUBCASE("transient errors, corruption, short and slow reads are retried away") {
    auto faults = std::make_shared<ScriptedFaults>();
    for (int l = 0; l < model->config().n_layers; ++l)
      for (int e = 0; e < model->config().n_experts; ++e) {
        const ExpertId id{l, e};
        faults->add(id, FaultKind(e % 4), 1, std::chrono::microseconds(500));
      }
    OffloadOptions o = options(c, &loc);
    o.faults = faults;
    OffloadMoeExecutor ex(*backend, *model, std::move(o));
    const Outputs got = run(*model, *backend, &ex, prompt, 256);
    CHECK(same_bits(got.prefill, want.prefill));
    CHECK(same_bits(got.decode, want.decode));
    CHECK(ex.telemetry().read_retries > 0);
  }
  SUBCASE("a blob corrupt on every attempt fails the step; the next step reads it again") {
    auto faults = std::make_shared<ScriptedFaults>();
    faults->add(first, FaultKind::kCorrupt, 1 + c.cfg.io.retries);  // every attempt of one read
    OffloadOptions o = options(c, &loc);
    o.faults = faults;
    OffloadMoeExecutor ex(*backend, *model, std::move(o));
    SessionOptions so;
    Session s(*model, *backend, so, &ex);
    try {
      s.eval_all(prompt);
      FAIL("a corrupt blob did not fail the step");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kBadFile);
      CHECK(std::string(e.what()).find(
                fmt::format("layer {} expert {}", first.layer, first.expert)) != std::string::npos);
      CHECK(std::string(e.what()).find("checksum mismatch") != std::string::npos);
      CHECK(std::string(e.what()).find(loc.path) == 0);
    }
    // The failed bytes were dropped from both caches: a new session reads the blob again (the
    // fault has run out) and gets the reference logits.
    const Outputs got = run(*model, *backend, &ex, prompt, 256);
    CHECK(same_bits(got.prefill, want.prefill));
    CHECK(same_bits(got.decode, want.decode));
    CHECK(faults->fired(first) == 1 + c.cfg.io.retries);
  }
  SUBCASE("failed prefetches are dropped and counted; the experts are read again on demand") {
    auto faults = std::make_shared<ScriptedFaults>();
    for (int l = 0; l < model->config().n_layers; ++l)
      for (int e = 0; e < model->config().n_experts; ++e)
        faults->add({l, e}, FaultKind::kCorrupt, -1, std::chrono::microseconds(0), true);
    OffloadOptions o = options(c, &loc);
    o.faults = faults;
    OffloadMoeExecutor ex(*backend, *model, std::move(o));
    const Outputs got = run(*model, *backend, &ex, prompt, 256);
    CHECK(same_bits(got.prefill, want.prefill));
    CHECK(same_bits(got.decode, want.decode));
    const OffloadTelemetry& t = ex.telemetry();
    CHECK(t.prefetch_failures > 0);
    CHECK(t.checksum_failures > 0);
    CHECK(t.last_error.find("checksum mismatch") != std::string::npos);
    CHECK(t.total.prefetch_hits == 0);
  }
  SUBCASE("a read error that persists surfaces as an I/O error naming file and offset") {
    auto faults = std::make_shared<ScriptedFaults>();
    faults->add(first, FaultKind::kError, -1);
    OffloadOptions o = options(c, &loc);
    o.faults = faults;
    OffloadMoeExecutor ex(*backend, *model, std::move(o));
    Session s(*model, *backend, SessionOptions{}, &ex);
    const std::string where = fmt::format("offset {}", loc.at(first.layer, first.expert).offset);
    CHECK_THROWS_WITH_AS(s.eval_all(prompt), doctest::Contains(where.c_str()), Error);
  }
}

TEST_CASE("offload: misses computed on the CPU agree with the resident path") {
  auto model = Model::load(test::fixture("qwen3moe"));
  test::Reference ref("qwen3moe");
  auto backend = make_cpu_reference_backend();
  const std::vector<int32_t> prompt = ref.ints("prompt.d");
  const Outputs want = run(*model, *backend, nullptr, prompt, 256);
  test::TempDir dir;
  const ExpertLocator loc = write_experts(*model, dir.file("experts.bin"));
  const int K = model->config().n_experts_per_tok;
  for (bool nvme : {false, true})
    for (PredictorKind pk : {PredictorKind::kNone, PredictorKind::kLookahead}) {
      CAPTURE(nvme);
      CAPTURE(predictor_name(pk));
      Case c;
      c.slots = K;
      c.cfg.offload.mode = OffloadMode::kCpu;
      c.cfg.predictor.kind = pk;  // prefetches still fill GPU slots in the background
      c.cfg.predictor.threshold = 0.0;
      c.cfg.device.max_batch = 5;
      if (nvme) c.cfg.memory.host_budget = uint64_t(K + 1) * loc.max_blob_bytes();
      OffloadMoeExecutor ex(*backend, *model, options(c, nvme ? &loc : nullptr));
      const Outputs got = run(*model, *backend, &ex, prompt, 5);
      const size_t V = size_t(model->config().vocab_size);
      for (size_t r = 0; r < prompt.size(); ++r)
        CHECK(test::max_rel_error(&got.prefill[r * V], &want.prefill[r * V], V) < 1e-5);
      CHECK(got.tokens == want.tokens);
      const OffloadTelemetry& t = ex.telemetry();
      CHECK(t.total.cpu > 0);
      CHECK(t.total.demand == 0);
      if (pk == PredictorKind::kNone) CHECK(t.total.bytes_host_to_gpu == 0);
      if (nvme) CHECK(t.total.bytes_nvme_to_host > 0);
    }
}

TEST_CASE("offload: random configurations agree with the resident path (fuzz)") {
  auto model = Model::load(test::fixture("qwen3moe-dense"));
  test::Reference ref("qwen3moe-dense");
  auto backend = make_cpu_reference_backend();
  test::TempDir dir;
  const ExpertLocator loc = write_experts(*model, dir.file("experts.bin"));
  const int K = model->config().n_experts_per_tok, E = model->config().n_experts;
  const int n_moe = moe_layer_count(*model);
  struct OddOnCpu final : MissPathChooser {
    MissPath choose(const MissInfo& m) override {
      return m.id.expert % 2 ? MissPath::kCpu : MissPath::kStream;
    }
  } chooser;
  std::mt19937 rng(12345);
  const std::vector<int32_t> prompt = ref.ints("prompt.d");
  const Outputs want = run(*model, *backend, nullptr, prompt, 256);
  const size_t V = size_t(model->config().vocab_size);
  for (int iter = 0; iter < 40; ++iter) {
    Case c;
    const bool per_layer = rng() % 3 == 0;
    c.cfg.cache.allocation = per_layer ? SlotAllocation::kPerLayer : SlotAllocation::kGlobal;
    const int lo = per_layer ? K * n_moe : K;
    c.slots = lo + int(rng() % uint32_t(n_moe * E - lo + 1));
    c.cfg.cache.policy = PolicyKind(rng() % 3);
    c.cfg.cache.host_policy = PolicyKind(rng() % 3);
    c.cfg.cache.prefetch_share = (rng() % 5) / 4.0;
    c.cfg.predictor.kind = PredictorKind(rng() % 3);
    c.cfg.predictor.horizon = 1 + int(rng() % 2);
    c.cfg.predictor.threshold = (rng() % 3) / 10.0;
    const int batch = 1 + int(rng() % 12);
    c.cfg.device.max_batch = batch;
    const bool nvme = rng() % 2, hybrid = rng() % 4 == 0;
    if (nvme) c.cfg.memory.host_budget = uint64_t(K + int(rng() % 8)) * loc.max_blob_bytes();
    CAPTURE(iter);
    CAPTURE(c.slots);
    CAPTURE(nvme);
    CAPTURE(hybrid);
    CAPTURE(batch);
    OffloadOptions o = options(c, nvme ? &loc : nullptr);
    if (hybrid) o.chooser = &chooser;
    OffloadMoeExecutor ex(*backend, *model, std::move(o));
    const Outputs got = run(*model, *backend, &ex, prompt, batch);
    if (!hybrid) {
      CHECK(same_bits(got.prefill, want.prefill));
      CHECK(same_bits(got.decode, want.decode));
    } else {
      for (size_t r = 0; r < prompt.size(); ++r)
        CHECK(test::max_rel_error(&got.prefill[r * V], &want.prefill[r * V], V) < 1e-5);
    }
    CHECK(got.tokens == want.tokens);
  }
}

TEST_CASE("offload: a hot-set profile pins its experts in GPU slots for the whole run") {
  auto model = Model::load(test::fixture("mixtral"));
  test::Reference ref("mixtral");
  auto backend = make_cpu_reference_backend();
  test::TempDir dir;
  const std::string profile = dir.file("hot.txt");
  {
    std::ofstream f(profile);
    f << "# coldstream hot set v1\n0 1 0.9\n1 3 0.8\n0 5\n";
  }
  const std::vector<int32_t> prompt = ref.ints("prompt.d");
  const Outputs want = run(*model, *backend, nullptr, prompt, 256);
  Case c;
  c.slots = model->config().n_experts_per_tok + 3;  // 3 hot + k for the rest
  c.cfg.cache.hot_set = profile;
  c.cfg.cache.policy = PolicyKind::kLru;
  OffloadMoeExecutor ex(*backend, *model, options(c));
  std::vector<ExpertId> evicted;
  ex.set_plan_observer([&](const LayerPlan& p) {
    for (ExpertId id : p.gpu_evictions()) evicted.push_back(id);
  });
  const Outputs got = run(*model, *backend, &ex, prompt, 4);
  CHECK(same_bits(got.prefill, want.prefill));
  CHECK(same_bits(got.decode, want.decode));
  CHECK_FALSE(evicted.empty());
  for (ExpertId hot : {ExpertId{0, 1}, ExpertId{1, 3}, ExpertId{0, 5}})
    CHECK(std::find(evicted.begin(), evicted.end(), hot) == evicted.end());
  c.cfg.cache.hot_set = dir.file("missing.txt");
  OffloadMoeExecutor bad(*backend, *model, options(c));
  CHECK_THROWS_WITH_AS(bad.prepare(), doctest::Contains("missing.txt: cannot open the hot-set"),
                       Error);
}

TEST_CASE("offload: logits identical to resident on the fast CPU backend too") {
  auto model = Model::load(test::fixture("qwen3moe"));
  test::Reference ref("qwen3moe");
  auto backend = make_cpu_backend();
  const std::vector<int32_t> prompt = ref.ints("prompt.d");
  const Outputs want = run(*model, *backend, nullptr, prompt, 256);
  const int K = model->config().n_experts_per_tok;
  for (int slots : {K, K + 3})
    for (int batch : {256, 4}) {
      CAPTURE(slots);
      CAPTURE(batch);
      Case c;
      c.slots = slots;
      c.cfg.device.max_batch = batch;
      OffloadMoeExecutor ex(*backend, *model, options(c));
      const Outputs got = run(*model, *backend, &ex, prompt, batch);
      CHECK(same_bits(got.prefill, want.prefill));
      CHECK(same_bits(got.decode, want.decode));
    }
}

TEST_CASE("offload: a packed file's experts stream through the NVMe tier, located by its header") {
  test::TempDir tmp;
  SynthOptions so;
  so.shape = "tiny-qwen3";
  so.out = tmp.file("tiny.cst");
  write_synth(so);
  auto model = Model::load(so.out);
  REQUIRE(model->packed_file());
  const ExpertLocator loc = expert_locator(*model->packed_file());
  CHECK(loc.path == so.out);
  CHECK(loc.present_count() == model->config().n_layers * model->config().n_experts);
  auto backend = make_cpu_reference_backend();
  const std::vector<int32_t> prompt = {1, 5, 9, 200, 17, 3, 77, 400, 2, 8};
  const Outputs want = run(*model, *backend, nullptr, prompt, 256);
  const int K = model->config().n_experts_per_tok;
  for (int host_slots : {0, K + 2}) {
    CAPTURE(host_slots);
    Case c;
    c.slots = K + 1;
    c.cfg.memory.host_budget = uint64_t(host_slots) * loc.max_blob_bytes();
    c.cfg.device.max_batch = 4;
    OffloadMoeExecutor ex(*backend, *model, options(c));  // no locator: taken from the file
    const Outputs got = run(*model, *backend, &ex, prompt, 4);
    CHECK(same_bits(got.prefill, want.prefill));
    CHECK(same_bits(got.decode, want.decode));
    CHECK(ex.describe().find("NVMe tier: " + so.out) != std::string::npos);
    if (host_slots) CHECK(ex.telemetry().total.bytes_nvme_to_host > 0);
  }
}
