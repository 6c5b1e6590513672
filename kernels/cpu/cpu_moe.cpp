#include "kernels/cpu/cpu_moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/error.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/simd.h"

namespace cs {

using cpu::CpuKernels;
using cpu::QActRow;

namespace {

constexpr int kUnitRows = 64;  // rows of I (phase A) or H (phase B) per work unit
constexpr int kTokBlock = 32;  // tokens per pass over a unit's rows (they stay in L1/L2)

int64_t align64(int64_t n) {
  return (n + 63) / 64 * 64;
}

float silu(float x) {
  return x / (1.0f + std::exp(-x));
}

void check_mat(const MatView& m, int64_t rows, int64_t cols, int k, const char* name) {
  if (m.empty() || m.rows != rows || m.cols != cols)
    fail(ErrorKind::kInvalidArgument, "cpu_moe: task {}: {} is [{}][{}], expected [{}][{}]", k,
         name, m.rows, m.cols, rows, cols);
  if (m.quantized()) {
    if (m.group != 32 && m.group != 64 && m.group != 128)
      fail(ErrorKind::kInvalidArgument, "cpu_moe: task {}: {} has group {} (expected 32, 64, 128)",
           k, name, m.group);
    if (cols % m.group != 0 || !m.scales)
      fail(ErrorKind::kInvalidArgument,
           "cpu_moe: task {}: {} has {} columns, not a multiple of its group {}, or no scales", k,
           name, cols, m.group);
    if (m.dtype == DType::kQ8 && m.mins)
      fail(ErrorKind::kInvalidArgument, "cpu_moe: task {}: {} is Q8 with mins", k, name);
  }
}

void validate(const CpuMoeArgs& a, const CpuMoeTask* tasks, int n) {
  if (!a.x || !a.out || a.T < 0 || a.hidden <= 0 || n < 0 || (n > 0 && !tasks))
    fail(ErrorKind::kInvalidArgument,
         "cpu_moe: bad arguments (x, out, T = {}, hidden = {}, {} tasks)", a.T, a.hidden, n);
  for (int k = 0; k < n; ++k) {
    const CpuMoeTask& t = tasks[k];
    const int64_t I = t.w.gate.rows, H = a.hidden;
    check_mat(t.w.gate, I, H, k, "gate");
    check_mat(t.w.up, I, H, k, "up");
    check_mat(t.w.down, H, I, k, "down");
    const MatView &g = t.w.gate, &u = t.w.up;
    if (g.dtype != u.dtype || g.group != u.group || (g.mins == nullptr) != (u.mins == nullptr))
      fail(ErrorKind::kInvalidArgument,
           "cpu_moe: task {}: gate ({}, group {}) and up ({}, group {}) differ in format", k,
           dtype_name(g.dtype), g.group, dtype_name(u.dtype), u.group);
    if (t.n < 0 || (t.n > 0 && (!t.rows || !t.weights)))
      fail(ErrorKind::kInvalidArgument, "cpu_moe: task {}: {} rows without row/weight arrays", k,
           t.n);
    for (int j = 0; j < t.n; ++j)
      if (t.rows[j] < 0 || t.rows[j] >= a.T)
        fail(ErrorKind::kInvalidArgument, "cpu_moe: task {}: row {} is outside [0, {})", k,
             t.rows[j], a.T);
  }
}

cpu::QRows q_rows(const MatView& m, int prefetch) {
  cpu::QRows q;
  q.dtype = m.dtype;
  q.group = m.group;
  q.cols = m.cols;
  q.prefetch = prefetch;
  return q;
}

void add_q_row(cpu::QRows& q, const MatView& m, int64_t r) {
  q.codes[q.n] = cpu::q_row_codes(m, r);
  q.scales[q.n] = cpu::q_row_scales(m, r);
  q.mins[q.n] = cpu::q_row_mins(m, r);
  ++q.n;
}

void add_f_row(cpu::FRows& f, const MatView& m, int64_t r) {
  f.dtype = m.dtype;
  f.cols = m.cols;
  f.data[f.n++] = cpu::f_row(m, r);
}

}  // namespace

struct CpuMoe::Scratch {
  cpu::Scratch xq, inter;
  std::vector<int32_t> slot;               // token -> quantized x row, -1 when unused
  std::vector<int32_t> slot_tokens;        // quantized x row -> token
  std::vector<int64_t> inter_off;          // task -> byte offset of its intermediates
  std::vector<int64_t> inter_stride;       // task -> bytes per token
  std::vector<std::pair<int, int>> units;  // phase A: (task, first row of I)
};

CpuMoe::CpuMoe(CpuIsa isa)
    : isa_(resolve_cpu_isa(isa)),
      kernels_(&cpu::kernels_for(isa_)),
      scratch_(std::make_unique<Scratch>()) {}
CpuMoe::CpuMoe(const CpuKernels& kernels)
    : isa_(kernels.isa), kernels_(&kernels), scratch_(std::make_unique<Scratch>()) {}
CpuMoe::~CpuMoe() = default;

void CpuMoe::run(const CpuMoeArgs& a, const CpuMoeTask* tasks, int n_tasks, ThreadPool& pool,
                 const std::function<void()>* caller_work) {
  validate(a, tasks, n_tasks);
  const CpuKernels& K = *kernels_;
  Scratch& S = *scratch_;
  const int64_t H = a.hidden;

  // ---- quantize the rows of x that quantized experts read ----
  S.slot.assign(size_t(a.T), -1);
  S.slot_tokens.clear();
  for (int k = 0; k < n_tasks; ++k) {
    if (!tasks[k].w.gate.quantized()) continue;
    for (int j = 0; j < tasks[k].n; ++j) {
      int32_t& s = S.slot[size_t(tasks[k].rows[j])];
      if (s < 0) {
        s = int32_t(S.slot_tokens.size());
        S.slot_tokens.push_back(tasks[k].rows[j]);
      }
    }
  }
  const int64_t xq_bytes = cpu::qact_bytes(H);
  uint8_t* xq = static_cast<uint8_t*>(S.xq.get(size_t(xq_bytes) * (S.slot_tokens.size() + 1)));
  auto xq_row = [&](int32_t slot) { return cpu::qact_view(xq + slot * xq_bytes, H); };
  const int n_slots = int(S.slot_tokens.size());
  auto quantize_slot = [&](int64_t s, int) {
    K.quantize(a.x + int64_t(S.slot_tokens[size_t(s)]) * H, H, xq_row(int32_t(s)));
  };
  if (n_slots <= 2)
    for (int s = 0; s < n_slots; ++s) quantize_slot(s, 0);
  else
    pool.run(n_slots, quantize_slot);

  // ---- intermediates: per task and token, in the format down reads ----
  S.inter_off.resize(size_t(n_tasks));
  S.inter_stride.resize(size_t(n_tasks));
  int64_t total = 0;
  S.units.clear();
  for (int k = 0; k < n_tasks; ++k) {
    const MatView& down = tasks[k].w.down;
    const int64_t I = down.cols;
    S.inter_stride[k] = down.quantized() ? cpu::qact_bytes(I) : align64(I * 4);
    S.inter_off[k] = total;
    total += S.inter_stride[k] * tasks[k].n;
    if (tasks[k].n > 0)
      for (int64_t i = 0; i < I; i += kUnitRows) S.units.emplace_back(k, int(i));
  }
  uint8_t* inter = static_cast<uint8_t*>(S.inter.get(size_t(total) + 64));
  auto inter_ptr = [&](int k, int j) { return inter + S.inter_off[k] + S.inter_stride[k] * j; };

  // ---- phase A: h = silu(gate x) * up x, per 64-row unit of I ----
  // (Units stay whole pairs of 32-blocks: the AVX-512 kernels interleave a row's int8 blocks in
  // pairs, so a unit's slice of the intermediate must start at an even block.)
  auto phase_a = [&](int64_t u, int) {
    const auto [k, i0] = S.units[size_t(u)];
    const CpuMoeTask& task = tasks[k];
    const MatView &gate = task.w.gate, &up = task.w.up, &down = task.w.down;
    const int64_t I = gate.rows;
    const int i1 = int(std::min<int64_t>(I, i0 + kUnitRows));
    QActRow acts[kTokBlock];
    const float* xs[kTokBlock];
    float gu[kTokBlock * 4];
    alignas(64) float h[kTokBlock * kUnitRows];
    for (int tb = 0; tb < task.n; tb += kTokBlock) {
      const int nt = std::min(kTokBlock, task.n - tb);
      for (int t = 0; t < nt; ++t) {
        const int32_t row = task.rows[tb + t];
        if (gate.quantized())
          acts[t] = xq_row(S.slot[size_t(row)]);
        else
          xs[t] = a.x + int64_t(row) * H;
      }
      for (int i = i0; i < i1; i += 2) {
        // Gate rows i, i+1 and up rows i, i+1 in one tile: x is read once for both matrices.
        // (An odd I, possible for fp32 experts only, leaves one row of each at the end.)
        const int p = std::min(2, i1 - i);
        if (gate.quantized()) {
          cpu::QRows q = q_rows(gate, prefetch_);
          for (int r = 0; r < p; ++r) add_q_row(q, gate, i + r);
          for (int r = 0; r < p; ++r) add_q_row(q, up, i + r);
          K.qdot(q, acts, nt, gu, 1, 4);
        } else {
          cpu::FRows f;
          for (int r = 0; r < p; ++r) add_f_row(f, gate, i + r);
          for (int r = 0; r < p; ++r) add_f_row(f, up, i + r);
          K.fdot(f, xs, nt, gu, 1, 4);
        }
        for (int t = 0; t < nt; ++t)
          for (int r = 0; r < p; ++r)
            h[t * kUnitRows + (i - i0) + r] = silu(gu[t * 4 + r]) * gu[t * 4 + p + r];
      }
      for (int t = 0; t < nt; ++t) {
        uint8_t* dst = inter_ptr(k, tb + t);
        if (down.quantized())
          K.quantize(h + t * kUnitRows, i1 - i0, cpu::qact_slice(cpu::qact_view(dst, I), i0));
        else
          std::memcpy(reinterpret_cast<float*>(dst) + i0, h + t * kUnitRows,
                      size_t(i1 - i0) * sizeof(float));
      }
    }
  };
  if (caller_work)
    pool.run(int64_t(S.units.size()), phase_a, *caller_work);
  else
    pool.run(int64_t(S.units.size()), phase_a);

  // ---- phase B: out[:, h0:h1] (+)= sum over tasks of weight * down h ----
  const int64_t n_units_b = (H + kUnitRows - 1) / kUnitRows;
  pool.run(n_units_b, [&](int64_t u, int) {
    const int64_t h0 = u * kUnitRows, h1 = std::min(H, h0 + kUnitRows);
    if (!a.accumulate)
      for (int t = 0; t < a.T; ++t) std::fill(a.out + t * H + h0, a.out + t * H + h1, 0.0f);
    QActRow acts[kTokBlock];
    const float* xs[kTokBlock];
    alignas(64) float y[kTokBlock * kUnitRows];
    for (int k = 0; k < n_tasks; ++k) {
      const CpuMoeTask& task = tasks[k];
      const MatView& down = task.w.down;
      const int64_t I = down.cols;
      for (int tb = 0; tb < task.n; tb += kTokBlock) {
        const int nt = std::min(kTokBlock, task.n - tb);
        for (int t = 0; t < nt; ++t) {
          uint8_t* p = inter_ptr(k, tb + t);
          if (down.quantized())
            acts[t] = cpu::qact_view(p, I);
          else
            xs[t] = reinterpret_cast<const float*>(p);
        }
        for (int64_t h = h0; h < h1; h += cpu::kMaxTileRows) {
          const int rows = int(std::min<int64_t>(cpu::kMaxTileRows, h1 - h));
          if (down.quantized()) {
            cpu::QRows q = q_rows(down, prefetch_);
            for (int r = 0; r < rows; ++r) add_q_row(q, down, h + r);
            K.qdot(q, acts, nt, y + (h - h0), 1, kUnitRows);
          } else {
            cpu::FRows f;
            for (int r = 0; r < rows; ++r) add_f_row(f, down, h + r);
            K.fdot(f, xs, nt, y + (h - h0), 1, kUnitRows);
          }
        }
        for (int t = 0; t < nt; ++t) {
          float* o = a.out + int64_t(task.rows[tb + t]) * H;
          const float wgt = task.weights[tb + t];
          for (int64_t h = h0; h < h1; ++h) o[h] += wgt * y[t * kUnitRows + (h - h0)];
        }
      }
    }
  });
}

void cpu_moe(const CpuMoeArgs& args, const CpuMoeTask* tasks, int n_tasks, ThreadPool& pool,
             CpuIsa isa) {
  CpuMoe(isa).run(args, tasks, n_tasks, pool);
}

}  // namespace cs
