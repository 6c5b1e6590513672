// The runtime under one conversation: the backend for a device, the offload engine when the
// configuration asks for it, and the Session on them. `coldstream chat`, the C API and the
// token-level commands (generate, logits) build their sessions here, so one configuration file
// means the same everywhere.
//
// One configuration file feeds everything: [chat] and [sampling] belong to the chat (read by its
// owner), every other table is the offload engine's (docs/CONFIG.md). The offload engine runs
// when a key other than the device's own (device.backend, device.gpu, device.context,
// device.max_batch, device.kv_dtype) is set, in the file or by a flag, except on a GPU where the
// whole model fits the budget (resident_fit): then the session runs resident and logs why.
//
// Session::cancel() stops a forward pass between MoE layers (cs::Error kCancelled; the context
// stays as before the call) when the offload engine runs or the backend has no graphs to replay;
// resident on a GPU it takes effect between tokens and prefill chunks.
//
// Thread-safety: a SessionRuntime is used by one thread at a time, except cancel() on its
// Session. A Model may be shared by several SessionRuntimes on several threads: each has its own
// backend, KV cache and, with offload, its own expert cache and host tier.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "kernels/backend.h"
#include "offload/budgeted_backend.h"
#include "offload/offload_config.h"
#include "offload/telemetry.h"
#include "runtime/engine/offload_moe_executor.h"
#include "runtime/engine/session.h"
#include "runtime/model/model.h"

namespace cs {

class CancellableMoe;

// The backend for a device name: "cpu", "cuda", "cuda:N" or "auto" (GPU 0 when one is usable,
// else the CPU, telling `log` why). Throws cs::Error (kInvalidArgument) naming `what` (the flag
// or field) for anything else.
std::unique_ptr<Backend> make_device_backend(const std::string& device, const LogFn& log = {},
                                             const std::string& what = "--device");

// N of "cuda" (0) or "cuda:N" (N an int >= 0); nullopt for anything else.
std::optional<int> cuda_device_number(const std::string& device);
// The same, throwing cs::Error (kInvalidArgument) naming `what` for anything else.
int cuda_device_index(const std::string& device, const std::string& what);

// The KV cache's element type for device.kv_dtype on a resolved device ("cpu", "cuda", "cuda:N"):
// "auto" is F16 on CUDA (half the memory of F32, as llama.cpp's default; 3 more mantissa bits
// than BF16: a tenth of its logit error, tests/model/test_session_runtime.cpp) and F32 on the
// CPU. Throws cs::Error (kInvalidArgument) naming the key for anything else.
DType kv_cache_dtype(const std::string& setting, const std::string& device);

// The configuration of a session's runtime: where to compute and how experts move.
struct RuntimeConfig {
  std::string device = "auto";  // a --device value; "auto" defers to offload.device.backend
  OffloadConfig offload;        // device.context is the KV cache length (0: the model's, <= 4096)
  bool use_offload = false;     // run experts through OffloadMoeExecutor

  // Applies a TOML file or text: the offload tables, skipping [chat] and [sampling]. Errors name
  // the file (or `origin`), line and column.
  void load_file(const std::string& path);
  void load_text(std::string_view text, const std::string& origin);
  // Sets one key ("cache.policy") from command-line text; `flag` names it in errors.
  void set(const std::string& key, const std::string& value, const std::string& flag);

 private:
  void note_key(const std::string& key);
};

// The tables of a configuration file that are not the offload engine's.
inline constexpr std::string_view kChatTables[] = {"chat", "sampling"};

// Applies the offload tables of TOML `text` to `config` (parse_offload_config: unknown sections
// and keys are errors naming origin:line:column), skipping the tables in kChatTables. Returns
// the offload keys the text set ("cache.policy").
std::vector<std::string> apply_offload_toml(std::string_view text, const std::string& origin,
                                            OffloadConfig& config);

// The backend, wrapped in the VRAM budget, and the offload executor. Use: make it, build the
// Session on backend() with executor(), then call executor()->prepare().
class OffloadRuntime {
 public:
  // `device`: a --device value; "auto" defers to config.device.backend and config.device.gpu.
  // The CUDA backend enforces device.vram_budget itself; other backends are wrapped in a
  // BudgetedBackend that does.
  OffloadRuntime(const Model& model, const OffloadConfig& config,
                 const std::string& device = "auto", OffloadOptions options = {});
  Backend& backend() { return budgeted_ ? *budgeted_ : *device_; }
  OffloadMoeExecutor* executor() { return executor_.get(); }
  const OffloadConfig& config() const { return config_; }

 private:
  OffloadConfig config_;
  std::unique_ptr<Backend> device_;
  std::unique_ptr<BudgetedBackend> budgeted_;
  std::unique_ptr<Backend> cpu_;  // computes the experts a plan sends to the CPU
  std::unique_ptr<OffloadMoeExecutor> executor_;
};

// Memory a session's runtime holds, for statistics.
struct RuntimeMemory {
  uint64_t device_bytes = 0;       // on the backend: weights, KV cache, scratch, expert slots
  uint64_t host_expert_bytes = 0;  // the offload engine's host tier (pinned RAM for experts)
};

// Under offload settings on a GPU: a note with the sizes when the whole model fits `budget`
// resident, beside `reserve` for the driver and libraries (experts counted from one expert's size,
// so no blob is read); nullopt when it does not, or when `budget` is 0.
std::optional<std::string> resident_fit(const Model& model, const TransformerOptions& options,
                                        uint64_t budget, uint64_t reserve);

class SessionRuntime {
 public:
  // `n_ctx` > 0 overrides config.offload.device.context. `log` hears notes and warnings (null:
  // stderr). Throws cs::Error naming the setting that does not fit.
  SessionRuntime(const Model& model, const RuntimeConfig& config, int n_ctx = 0, LogFn log = {});
  ~SessionRuntime();
  SessionRuntime(const SessionRuntime&) = delete;
  SessionRuntime& operator=(const SessionRuntime&) = delete;

  const Model& model() const { return model_; }
  Session& session() { return *session_; }
  const Session& session() const { return *session_; }
  Backend& backend() { return *active_; }
  // The offload executor and its counters, or null when every expert is resident.
  OffloadMoeExecutor* executor() { return offload_ ? offload_->executor() : nullptr; }
  const OffloadTelemetry* telemetry();
  RuntimeMemory memory() const;
  // "resident on cpu" or "offload on cuda:0: 40 GPU slots, ..." for banners.
  std::string describe() const;

 private:
  // Under offload settings on a GPU: builds the resident session instead when every expert fits
  // (resident_fit), logging why; false (nothing built) when it does not.
  bool resident_on_gpu(const RuntimeConfig& config, const SessionOptions& so, const LogFn& log);

  const Model& model_;
  std::string device_name_;
  std::unique_ptr<Backend> backend_;  // resident
  Backend* active_ = nullptr;         // backend_, or the offload runtime's
  std::unique_ptr<OffloadRuntime> offload_;
  std::unique_ptr<MoeExecutor> resident_moe_;   // the CPU's, so cancel_moe_ can wrap it
  std::unique_ptr<CancellableMoe> cancel_moe_;  // stops between layers on Session::cancel()
  std::unique_ptr<Session> session_;
};

}  // namespace cs
