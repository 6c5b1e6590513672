// The offload engine as a MoeExecutor: experts live in GPU slots (a cache over a VRAM budget),
// pinned host RAM and the packed file on NVMe, and move just in time.
//
// Per MoE layer: the routed ids come to the host (one small copy), the predictor sees them (and,
// for gate lookahead, the next layers' routers applied to this layer's hidden state in one
// batched product), the planner (cache/) makes the layer's plan, the mover (offload/) runs its
// reads and copies, and each pass computes with one Backend::moe over a table of slot views.
// Experts the plan sends to the CPU run on `cpu_backend` from their host copies; the GPU result
// and theirs are summed. config.offload.mode picks who decides: every miss copied (stream),
// every miss on the CPU (cpu), or the hybrid scheduler (cache/hybrid_chooser.h) from a cost model
// calibrated at prepare() (runtime/engine/offload_calibration.h) and corrected by each pass's
// measured channel times.
//
// A pass with CPU experts runs both channels at once: the hidden state comes down, the GPU
// computes the hits while the CPU computes its experts and the demand copies land; then the
// GPU computes the copied experts (accumulating), and the CPU's partial sums go up and are
// added. With hybrid or cpu mode, results therefore differ from the stream path by the CPU
// kernel's int8 activation quantization and the order of the sum (docs/TESTING.md gives the
// measured tolerance).
//
// Results do not depend on placement: with every miss streamed, each token's experts are summed
// in router order by the same kernel as the resident executor, whatever the budget, policy or
// predictor (on a backend whose per-token result does not depend on the batch).
//
// The gate lookahead uses the hidden state entering this layer's MoE (the input of forward()),
// not the state after the layer: it is available one expert computation earlier, so the
// prefetch overlaps this layer's experts as well as the next layer's attention.
//
// Thread-safety: one thread at a time (the session's).
#pragma once

#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "offload/copy_engine.h"
#include "offload/offload_config.h"
#include "offload/pinner.h"
#include "offload/telemetry.h"
#include "offload/vram_plan.h"
#include "runtime/engine/moe_executor.h"
#include "runtime/model/model.h"

namespace cs {

class ExpertMover;
class HostTier;
class HybridChooser;
class MissPathChooser;
class Planner;
class PredictionScorer;
class Predictor;
class ReadFaultInjector;
class SlotCache;
struct ExpertLocator;
struct LayerPlan;
struct PlanPass;

struct OffloadOptions {
  OffloadConfig config;
  // Where the expert blobs are. Null: the packed file the model was loaded from
  // (Model::packed_file(), read through the NVMe tier), else the experts are packed into host
  // RAM from the model's host views at start-up (Hugging Face directories, tests).
  const ExpertLocator* locator = nullptr;
  // Null: memcpy for host backends (throttled to config.device.copy_rate), CUDA otherwise.
  std::unique_ptr<CopyEngine> copy_engine;
  // The backend's CUDA stream (cudaStream_t), so copies that overwrite a slot wait for the
  // kernels reading it and kernels can be queued behind copies. Null: the backend's
  // native_stream() when the executor makes the CUDA copy engine itself; otherwise (or where
  // that is null too) the executor synchronizes the backend instead.
  void* compute_stream = nullptr;
  // Computes the experts a plan sends to the CPU. Null: a CPU reference backend.
  Backend* cpu_backend = nullptr;
  // Decides each miss, overriding config.offload.mode (tests); null: the mode decides.
  MissPathChooser* chooser = nullptr;
  // Tests: exact GPU slot count instead of the VRAM plan (0: from the budget).
  int gpu_slots = 0;
  std::shared_ptr<ReadFaultInjector> faults;
  std::function<void(const std::string&)> log;  // progress and warnings; null: stderr
};

class OffloadMoeExecutor final : public MoeExecutor {
 public:
  // Builds the host tier (arena, pinning, loading or the NVMe reader), the caches, predictor and
  // planner. GPU slots come later (prepare()), once the rest of the runtime has taken its GPU
  // memory. Throws cs::Error naming the setting that does not fit.
  OffloadMoeExecutor(Backend& backend, const Model& model, OffloadOptions options);
  ~OffloadMoeExecutor() override;

  // Plans GPU memory and allocates the slots and workspaces: what `backend` has allocated so far
  // (when it is a BudgetedBackend) is fixed; the budget's rest becomes slots. Loads the hot set.
  // The first forward() calls it when nobody did.
  void prepare();
  void forward(int layer, const float* x, int T, const int32_t* ids, const float* weights,
               float* out) override;

  // Closes the current step and returns the counters so far.
  const OffloadTelemetry& telemetry();
  void reset_telemetry();
  const VramPlan& vram_plan() const { return vram_; }
  int gpu_slots() const;
  // For tests and the trace recorder: the plan of the last layer run.
  const LayerPlan& last_plan() const { return *last_plan_; }
  void set_plan_observer(std::function<void(const LayerPlan&)> f) { plan_observer_ = std::move(f); }
  std::string describe() const;  // slots, host tier, reader notes, calibration
  // Hybrid mode: the scheduler (its cost model and channel scales); null in other modes.
  const HybridChooser* hybrid() const { return hybrid_.get(); }
  uint64_t host_bytes() const;  // the host tier's arena (expert blobs in RAM)

