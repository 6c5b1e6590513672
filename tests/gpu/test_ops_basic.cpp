// CUDA ops against the CPU reference: embedding, RMSNorm, add, q/k norm + RoPE, KV store,
// router, sampling. Fresh random inputs each run, outputs poisoned before each op.
#include "tests/gpu/gpu_util.h"

using namespace cs;
using namespace cs::gputest;

namespace {
const int kSizes[] = {1, 3, 7, 37, 129};
const DType kAll[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8, DType::kQ4};
}  // namespace

TEST_SUITE("ops") {
  TEST_CASE("embed: every table dtype") {
    for (DType dt : kAll)
      for (int T : kSizes) {
        const int cols =
            (dt == DType::kQ4 || dt == DType::kQ8) ? 32 * randint(1, 5) : randint(1, 300);
        const int rows = randint(1, 200);
        const std::string dtype = dtype_name(dt);
        CAPTURE(dtype);
        CAPTURE(T);
        CAPTURE(cols);
        Mat m = make_mat(dt, rows, cols);
        std::vector<int32_t> ids(static_cast<size_t>(T));
        for (int32_t& i : ids) i = randint(0, rows - 1);
        std::vector<float> want(size_t(T) * cols);
        ref::embed(m.host, ids.data(), T, want.data());
        Buffer dids = to_gpu(ids), out = poisoned(want.size() * 4);
        gpu().embed(m.dev, dids.as<int32_t>(), T, out.as<float>());
        CHECK(rel_err(from_gpu<float>(out.get(), want.size()), want) == 0.0);
      }
  }

  TEST_CASE("rmsnorm with and without the fused residual add") {
    for (int dim : {1, 7, 37, 129, 1000, 2048, 4097})
      for (int T : {1, 3, 37})
        for (bool with_res : {false, true})
          for (DType wt : {DType::kF32, DType::kBF16}) {
            CAPTURE(dim);
            CAPTURE(T);
            CAPTURE(with_res);
            Mat w = make_mat(wt, 1, dim, 2.0f);
            std::vector<float> x = randvec(size_t(T) * dim, -3, 3), r = randvec(x.size());
            std::vector<float> xr = x, want(x.size());
            ref::rmsnorm(xr.data(), with_res ? r.data() : nullptr, w.host, 1e-6f, T, dim,
                         want.data());
            Buffer dx = to_gpu(x), dr = to_gpu(r), out = poisoned(x.size() * 4);
            gpu().rmsnorm(dx.as<float>(), with_res ? dr.as<float>() : nullptr, w.dev, 1e-6f, T, dim,
                          out.as<float>());
            CHECK(rel_err(from_gpu<float>(out.get(), x.size()), want) < 1e-5);
            CHECK(rel_err(from_gpu<float>(dx.get(), x.size()), xr) < 1e-6);
          }
  }

  TEST_CASE("add") {
    for (int n : {1, 3, 37, 129, 100003}) {
      std::vector<float> x = randvec(size_t(n)), y = randvec(size_t(n)), want = x;
      for (int i = 0; i < n; ++i) want[i] += y[i];
      Buffer dx = to_gpu(x), dy = to_gpu(y);
      gpu().add(dx.as<float>(), dy.as<float>(), n);
      CHECK(rel_err(from_gpu<float>(dx.get(), size_t(n)), want) == 0.0);
    }
  }

  TEST_CASE("norm_rope: per-head norm, rotate-half pairs, positions from host or device") {
    for (int D : {2, 32, 64, 128})
      for (int heads : {1, 3, 7})
        for (int T : {1, 3, 37})
          for (bool norm : {false, true})
            for (bool dev_pos : {false, true}) {
              CAPTURE(D);
              CAPTURE(heads);
              CAPTURE(T);
              CAPTURE(norm);
              CAPTURE(dev_pos);
              std::vector<float> inv(size_t(D / 2));
              for (int j = 0; j < D / 2; ++j) inv[j] = std::pow(10000.0f, -2.0f * j / D);
              const int pos0 = randint(0, 5000);
              const float factor = uniform(0.8f, 1.3f);
              Mat w = make_mat(DType::kF32, 1, D, 1.5f);
              std::vector<float> x = randvec(size_t(T) * heads * D, -2, 2), want = x;
              MatView nv = norm ? w.host : MatView{};
              ref::norm_rope(want.data(), T, heads, D, nv, 1e-6f, pos0,
                             RopeArgs{inv.data(), factor});
              Buffer dx = to_gpu(x), dinv = to_gpu(inv), dpos = to_gpu(std::vector<int32_t>{pos0});
              RopeArgs r{dinv.as<float>(), factor};
              if (dev_pos) r.pos = dpos.as<int32_t>();
              gpu().norm_rope(dx.as<float>(), T, heads, D, norm ? w.dev : MatView{}, 1e-6f,
                              dev_pos ? -12345 : pos0, r);
              CHECK(rel_err(from_gpu<float>(dx.get(), x.size()), want) < 2e-5);
            }
  }

  TEST_CASE("kv_store: F32, F16, BF16 caches, positions from host or device") {
    for (DType dt : {DType::kF32, DType::kF16, DType::kBF16})
      for (int T : kSizes)
        for (bool dev_pos : {false, true}) {
          const int kv_dim = randint(1, 300), ctx = T + randint(0, 50);
          const int pos0 = randint(0, ctx - T);
          const size_t eb = dt == DType::kF32 ? 4 : 2;
          std::vector<float> k = randvec(size_t(T) * kv_dim), v = randvec(k.size());
          std::vector<uint8_t> kc(size_t(ctx) * kv_dim * eb), vc(kc.size());
          for (auto& b : kc) b = uint8_t(randint(0, 255));
          for (auto& b : vc) b = uint8_t(randint(0, 255));
          Buffer dk = to_gpu(k), dv = to_gpu(v), dkc = to_gpu(kc), dvc = to_gpu(vc),
                 dpos = to_gpu(std::vector<int32_t>{pos0});
          ref::kv_store(k.data(), v.data(), T, pos0, kv_dim, dt, kc.data(), vc.data());
          gpu().kv_store(dk.as<float>(), dv.as<float>(), T, dev_pos ? -7 : pos0, kv_dim, dt,
                         dkc.get(), dvc.get(), dev_pos ? dpos.as<int32_t>() : nullptr);
          CHECK(from_gpu<uint8_t>(dkc.get(), kc.size()) == kc);
          CHECK(from_gpu<uint8_t>(dvc.get(), vc.size()) == vc);
        }
  }

  TEST_CASE("qk_norm_rope_store: the fused attention prologue equals the three ops") {
    auto cpu = make_cpu_reference_backend();
    for (DType dt : {DType::kF32, DType::kBF16})
      for (int D : {32, 128})
        for (int T : {1, 3, 37})
          for (bool dev_pos : {false, true}) {
            const int Q = randint(1, 8), KV = randint(1, 3), ctx = T + randint(0, 30);
            const int pos0 = randint(0, ctx - T);
            CAPTURE(D);
            CAPTURE(T);
            CAPTURE(Q);
            CAPTURE(KV);
            std::vector<float> inv(size_t(D / 2));
            for (int j = 0; j < D / 2; ++j) inv[j] = std::pow(1e6f, -2.0f * j / D);
            Mat qn = make_mat(DType::kF32, 1, D, 1.5f), kn = make_mat(DType::kBF16, 1, D, 1.5f);
            std::vector<float> q = randvec(size_t(T) * Q * D, -2, 2),
                               k = randvec(size_t(T) * KV * D, -2, 2), v = randvec(k.size());
            const size_t cache = size_t(ctx) * KV * D * (dt == DType::kF32 ? 4 : 2);
            std::vector<uint8_t> kc(cache, 0), vc(cache, 0);
            std::vector<float> wq = q, wk = k;
            cpu->qk_norm_rope_store(wq.data(), wk.data(), v.data(), T, Q, KV, D, qn.host, kn.host,
                                    1e-6f, pos0, RopeArgs{inv.data(), 1.1f}, dt, kc.data(),
                                    vc.data());
            Buffer dq = to_gpu(q), dk = to_gpu(k), dv = to_gpu(v), dinv = to_gpu(inv),
                   dkc = to_gpu(std::vector<uint8_t>(cache, 0)),
                   dvc = to_gpu(std::vector<uint8_t>(cache, 0)),
                   dpos = to_gpu(std::vector<int32_t>{pos0});
            RopeArgs r{dinv.as<float>(), 1.1f};
            if (dev_pos) r.pos = dpos.as<int32_t>();
            gpu().qk_norm_rope_store(dq.as<float>(), dk.as<float>(), dv.as<float>(), T, Q, KV, D,
                                     qn.dev, kn.dev, 1e-6f, dev_pos ? -3 : pos0, r, dt, dkc.get(),
                                     dvc.get());
            CHECK(rel_err(from_gpu<float>(dq.get(), q.size()), wq) < 2e-5);
            CHECK(rel_err(from_gpu<float>(dk.get(), k.size()), wk) < 2e-5);
            CHECK(from_gpu<uint8_t>(dvc.get(), cache) == vc);
            if (dt == DType::kF32) {  // 16-bit keys may round differently from 1-ulp fp32 noise
              std::vector<float> got(cache / 4), want(cache / 4);
              std::memcpy(want.data(), kc.data(), cache);
              gpu().download(got.data(), dkc.get(), cache);
              CHECK(rel_err(got, want) < 2e-5);
            }
          }
  }

  TEST_CASE("router: softmax, top-k, renormalisation") {
    for (int E : {1, 8, 37, 128, 257})
      for (int k : {1, 2, 8})
        for (int T : kSizes)
          for (bool renorm : {false, true}) {
            if (k > E) continue;
            CAPTURE(E);
            CAPTURE(k);
            CAPTURE(T);
            std::vector<float> l = randvec(size_t(T) * E, -4, 4);
            std::vector<int32_t> ids(size_t(T) * k);
            std::vector<float> w(ids.size());
            ref::router(l.data(), T, E, k, renorm, ids.data(), w.data());
            Buffer dl = to_gpu(l), dids = poisoned(ids.size() * 4), dw = poisoned(w.size() * 4);
            gpu().router(dl.as<float>(), T, E, k, renorm, dids.as<int32_t>(), dw.as<float>());
            CHECK(from_gpu<int32_t>(dids.get(), ids.size()) == ids);
            CHECK(rel_err(from_gpu<float>(dw.get(), w.size()), w) < 1e-5);
          }
  }

  TEST_CASE("sample: greedy, temperature, top-k, top-p, min-p, ties") {
    int checked = 0;
    for (int V : {1, 7, 1000, 151936})
      for (int trial = 0; trial < 6; ++trial) {
        std::vector<float> l = randvec(size_t(V), -5, 5);
        if (trial % 3 == 2)  // coarse logits: many ties, also at the top-k cut
          for (float& x : l) x = std::round(x * 2) / 2;
        SampleArgs s;
        s.greedy = trial == 0;
        s.temperature = uniform(0.3f, 1.5f);
        s.top_k = std::vector<int>{1, 20, 40, 1024, 7, 300}[trial];
        s.top_p = trial % 2 ? uniform(0.5f, 1.0f) : 1.0f;
        s.min_p = trial >= 4 ? uniform(0.0f, 0.2f) : 0.0f;
        CAPTURE(V);
        CAPTURE(trial);
        REQUIRE(gpu().supports_sampling(s));
        Buffer dl = to_gpu(l), du = gpu().alloc(4), tok = poisoned(4);
        for (int draw = 0; draw < 8; ++draw) {
          const float u = uniform(0.0f, 1.0f);
          gpu().upload(du.get(), &u, 4);
          gpu().sample(dl.as<float>(), V, s, du.as<float>(), tok.as<int32_t>());
          CHECK(from_gpu<int32_t>(tok.get(), 1)[0] == ref::sample(l.data(), V, s, u));
          ++checked;
        }
      }
    CHECK(checked > 100);
    // Greedy over many blocks: ties at the maximum (the lowest index wins), -0 and +0, -inf, NaN
    // skipped, all NaN giving token 0 (the reference's first element). Repeated calls reuse the
    // backend's counter and best word, so one left non-zero corrupts the next token.
    SampleArgs greedy;
    greedy.greedy = true;
    Buffer du = gpu().alloc(4);
    for (int V : {1, 7, 37, 129, 2048, 2049, 151936})
      for (int trial = 0; trial < 5; ++trial) {
        CAPTURE(V);
        CAPTURE(trial);
        std::vector<float> l = randvec(size_t(V), -5, 5);
        if (trial == 1)  // coarse: the maximum is tied many times
          for (float& x : l) x = std::round(x);
        if (trial == 2) {  // signed zeros at the top, -inf elsewhere
          for (float& x : l) x = -INFINITY;
          l[size_t(V) - 1] = 0.0f;
          l[size_t(V) / 2] = -0.0f;
        }
        if (trial == 3)  // NaNs among the logits
          for (size_t i = 0; i < l.size(); i += 3) l[i] = NAN;
        if (trial == 4) std::fill(l.begin(), l.end(), NAN);
        std::vector<float> clean = l;  // the reference rule with NaN skipped
        for (float& x : clean)
          if (std::isnan(x)) x = -INFINITY;
        const bool all_nan = trial == 4;
        const int32_t want = all_nan ? 0 : ref::sample(clean.data(), V, greedy, 0.0f);
        Buffer dl = to_gpu(l), tok = poisoned(4);
        for (int rep = 0; rep < 2; ++rep) {
          gpu().sample(dl.as<float>(), V, greedy, du.as<float>(), tok.as<int32_t>());
          CHECK(from_gpu<int32_t>(tok.get(), 1)[0] == want);
        }
      }
    SampleArgs all;
    all.top_k = 0;
    CHECK_FALSE(gpu().supports_sampling(all));  // the host samples then (runtime falls back)
  }
}
