// OffloadMoeExecutor: construction, GPU memory planning, the lookahead router stack and the hot
// set. The per-layer work is in offload_moe_executor.cpp.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "cache/hybrid_chooser.h"
#include "cache/planner.h"
#include "cache/prediction_scorer.h"
#include "common/error.h"
#include "common/log.h"
#include "common/units.h"
#include "offload/blob_pack.h"
#include "offload/copy_engine.h"
#include "offload/cuda_support.h"
#include "offload/expert_mover.h"
#include "offload/host_tier.h"
#include "offload/numa.h"
#include "runtime/engine/offload_calibration.h"
#include "runtime/engine/offload_locator.h"
#include "runtime/engine/offload_moe_executor.h"
#include "runtime/model/weight_id.h"

namespace cs {
namespace {

constexpr int kTables = 8;  // expert tables in a ring, one per pass

size_t scale_bytes(const MatView& m, int64_t rows) {
  return m.group > 0 ? size_t(rows) * size_t(m.cols / m.group) * 2 : 0;
}

}  // namespace

void OffloadMoeExecutor::log(const std::string& s) const {
  note(opt_.log, s);
}

OffloadMoeExecutor::OffloadMoeExecutor(Backend& backend, const Model& model, OffloadOptions options)
    : backend_(backend), model_(model), opt_(std::move(options)) {
  const ModelConfig& c = model.config();
  const OffloadConfig& cfg = opt_.config;
  H_ = c.hidden_size;
  K_ = c.n_experts_per_tok;
  E_ = c.n_experts;
  n_layers_ = c.n_layers;
  moe_layers_ = moe_layers(c);
  if (moe_layers_.empty())
    fail(ErrorKind::kUnsupported, "{}: the model has no MoE layers to offload", model.path());
  first_moe_ = moe_layers_.front();

  // Where the expert blobs are: the given locator, the packed file the model was loaded from
  // (read with io_uring, not through its mapping), or packed from the model's host views.
  locator_ = opt_.locator;
  if (!locator_ && model.packed_file()) {
    own_locator_ = std::make_unique<ExpertLocator>(expert_locator(*model.packed_file()));
    locator_ = own_locator_.get();
  }
  if (!locator_) {
    own_locator_ = std::make_unique<ExpertLocator>("", n_layers_, E_);
    for (int l : moe_layers_)
      for (int e = 0; e < E_; ++e) {
        ExpertBlobLocation& b = own_locator_->at(l, e);
        b.layout = layout_of(model.experts().host_view(l, e));
        b.bytes = b.layout.bytes;
      }
    locator_ = own_locator_.get();
  }
  {
    const ExpertLayout& l = locator_->at(first_moe_, 0).layout;
    expert_dtype_ = l.gate.dtype;
    expert_inter_ = int(l.gate.rows);
    for (int l2 : moe_layers_)
      for (int e = 0; e < E_; ++e) {
        const ExpertLayout& x = locator_->at(l2, e).layout;
        if (x.gate.dtype != expert_dtype_ || x.gate.rows != l.gate.rows || x.gate.cols != H_)
          fail(ErrorKind::kUnsupported,
               "offload: expert {} of layer {} differs in type or shape from layer {}'s experts", e,
               l2, first_moe_);
      }
  }

  // Host tier: arena (pinned in the background when the backend is a GPU), NVMe reader.
  std::unique_ptr<Pinner> pinner;
  if (!backend.host_memory() && cfg.memory.pin) pinner = make_cuda_pinner();
  HostTierOptions ho;
  ho.budget = cfg.memory.host_budget;
  ho.arena.pinner = pinner.get();
  ho.arena.pin_chunk = cfg.memory.pin_chunk;
  ho.arena.numa_node = cfg.memory.numa_node >= 0 ? cfg.memory.numa_node
                       : cfg.memory.numa_node == -1 && !backend.host_memory()
                           ? numa_node_of_pci(cuda_pci_bus_id(cfg.device.gpu))
                           : -1;
  ho.arena.on_progress = [this](const PinStatus& s) {
    if (!s.done)
      log(fmt::format("pinning host memory: {} of {}", format_bytes(double(s.pinned)),
                      format_bytes(double(s.total))));
  };
  ho.io.queue_depth = cfg.io.queue_depth;
  ho.io.read_size = uint32_t(cfg.io.read_size);
  ho.io.direct_io = cfg.io.direct_io;
  ho.io.retries = cfg.io.retries;
  ho.io.register_buffers = cfg.io.register_buffers;
  ho.io.faults = opt_.faults;
  ho.policy = cfg.cache.host_policy;
  ho.decay = cfg.cache.decay;
  host_ = std::make_unique<HostTier>(*locator_, ho, K_);
  pinner_ = std::move(pinner);
  if (host_->reader())
    for (const std::string& n : host_->reader()->notes()) log("warning: " + n);
  if (host_->full()) {
    if (host_->reader()) {
      log(fmt::format("loading {} of experts into host RAM from {}",
                      format_bytes(double(locator_->total_bytes())), locator_->path));
      host_->load_all_from_file();
    } else {
      const ExpertStore& store = model.experts();
      host_->load_all([&](ExpertId id, void* dst) {
        pack_expert_blob(store.host_view(id.layer, id.expert),
                         locator_->at(id.layer, id.expert).layout, dst);
      });
    }
  }

  PredictorParams pp;
  pp.n_layers = n_layers_;
  pp.n_experts = E_;
  pp.k = K_;
  pp.layers = moe_layers_;
  pp.horizon = cfg.predictor.horizon;
  pp.threshold = cfg.predictor.threshold;
  pp.top_k = cfg.predictor.top_k;
  predictor_ = make_predictor(cfg.predictor.kind, pp);
  scorer_ = std::make_unique<PredictionScorer>(n_layers_, E_);

  cpu_backend_ = opt_.cpu_backend;
  if (!cpu_backend_) {
    own_cpu_backend_ = make_cpu_reference_backend();
    cpu_backend_ = own_cpu_backend_.get();
  }
  copies_ = std::move(opt_.copy_engine);
  if (!copies_ && backend.host_memory()) {
    copies_ = make_host_copy_engine({cfg.device.copy_rate, true});
  } else if (!copies_) {  // ordered against the backend's own stream unless told another
    if (!opt_.compute_stream) opt_.compute_stream = backend.native_stream();
    copies_ = make_cuda_copy_engine(cfg.device.gpu, opt_.compute_stream);
  }
  last_plan_ = std::make_unique<LayerPlan>();
}

OffloadMoeExecutor::~OffloadMoeExecutor() {
  if (mover_) {
    try {
      mover_->drain();
    } catch (...) {
    }
  }
  if (copies_) copies_->synchronize();
  try {
    backend_.synchronize();  // uploads from the page-locked staging block may still be queued
  } catch (...) {
  }
  release_staging();
}

void OffloadMoeExecutor::reserve_staging(int T) {
  release_staging();
  const size_t n = size_t(T) * size_t(K_);
  const size_t n_logits = size_t(T) * size_t(std::max(0, predictor_->lookahead())) * size_t(E_);
  const size_t n_x = std::min(size_t(T) * size_t(H_), kStagedX);
  auto line = [](size_t floats) { return (floats * 4 + 63) / 64 * 64; };
  const size_t n_tables = size_t(kTables) * size_t(E_) * sizeof(ExpertWeights) / 4;
  const size_t bytes =
      (2 * line(n) + line(n_logits) + 2 * line(n_x) + line(n_tables) + 4095) / 4096 * 4096;
  void* p = std::aligned_alloc(4096, bytes);
  if (!p) fail(ErrorKind::kOutOfMemory, "offload: cannot allocate {} bytes of host staging", bytes);
  staging_.block.reset(p);
  auto* b = static_cast<uint8_t*>(p);
  staging_.ids = reinterpret_cast<int32_t*>(b);
  staging_.w = reinterpret_cast<float*>(b + line(n));
  staging_.logits = reinterpret_cast<float*>(b + 2 * line(n));
  staging_.x = reinterpret_cast<float*>(b + 2 * line(n) + line(n_logits));
  staging_.out = reinterpret_cast<float*>(b + 2 * line(n) + line(n_logits) + line(n_x));
  staging_.tables =
      reinterpret_cast<ExpertWeights*>(b + 2 * line(n) + line(n_logits) + 2 * line(n_x));
  staging_.x_floats = n_x;
  // Best effort: unpinned, the downloads are synchronous copies (correct, slower).
  std::string error;
  staging_.pinned = pinner_ && pinner_->pin(p, bytes, &error);
}

void OffloadMoeExecutor::release_staging() {
  if (staging_.pinned && staging_.block) pinner_->unpin(staging_.block.get());
  staging_.pinned = false;
  staging_.block.reset();
}

int OffloadMoeExecutor::gpu_slots() const {
  return gpu_cache_ ? gpu_cache_->n_slots() : 0;
}

void OffloadMoeExecutor::prepare() {
  if (prepared_) return;
  const OffloadConfig& cfg = opt_.config;
  const uint64_t slot_bytes = host_->slot_bytes();
  const bool per_layer = cfg.cache.allocation == SlotAllocation::kPerLayer;
  const int min_slots = K_ * (per_layer ? int(moe_layers_.size()) : 1);
  const int max_slots = locator_->present_count();
  max_T_ = std::max(1, cfg.device.max_batch);
  const int n_ahead = predictor_->lookahead();
  const MatView& r0 = model_.weights().layers[size_t(first_moe_)].router;

  // What the rest of the runtime holds now (weights, KV cache, scratch), as the backend counts it:
  // the CUDA backend and BudgetedBackend count every allocation.
  std::vector<MemoryItem> items;
  if (backend_.memory_used())
    items.push_back({"weights, KV cache, scratch", uint64_t(backend_.memory_used())});
  const uint64_t reserve = device_reserve(cfg.device, !backend_.host_memory());
  if (reserve) items.push_back({"driver/library reserve", reserve});
  items.push_back({"expert tables", uint64_t(kTables) * uint64_t(E_) * sizeof(ExpertWeights)});
  uint64_t router_bytes = 0;
  if (n_ahead > 0) {
    const int64_t rows = int64_t(moe_layers_.size()) * E_;
    router_bytes = dtype_data_bytes(r0.dtype, rows, H_) + scale_bytes(r0, rows) * (r0.mins ? 2 : 1);
    items.push_back({"lookahead routers", router_bytes});
    items.push_back({"lookahead logits", uint64_t(max_T_) * uint64_t(n_ahead) * uint64_t(E_) * 4});
  }
  const OffloadMode mode = cfg.offload.mode;
  const bool cpu_path = mode != OffloadMode::kStream || opt_.chooser;
  const bool calibrate_now = mode == OffloadMode::kHybrid && !opt_.chooser && cfg.offload.calibrate;
  if (cpu_path) items.push_back({"CPU expert results", uint64_t(max_T_) * uint64_t(H_) * 4});
  const size_t calib_bytes = calibration_scratch_bytes(H_, K_, max_T_);
  if (calibrate_now) items.push_back({"start-up calibration (freed after)", uint64_t(calib_bytes)});
  if (pinner_) items.push_back({"pinning probe (one slot)", slot_bytes});
  uint64_t budget = backend_.memory_budget() ? backend_.memory_budget() : cfg.device.vram_budget;
  if (budget == 0 && !backend_.host_memory())  // no budget on a GPU: what is free there now
    if (const auto m = cuda_memory_info(cfg.device.gpu)) budget = backend_.memory_used() + m->free;
  if (opt_.gpu_slots > 0) {
    vram_ = VramPlan{budget, items, slot_bytes, opt_.gpu_slots};
    if (opt_.gpu_slots < min_slots)
      fail(ErrorKind::kOutOfMemory, "{} GPU slots given, at least {} are needed", opt_.gpu_slots,
           min_slots);
  } else if (budget == 0) {
    vram_ = VramPlan{0, items, slot_bytes, max_slots};
  } else {
    vram_ = plan_vram(budget, items, slot_bytes, min_slots, max_slots,
                      "device.vram_budget (--vram-budget)");
  }

  // Workspaces, then the slots: every byte through `backend_`, so a budget is enforced.
  for (int i = 0; i < kTables; ++i)
    tables_.push_back(backend_.alloc(size_t(E_) * sizeof(ExpertWeights)));
  if (n_ahead > 0) build_lookahead();
  if (cpu_path) cpu_out_ = backend_.alloc(size_t(max_T_) * size_t(H_) * 4);
  if (calibrate_now) calib_scratch_ = backend_.alloc(calib_bytes);
  if (pinner_) probe_ = backend_.alloc(slot_bytes);
  slots_ = backend_.alloc(size_t(vram_.slots) * slot_bytes);

  CacheGeometry g;
  g.n_slots = vram_.slots;
  g.n_layers = n_layers_;
  g.n_experts = E_;
  g.allocation = cfg.cache.allocation;
  g.layers = moe_layers_;
  gpu_cache_ = make_slot_cache(g, cfg.cache.policy, cfg.cache.decay);
  PlannerOptions po;
  po.k = K_;
  po.miss_path = mode == OffloadMode::kCpu ? MissPath::kCpu : MissPath::kStream;
  CostParams defaults;
  defaults.expert_bytes = slot_bytes;
  if (cfg.device.copy_rate > 0) defaults.copy_rate = cfg.device.copy_rate;
  if (mode == OffloadMode::kHybrid && !opt_.chooser)
    hybrid_ = std::make_unique<HybridChooser>(CostModel(defaults), cfg.offload.adapt);
  po.chooser = opt_.chooser ? opt_.chooser : hybrid_.get();
  po.prefetch_share = cfg.cache.prefetch_share;
  po.prefetch_copies = cfg.cache.prefetch_copies;
  planner_ = std::make_unique<Planner>(*gpu_cache_, host_->cache(), po);
  mover_ = std::make_unique<ExpertMover>(*host_, *gpu_cache_, *copies_, slots_.as<uint8_t>());
  table_.assign(size_t(E_), ExpertWeights{});
  reserve_staging(max_T_);
  prepared_ = true;
  if (calibrate_now) calibrate();
  load_hot_set();
}

// All MoE routers stacked in layer order, so the routers of the n layers after any layer are
// one contiguous [n*E][H] view: the lookahead is one matmul.
void OffloadMoeExecutor::build_lookahead() {
  const int64_t rows = int64_t(moe_layers_.size()) * E_;
  const MatView& r0 = model_.weights().layers[size_t(first_moe_)].router;
  const size_t data_per_layer = dtype_data_bytes(r0.dtype, E_, H_), sc = scale_bytes(r0, E_);
  std::vector<uint8_t> data(data_per_layer * moe_layers_.size()), scales, mins;
  scales.resize(sc * moe_layers_.size());
  if (r0.mins) mins.resize(sc * moe_layers_.size());
  for (size_t i = 0; i < moe_layers_.size(); ++i) {
    const MatView& r = model_.weights().layers[size_t(moe_layers_[i])].router;
    if (r.dtype != r0.dtype || r.rows != E_ || r.cols != H_ || r.group != r0.group ||
        (r.mins != nullptr) != (r0.mins != nullptr))
      fail(ErrorKind::kUnsupported,
           "gate lookahead: the routers of layers {} and {} differ in type or shape", first_moe_,
           moe_layers_[i]);
    std::memcpy(data.data() + i * data_per_layer, r.data, data_per_layer);
    if (sc) std::memcpy(scales.data() + i * sc, r.scales, sc);
    if (r.mins) std::memcpy(mins.data() + i * sc, r.mins, sc);
  }
  routers_ = backend_.alloc(data.size());
  backend_.upload(routers_.get(), data.data(), data.size());
  routers_view_ = r0;
  routers_view_.rows = rows;
  routers_view_.data = routers_.get();
  if (sc) {
    routers_scales_ = backend_.alloc(scales.size());
    backend_.upload(routers_scales_.get(), scales.data(), scales.size());
    routers_view_.scales = routers_scales_.as<uint16_t>();
  }
  if (r0.mins) {
    routers_mins_ = backend_.alloc(mins.size());
    backend_.upload(routers_mins_.get(), mins.data(), mins.size());
    routers_view_.mins = routers_mins_.as<uint16_t>();
  }
  lookahead_logits_ =
      backend_.alloc(size_t(max_T_) * size_t(predictor_->lookahead()) * size_t(E_) * 4);
}

// Hybrid mode: the cost model from measurements on this machine and model. Host blobs: up to
// 4k distinct ones (so that rounds read weights no cache holds); in a cached host tier, slots
// not yet filled are written first (untouched pages would all read the same zero page).
void OffloadMoeExecutor::calibrate() {
  CalibrationInputs in;
  in.gpu = &backend_;
  in.cpu = cpu_backend_;
  in.copies = copies_.get();
  const int n = std::min(host_->n_slots(), 4 * K_);
  for (int s = 0; s < n; ++s) {
    uint8_t* p = host_->slot_ptr(s);
    if (host_->cache() && host_->cache()->slot(s).state == SlotState::kFree)
      std::memset(p, 0x11, host_->slot_bytes());
    in.host_blobs.push_back(p);
  }
  in.gpu_slots = slots_.as<uint8_t>();
  in.slot_bytes = host_->slot_bytes();
  in.layout = locator_->at(first_moe_, 0).layout;
  in.hidden = H_;
  in.k = K_;
  in.n_experts = E_;
  in.inter = expert_inter_;
  in.dtype = expert_dtype_;
  in.max_tokens = max_T_;
  in.gpu_table = tables_[0].as<ExpertWeights>();
  in.gpu_scratch = calib_scratch_.as<float>();
  in.defaults = hybrid_->model().params();
  const auto t0 = std::chrono::steady_clock::now();
  CostParams p = calibrate_offload(in, &calibration_);
  backend_.synchronize();
  calib_scratch_ = Buffer();
  hybrid_->set_model(CostModel(p));
  calibration_ +=
      fmt::format("calibrated in {:.2f} s\n",
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  log("hybrid offload: " + p.describe());
}

void OffloadMoeExecutor::load_hot_set() {
  const std::string& path = opt_.config.cache.hot_set;
  if (path.empty()) return;
  const auto entries = load_hot_set_file(path, n_layers_, E_);
  std::vector<ExpertId> skipped;
  PlanPass pass;
  pass.demand = planner_->plan_hot_set(entries, &skipped);
  mover_->start_pass(pass);
  mover_->finish_pass(pass);
  log(fmt::format("hot set: {} experts pinned in GPU slots{}", pass.demand.size(),
                  skipped.empty() ? "" : fmt::format(" ({} did not fit)", skipped.size())));
}

// Pinning runs in the background; once it has given up, warn once with the measured cost of
// copying from the pageable rest.
void OffloadMoeExecutor::check_pinning() {
  if (pin_checked_ || !pinner_) return;
  const PinStatus s = host_->arena().status();
  if (!s.done) return;
  pin_checked_ = true;
  if (!s.failed || !probe_.get()) return;
  const uint64_t n = host_->slot_bytes();
  copies_->synchronize();
  auto rate = [&](const uint8_t* src) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 4; ++i) copies_->wait(copies_->copy(probe_.get(), src, n));
    return 4.0 * double(n) /
           std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  const uint8_t* base = host_->arena().data();
  const bool have_pinned = s.pinned >= n;
  const bool have_pageable = s.total - s.pinned >= n;
  const double pageable = have_pageable ? rate(base + (s.total - n) / 4096 * 4096) : 0;
  const double pinned = have_pinned ? rate(base) : 0;
  log(fmt::format(
      "warning: pinning host memory stopped at {} of {} ({}); the rest stays pageable and copies "
      "from it run at {:.1f} GB/s{} (raise the locked-memory limit or lower memory.host_budget)",
      format_bytes(double(s.pinned)), format_bytes(double(s.total)), s.error, pageable / 1e9,
      have_pinned ? fmt::format(" against {:.1f} GB/s pinned", pinned / 1e9) : std::string()));
}

uint64_t OffloadMoeExecutor::host_bytes() const {
  return host_->bytes();
}

std::string OffloadMoeExecutor::describe() const {
  std::string s =
      fmt::format("experts: {} blobs of {}, host tier {} ({} slots, {}), predictor {}, policy {}\n",
                  locator_->present_count(), format_bytes(double(host_->slot_bytes())),
                  host_->full() ? "holds every expert" : "caches the NVMe tier", host_->n_slots(),
                  format_bytes(double(host_->bytes())), predictor_name(opt_.config.predictor.kind),
                  policy_name(opt_.config.cache.policy));
  if (prepared_) s += "GPU memory plan:\n" + vram_.describe();
  s += fmt::format("offload mode: {}\n", offload_mode_name(opt_.config.offload.mode));
  if (!calibration_.empty()) s += "calibration:\n" + calibration_;
  if (hybrid_)
    s += fmt::format("cost model: {}; measured/predicted scales: copy {:.2f}, CPU {:.2f}\n",
                     hybrid_->model().params().describe(), hybrid_->copy_scale(),
                     hybrid_->cpu_scale());
  if (NvmeReader* r = host_->reader())
    s += fmt::format("NVMe tier: {} ({}, {})\n", r->path(), r->direct() ? "O_DIRECT" : "buffered",
                     r->registered() ? "registered buffers" : "unregistered buffers");
  const PinStatus p = host_->arena().status();
  if (p.failed)
    s += fmt::format("host arena: {} of {} pinned ({})\n", format_bytes(double(p.pinned)),
                     format_bytes(double(p.total)), p.error);
  return s;
}

}  // namespace cs
