// The routing-trace format (cache/routing_trace.h): round trip, token ids (version 2) and
// version 1 files, errors that name what is wrong, the size cap; and NVML's absence is reported,
// not fatal.
#include <doctest/doctest.h>

#include <cstring>

#include "cache/routing_trace.h"
#include "cache/trace_replay.h"
#include "common/error.h"
#include "offload/nvml.h"

using namespace cs;

namespace {

RoutingTrace sample(int steps) {
  RoutingTrace t;
  t.header.model = "test";
  t.header.n_layers = 3;
  t.header.n_experts = 8;
  t.header.k = 2;
  t.header.moe_layers = {1, 2};
  t.header.expert_bytes = 4096;
  t.header.lookahead = 1;
  for (int s = 0; s < steps; ++s) {
    TraceStep st;
    st.request = uint32_t(s / 3);
    st.T = s % 3 == 0 ? 3 : 1;
    for (int i = 0; i < 2; ++i) {
      TraceLayer l;
      l.layer = 1 + i;
      l.ahead = i == 0 ? 1 : 0;
      for (int t = 0; t < st.T; ++t)
        for (int j = 0; j < 2; ++j) {
          l.ids.push_back((s * 3 + t + j * 5 + i) % 8);
          l.weights.push_back(0.5f + 0.1f * float(j));
        }
      l.logits.assign(size_t(st.T * l.ahead * 8), 0.25f * float(s));
      if (i == 0) l.pred_lookahead = {{2, s % 8}};
      l.pred_coactivation = {{2, (s + 1) % 8}, {2, (s + 2) % 8}};
      st.layers.push_back(l);
    }
    t.steps.push_back(st);
  }
  return t;
}

}  // namespace

TEST_CASE("routing trace: encode and decode round trip") {
  const RoutingTrace t = sample(7);
  const std::string bytes = encode_trace(t);
  const RoutingTrace u = decode_trace(bytes, "x");
  CHECK(u.header.moe_layers == t.header.moe_layers);
  CHECK(u.header.expert_bytes == 4096);
  REQUIRE(u.steps.size() == 7);
  CHECK(u.requests() == 3);
  CHECK(u.tokens() == t.tokens());
  for (size_t s = 0; s < 7; ++s)
    for (size_t i = 0; i < 2; ++i) {
      CHECK(u.steps[s].layers[i].ids == t.steps[s].layers[i].ids);
      CHECK(u.steps[s].layers[i].weights == t.steps[s].layers[i].weights);
      CHECK(u.steps[s].layers[i].logits == t.steps[s].layers[i].logits);
      CHECK(u.steps[s].layers[i].pred_coactivation == t.steps[s].layers[i].pred_coactivation);
    }
  CHECK(encode_trace(u) == bytes);
}

TEST_CASE("routing trace: version 2 keeps token ids; version 1 files still read") {
  RoutingTrace t = sample(7);
  CHECK_FALSE(t.has_tokens());
  for (TraceStep& s : t.steps)
    for (int i = 0; i < s.T; ++i) s.tokens.push_back(int32_t(100 * s.request + 7 * i + s.T));
  REQUIRE(t.has_tokens());
  const std::string v2 = encode_trace(t);
  uint32_t version = 0;
  std::memcpy(&version, v2.data() + 8, 4);
  CHECK(version == 2);
  const RoutingTrace u = decode_trace(v2, "x");
  REQUIRE(u.has_tokens());
  for (size_t s = 0; s < t.steps.size(); ++s) CHECK(u.steps[s].tokens == t.steps[s].tokens);
  CHECK(encode_trace(u) == v2);
  CHECK(encoded_step_bytes(t.header, t.steps[0]) ==
        encoded_step_bytes(t.header, sample(7).steps[0]) + 4 * uint64_t(t.steps[0].T));

  // A step without ids: the trace is written without any (the flag clear), as version 1 was.
  t.steps[3].tokens.clear();
  CHECK_FALSE(t.has_tokens());
  std::string v1 = encode_trace(t);
  CHECK(v1.size() == v2.size() - 4 * uint64_t(t.tokens()));
  CHECK(v1 == encode_trace(sample(7)));
  // Version 1 bytes are version 2 without ids: the same file with version 1 reads the same.
  const uint32_t one = 1;
  std::memcpy(v1.data() + 8, &one, 4);
  const RoutingTrace w = decode_trace(v1, "old.trace");
  CHECK_FALSE(w.has_tokens());
  REQUIRE(w.steps.size() == 7);
  for (size_t s = 0; s < 7; ++s) {
    CHECK(w.steps[s].tokens.empty());
    CHECK(w.steps[s].layers[0].ids == t.steps[s].layers[0].ids);
  }
  // A version 1 file with flag bit 1 set (never written) does not grow ids.
  std::string odd = v1;
  const size_t flags_at = 8 + 4 + 16 + 4 * 2 + 8 + 4 + 4 + 8 + 4;
  odd[flags_at] |= 2;
  CHECK_FALSE(decode_trace(odd, "odd").has_tokens());
}

TEST_CASE("routing trace: bad files are errors naming the problem") {
  const std::string bytes = encode_trace(sample(4));
  auto err = [](const std::string& b) {
    try {
      decode_trace(b, "t.trace");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(err("nonsense bytes here").find("not a routing trace") != std::string::npos);
  std::string v = bytes;
  v[8] = 9;
  CHECK(err(v).find("version 9 is not supported") != std::string::npos);
  CHECK(err(v).find("versions 1 and 2") != std::string::npos);
  CHECK(err(bytes.substr(0, bytes.size() - 3)).find("truncated") != std::string::npos);
  CHECK(err(bytes + "x").find("after the last step") != std::string::npos);
  CHECK(err(bytes).find("t.trace") == std::string::npos);  // a good file decodes
}

TEST_CASE("routing trace: the builder stops at its cap and marks the trace truncated") {
  const RoutingTrace t = sample(10);
  const uint64_t one = encoded_step_bytes(t.header, t.steps[0]);
  TraceBuilder b(t.header, encode_trace(RoutingTrace{t.header, {}}).size() + 2 * one + 10);
  int added = 0;
  for (const TraceStep& s : t.steps) added += b.add(s);
  CHECK(added >= 2);
  CHECK(added < 10);
  CHECK(b.full());
  const RoutingTrace u = b.take();
  CHECK(u.header.truncated);
  CHECK(encode_trace(u).size() <= b.max_bytes());
  CHECK(decode_trace(encode_trace(u), "x").header.truncated);
}

TEST_CASE("trace replay: Belady bounds LRU; horizons past the recording are refused") {
  const RoutingTrace t = sample(30);
  for (int slots : {2, 4, 8}) {
    ReplayConfig c;
    c.gpu_slots = slots;
    c.policy = PolicyKind::kLru;
    c.predictor = PredictorKind::kNone;
    CHECK(replay_trace(t, c).hit_rate() <=
          replay_belady(t, slots, SlotAllocation::kGlobal).hit_rate());
  }
  ReplayConfig c;
  c.gpu_slots = 4;
  c.horizon = 2;
  CHECK_THROWS_WITH_AS(replay_trace(t, c), doctest::Contains("coldstream trace --horizon"), Error);
}

TEST_CASE("nvml: a summary either way, never an exception") {
  const std::string s = nvml_summary(0);
  CHECK(s.rfind("GPU 0", 0) == 0);
  std::string why;
  if (!nvml_gpu_status(0, &why)) CHECK(!why.empty());
}