 private:
  void build_lookahead();
  void load_hot_set();
  void begin_step(int T);
  void run_pass(const PlanPass& pass, int pass_no, const float* x, const int32_t* ids,
                const float* weights, float* out);
  struct CpuPass {
    float* out;            // the CPU experts' partial sums [T][H], host memory
    bool copied_queued;    // the copied experts' kernel is queued already
    uint64_t copied_mark;  // a backend mark right after that kernel (0: not queued)
  };
  // A pass's copy channel timed on the backend's timeline (from the pass's start to the end of
  // the copied experts' kernel), read at the next synchronization; with offload.device_timing
  // the hybrid's channel scales adapt from it (`observe`).
  struct PendingTiming {
    uint64_t from = 0, to = 0;
    bool observe = false;
    double predicted_copy = 0, predicted_cpu = 0, cpu_seconds = 0;
  };
  void settle_timing();
  CpuPass run_cpu(const PlanPass& pass, const MoeArgs& gpu, bool copied);
  void launch_gpu(const PlanPass& pass, bool hits, bool copied, const MoeArgs& args,
                  bool accumulate);
  Buffer& next_table();
  void calibrate();
  void fence();
  void check_pinning();
  void log(const std::string& s) const;

  Backend& backend_;
  const Model& model_;
  OffloadOptions opt_;
  int H_, K_, E_, n_layers_;
  DType expert_dtype_ = DType::kF32;  // every expert shares one format (MoeArgs::dtype, inter)
  int expert_inter_ = 0;
  std::vector<int> moe_layers_;
  int first_moe_ = -1;

  std::unique_ptr<ExpertLocator> own_locator_;
  const ExpertLocator* locator_ = nullptr;
  std::unique_ptr<Pinner> pinner_;  // before host_: the arena unpins through it
  std::unique_ptr<HostTier> host_;
  std::unique_ptr<SlotCache> gpu_cache_;
  std::unique_ptr<Predictor> predictor_;
  std::unique_ptr<PredictionScorer> scorer_;
  std::unique_ptr<Planner> planner_;
  std::unique_ptr<CopyEngine> copies_;
  std::unique_ptr<ExpertMover> mover_;
  std::unique_ptr<Backend> own_cpu_backend_;
  Backend* cpu_backend_ = nullptr;
  std::unique_ptr<LayerPlan> last_plan_;
  std::unique_ptr<HybridChooser> hybrid_;
  std::string calibration_;  // what calibrate() measured
  std::function<void(const LayerPlan&)> plan_observer_;

  bool prepared_ = false;
  VramPlan vram_;
  Buffer slots_;                // [slots][slot_bytes], backend memory
  std::vector<Buffer> tables_;  // per pass index: ExpertWeights[E], backend memory
  Buffer routers_;              // lookahead: routers of every MoE layer stacked [n_moe*E][H]
  Buffer routers_scales_, routers_mins_;
  MatView routers_view_;
  Buffer lookahead_logits_;  // [max_T][horizon*E]
  Buffer cpu_out_;           // CPU-path partial sums uploaded here [max_T][H]
  Buffer probe_;             // one slot: measures pageable copies when pinning fails
  Buffer calib_scratch_;     // freed after calibration
  int table_next_ = 0;       // next table of the ring, reset when the stream has drained
  int plan_backlog_ = 0;     // copies in flight when the current layer was planned
  PendingTiming timing_;
  int host_x_layer_ = -1;  // host_x_ holds this layer's whole hidden state (-1: not)
  bool pin_checked_ = false;
  int max_T_ = 0;

  // The host arrays each layer's transfers use: downloads of the routing ids and weights [T][K],
  // lookahead logits [T][ahead*E] and a decode-sized hidden state [T][H] (at most kStagedX
  // floats); uploads of the CPU experts' partial sums (`out`, as `x`) and the expert tables (a
  // ring of kTables x E, matching tables_). One block, page-locked through pinner_ when there is
  // one, so these are asynchronous copies: the downloads share one synchronization and the
  // uploads do not wait. Sized by reserve_staging().
  struct Staging {
    std::unique_ptr<void, void (*)(void*)> block{nullptr, std::free};
    bool pinned = false;
    int32_t* ids = nullptr;
    float *w = nullptr, *logits = nullptr, *x = nullptr, *out = nullptr;
    ExpertWeights* tables = nullptr;
    size_t x_floats = 0;
  };
  static constexpr size_t kStagedX = (1u << 20) / 4;
  void reserve_staging(int T);
  void release_staging();
  Staging staging_;
  std::vector<float> host_x_, host_cpu_out_;  // a large batch's hidden state and CPU partial sums
  std::vector<ExpertWeights> table_;          // the CPU experts' table of a pass [E]
  uint64_t step_ = 0;
  TelemetryRecorder telemetry_;
  double step_seconds_ = 0;
};

}  // namespace cs
