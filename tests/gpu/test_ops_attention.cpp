// Attention (split-K for decode and any shape; tensor-core flash attention for 16-bit prefill)
// against the CPU reference, and graph capture/replay against eager execution.
#include "tests/gpu/gpu_util.h"

using namespace cs;
using namespace cs::gputest;

namespace {

// Random caches in `dt` (host bytes, identical on both sides).
std::vector<uint8_t> random_cache(DType dt, size_t elems) {
  std::vector<uint8_t> c(elems * (dt == DType::kF32 ? 4 : 2));
  for (size_t i = 0; i < elems; ++i) {
    const float v = uniform(-2, 2);
    if (dt == DType::kF32)
      std::memcpy(&c[i * 4], &v, 4);
    else {
      const uint16_t h = dt == DType::kF16 ? f32_to_f16(v) : f32_to_bf16(v);
      std::memcpy(&c[i * 2], &h, 2);
    }
  }
  return c;
}

}  // namespace

TEST_SUITE("ops") {
  TEST_CASE("attention: causal, GQA, split-K and flash paths, positions from host or device") {
    struct Heads {
      int q, kv;
    };
    for (DType dt : {DType::kF32, DType::kF16, DType::kBF16})
      for (int D : {32, 64, 128})
        for (Heads hs : {Heads{4, 2}, Heads{8, 1}, Heads{3, 3}, Heads{32, 4}})
          for (int T : {1, 3, 37, 129, 700})
            for (int pos0 : {0, 5, 300}) {
              // 700 rows: several flash row blocks (launched last first); few heads keep the
              // CPU reference short.
              if (T == 700 && (hs.q != 4 || dt == DType::kF32)) continue;
              const bool dev_pos = T == 1 && randint(0, 1);
              const int ctx = pos0 + T + randint(0, 40);
              const std::string dtype = dtype_name(dt);
              CAPTURE(dtype);
              CAPTURE(D);
              CAPTURE(hs.q);
              CAPTURE(hs.kv);
              CAPTURE(T);
              CAPTURE(pos0);
              CAPTURE(dev_pos);
              const size_t kvn = size_t(ctx) * hs.kv * D;
              std::vector<uint8_t> kc = random_cache(dt, kvn), vc = random_cache(dt, kvn);
              std::vector<float> q = randvec(size_t(T) * hs.q * D, -1.5f, 1.5f);
              std::vector<float> want(q.size());
              AttentionArgs a;
              a.q = q.data();
              a.k_cache = kc.data();
              a.v_cache = vc.data();
              a.kv_dtype = dt;
              a.T = T;
              a.pos0 = pos0;
              a.n_heads = hs.q;
              a.n_kv_heads = hs.kv;
              a.head_dim = D;
              a.scale = 1.0f / std::sqrt(float(D));
              a.out = want.data();
              ref::attention(a);
              Buffer dq = to_gpu(q), dk = to_gpu(kc), dv = to_gpu(vc), out = poisoned(q.size() * 4),
                     dpos = to_gpu(std::vector<int32_t>{pos0});
              a.q = dq.as<float>();
              a.k_cache = dk.get();
              a.v_cache = dv.get();
              a.out = out.as<float>();
              if (dev_pos) {
                a.pos = dpos.as<int32_t>();
                a.pos0 = -99;
                a.capacity = ctx;
              }
              gpu().attention(a);
              // Flash attention rounds q and the probabilities to the cache's 16-bit type.
              const bool flash = T > 1 && dt != DType::kF32 && (D == 64 || D == 128);
              const double tol = !flash ? 2e-5 : dt == DType::kF16 ? 5e-3 : 3e-2;
              CHECK(rel_err(from_gpu<float>(out.get(), q.size()), want) < tol);
            }
  }

  TEST_CASE("qk_attention: decode with the prologue fused equals the two ops and the CPU") {
    auto cpu = make_cpu_reference_backend();
    struct Heads {
      int q, kv;
    };
    for (DType dt : {DType::kF32, DType::kF16, DType::kBF16})
      for (int D : {32, 64, 128, 256})
        for (Heads hs : {Heads{4, 2}, Heads{8, 1}, Heads{3, 3}, Heads{32, 4}})
          for (int pos0 : {0, 1, 5, 37, 300, 700}) {
            const bool dev_pos = randint(0, 1), norms = randint(0, 3) != 0;
            const int ctx = pos0 + 1 + randint(0, 40), Q = hs.q, KV = hs.kv;
            const std::string dtype = dtype_name(dt);
            CAPTURE(dtype);
            CAPTURE(D);
            CAPTURE(Q);
            CAPTURE(KV);
            CAPTURE(pos0);
            CAPTURE(dev_pos);
            CAPTURE(norms);
            std::vector<float> inv(size_t(D / 2));
            for (int j = 0; j < D / 2; ++j) inv[j] = std::pow(1e6f, -2.0f * j / D);
            Mat qn = make_mat(DType::kF32, 1, D, 1.5f), kn = make_mat(DType::kBF16, 1, D, 1.5f);
            const size_t kvn = size_t(ctx) * KV * D;
            std::vector<uint8_t> kc = random_cache(dt, kvn), vc = random_cache(dt, kvn);
            std::vector<float> q = randvec(size_t(Q) * D, -2, 2),
                               k = randvec(size_t(KV) * D, -2, 2), v = randvec(k.size()),
                               want(q.size());
            AttentionArgs a;
            a.kv_dtype = dt;
            a.T = 1;
            a.pos0 = pos0;
            a.n_heads = Q;
            a.n_kv_heads = KV;
            a.head_dim = D;
            a.scale = 1.0f / std::sqrt(float(D));
            QkPrologue p;
            p.eps = 1e-6f;
            p.q_norm = norms ? qn.host : MatView{};
            p.k_norm = norms ? kn.host : MatView{};
            // The CPU reference: the two ops on host copies.
            {
              std::vector<float> hq = q, hk = k;
              std::vector<uint8_t> hkc = kc, hvc = vc;
              AttentionArgs h = a;
              h.q = hq.data();
              h.k_cache = hkc.data();
              h.v_cache = hvc.data();
              h.out = want.data();
              QkPrologue hp = p;
              hp.k = hk.data();
              hp.v = v.data();
              hp.rope = RopeArgs{inv.data(), 1.1f};
              cpu->qk_attention(h, hp);
            }
            // On the GPU: the fused op, and the two ops separately on copies of the same inputs.
            Buffer dinv = to_gpu(inv), dpos = to_gpu(std::vector<int32_t>{pos0});
            p.q_norm = norms ? qn.dev : MatView{};
            p.k_norm = norms ? kn.dev : MatView{};
            p.rope = RopeArgs{dinv.as<float>(), 1.1f};
            if (dev_pos) {
              p.rope.pos = dpos.as<int32_t>();
              a.pos = dpos.as<int32_t>();
              a.pos0 = -99;
              a.capacity = ctx;
            }
            std::vector<float> outs[2];
            std::vector<uint8_t> kcs[2], vcs[2];
            for (int fused = 0; fused < 2; ++fused) {
              Buffer dq = to_gpu(q), dk = to_gpu(k), dv = to_gpu(v), dkc = to_gpu(kc),
                     dvc = to_gpu(vc), out = poisoned(q.size() * 4);
              AttentionArgs g = a;
              g.q = dq.as<float>();
              g.k_cache = dkc.get();
              g.v_cache = dvc.get();
              g.out = out.as<float>();
              QkPrologue gp = p;
              gp.k = dk.as<float>();
              gp.v = dv.as<float>();
              if (fused)
                gpu().qk_attention(g, gp);
              else
                gpu().Backend::qk_attention(g, gp);  // qk_norm_rope_store, then attention
              outs[fused] = from_gpu<float>(out.get(), q.size());
              kcs[fused] = from_gpu<uint8_t>(dkc.get(), kc.size());
              vcs[fused] = from_gpu<uint8_t>(dvc.get(), vc.size());
            }
            // The fused kernel shares the prologue's code and sums in the same order (staged
            // rows or not): the same bits, output and caches.
            CHECK(rel_err(outs[1], outs[0]) == 0.0);
            CHECK(kcs[1] == kcs[0]);
            CHECK(vcs[1] == vcs[0]);
            // Against the CPU: sincosf and the host's sin/cos may differ in the last fp32 bit,
            // which can flip the new key's 16-bit rounding (one key of pos0 + 1).
            CHECK(rel_err(outs[1], want) < (dt == DType::kF32   ? 1e-4
                                            : dt == DType::kF16 ? 2e-3
                                                                : 2e-2));
          }
  }

  TEST_CASE("graph replay equals eager execution and follows positions in device memory") {
    Backend& b = gpu();
    if (!b.supports_graphs()) return;
    const int D = 64, heads = 4, ctx = 64;
    std::vector<float> inv(size_t(D / 2));
    for (int j = 0; j < D / 2; ++j) inv[j] = std::pow(10000.0f, -2.0f * j / D);
    Buffer dinv = to_gpu(inv), pos = to_gpu(std::vector<int32_t>{0});
    Mat w = make_mat(DType::kQ4, heads * D, 256, 1.0f / 16);
    std::vector<float> x = randvec(256);
    Buffer dx = to_gpu(x), q = poisoned(size_t(heads) * D * 4),
           kc = poisoned(size_t(ctx) * heads * D * 2), vc = poisoned(size_t(ctx) * heads * D * 2),
           out = poisoned(size_t(heads) * D * 4);
    RopeArgs rope{dinv.as<float>(), 1.0f};
    rope.pos = pos.as<int32_t>();
    AttentionArgs a;
    a.q = q.as<float>();
    a.k_cache = kc.get();
    a.v_cache = vc.get();
    a.kv_dtype = DType::kBF16;
    a.T = 1;
    a.n_heads = heads;
    a.n_kv_heads = heads;
    a.head_dim = D;
    a.scale = 0.125f;
    a.out = out.as<float>();
    a.pos = pos.as<int32_t>();
    a.capacity = ctx;
    auto step = [&] {
      b.matmul(dx.as<float>(), 1, w.dev, q.as<float>());
      b.norm_rope(q.as<float>(), 1, heads, D, MatView{}, 1e-6f, 0, rope);
      b.kv_store(q.as<float>(), q.as<float>(), 1, 0, heads * D, DType::kBF16, kc.get(), vc.get(),
                 pos.as<int32_t>());
      b.attention(a);
    };
    std::vector<std::vector<float>> eager;
    for (int p = 0; p < 5; ++p) {
      b.upload(pos.get(), &p, 4);
      step();
      eager.push_back(from_gpu<float>(out.get(), size_t(heads) * D));
    }
    b.capture_begin();
    step();
    std::unique_ptr<Graph> g = b.capture_end();
    for (int p = 0; p < 5; ++p) {
      poison(out.get(), size_t(heads) * D * 4);
      b.upload(pos.get(), &p, 4);
      b.replay(*g);
      CHECK(rel_err(from_gpu<float>(out.get(), size_t(heads) * D), eager[p]) == 0.0);
    }
  }
}
