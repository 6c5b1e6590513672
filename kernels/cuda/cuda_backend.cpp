// CudaBackend: the Backend interface on one GPU. Host code only; the kernels are in *.cu files
// behind the launchers of launch.h. Every op checks its launch and reports failures as
// cs::Error(kDevice) with the op's name; scratch space grows on demand and is counted against the
// VRAM budget like any other allocation.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <unordered_map>

#include "common/units.h"
#include "kernels/cuda/cuda_util.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda_backend.h"

namespace cs {
namespace {

using cuda::check;
using cuda::check_blas;

class CudaGraph final : public Graph {
 public:
  explicit CudaGraph(cudaGraphExec_t exec) : exec_(exec) {}
  ~CudaGraph() override { cudaGraphExecDestroy(exec_); }
  cudaGraphExec_t exec() const { return exec_; }

 private:
  cudaGraphExec_t exec_;
};

// Scratch buffers, one per use, grown on demand.
enum Scratch { kAttn, kMoe, kConvX, kConvW, kRoute, kSample, kNumScratch };

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaBackendOptions& o) : opt_(o) {
    std::string why;
    const int n = cuda_device_count(&why);
    if (n == 0) fail(ErrorKind::kDevice, "cuda backend: no usable GPU: {}", why);
    if (o.device < 0 || o.device >= n)
      fail(ErrorKind::kDevice, "cuda backend: device {} does not exist ({} GPU{} found)", o.device,
           n, n == 1 ? "" : "s");
    check(cudaSetDevice(o.device), "cudaSetDevice");
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, o.device), "cudaGetDeviceProperties");
    sm_count_ = prop.multiProcessorCount;
    name_ = std::string("cuda:") + prop.name;
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    check_blas(cublasCreate(&blas_), "cublasCreate");
    check_blas(cublasSetStream(blas_, stream_), "cublasSetStream");
    check(cuda::gemv_init(), "gemv_init");
  }
  ~CudaBackend() override {
    if (stream_) cudaStreamSynchronize(stream_);
    for (cudaEvent_t e : marks_) cudaEventDestroy(e);
    for (auto& [p, bytes] : sizes_) cudaFree(p);  // scratch buffers are among them
    if (blas_) cublasDestroy(blas_);
    if (stream_) cudaStreamDestroy(stream_);
    cudaGetLastError();  // leave no error behind for the next launch to report
  }

  const char* name() const override { return name_.c_str(); }
  bool host_memory() const override { return false; }

  // ---- timing: a ring of events ----
  uint64_t mark() override {
    if (capturing_) return 0;
    if (marks_.empty()) {
      marks_.resize(kMarks);
      for (cudaEvent_t& e : marks_) check(cudaEventCreate(&e), "mark (cudaEventCreate)");
    }
    const uint64_t h = ++mark_count_;
    check(cudaEventRecord(marks_[(h - 1) % kMarks], stream_), "mark (cudaEventRecord)");
    return h;
  }
  double mark_seconds(uint64_t from, uint64_t to) override {
    if (from == 0 || to < from || mark_count_ - from >= kMarks) return -1.0;  // reused since
    float ms = 0;
    if (cudaEventElapsedTime(&ms, marks_[(from - 1) % kMarks], marks_[(to - 1) % kMarks]) !=
        cudaSuccess) {
      cudaGetLastError();  // not complete: unknown, not an error of the next op
      return -1.0;
    }
    return double(ms) * 1e-3;
  }

  // ---- memory ----
  Buffer alloc(size_t bytes) override { return Buffer(this, raw_alloc(bytes, "alloc"), bytes); }
  void upload(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "upload");
  }
  void download(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "download");
    check(cudaStreamSynchronize(stream_), "download (synchronize)");
  }
  void download_async(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "download");
  }
  void synchronize() override { check(cudaStreamSynchronize(stream_), "synchronize"); }
  void* native_stream() override { return stream_; }
  size_t memory_used() const override { return used_; }
  size_t memory_budget() const override { return opt_.vram_budget; }

  // ---- graphs ----
  bool supports_graphs() const override { return opt_.graphs; }
  void capture_begin() override {
    check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "capture_begin");
    capturing_ = true;
  }
  std::unique_ptr<Graph> capture_end() override {
    capturing_ = false;
    cudaGraph_t graph = nullptr;
    check(cudaStreamEndCapture(stream_, &graph), "capture_end");
    cudaGraphExec_t exec = nullptr;
    const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    check(e, "capture_end (instantiate)");
    return std::make_unique<CudaGraph>(exec);
  }
  void replay(Graph& g) override {
    check(cudaGraphLaunch(static_cast<CudaGraph&>(g).exec(), stream_), "replay");
    done("replay");
  }

  // ---- ops ----
  void embed(const MatView& table, const int32_t* ids, int T, float* out) override {
    check(cuda::embed(table, ids, T, out, stream_), "embed");
    done("embed");
  }
  void rmsnorm(float* x, const float* residual, const MatView& w, float eps, int T, int dim,
               float* out) override {
    check(cuda::rmsnorm(x, residual, w, eps, T, dim, out, stream_), "rmsnorm");
    done("rmsnorm");
  }
  void add(float* x, const float* y, int64_t n) override {
    check(cuda::add(x, y, n, stream_), "add");
    done("add");
  }
  void matmul(const float* x, int T, const MatView& w, float* out) override;
  void matmuls(const float* x, int T, const MatView* const* w, float* const* out, int n) override;
  void norm_rope(float* x, int T, int heads, int head_dim, const MatView& norm, float eps, int pos0,
                 const RopeArgs& rope) override {
    if (head_dim % 2 != 0)
      fail(ErrorKind::kInvalidArgument, "norm_rope: odd head_dim {}", head_dim);
    check(cuda::norm_rope(x, T, heads, head_dim, norm, eps, pos0, rope, stream_), "norm_rope");
    done("norm_rope");
  }
  void kv_store(const float* k, const float* v, int T, int pos0, int kv_dim, DType kv_dtype,
                void* k_cache, void* v_cache, const int32_t* pos) override {
    check(cuda::kv_store(k, v, T, pos0, kv_dim, kv_dtype, k_cache, v_cache, pos, stream_),
          "kv_store");
    done("kv_store");
  }
  void qk_norm_rope_store(float* q, float* k, const float* v, int T, int n_heads, int n_kv_heads,
                          int head_dim, const MatView& q_norm, const MatView& k_norm, float eps,
                          int pos0, const RopeArgs& rope, DType kv_dtype, void* k_cache,
                          void* v_cache) override {
    if (head_dim % 2 != 0)
      fail(ErrorKind::kInvalidArgument, "qk_norm_rope_store: odd head_dim {}", head_dim);
    check(cuda::qk_norm_rope_store(q, k, v, T, n_heads, n_kv_heads, head_dim, q_norm, k_norm, eps,
                                   pos0, rope, kv_dtype, k_cache, v_cache, stream_),
          "qk_norm_rope_store");
    done("qk_norm_rope_store");
  }
  void attention(const AttentionArgs& a) override {
    if (a.T > 1 && cuda::flash_attention_supported(a)) {
      check(cuda::flash_attention(a, stream_), "attention (flash)");
    } else {
      float* ws = static_cast<float*>(
          scratch(kAttn, cuda::attention_workspace_floats(a, sm_count_) * 4, "attention"));
      check(cuda::attention_split(a, ws, sm_count_, stream_), "attention (split-K)");
    }
    done("attention");
  }
  void qk_attention(const AttentionArgs& a, const QkPrologue& pro) override {
    if (!cuda::attention_prologue_fused_ok(a)) return Backend::qk_attention(a, pro);
    float* ws = static_cast<float*>(
        scratch(kAttn, cuda::attention_workspace_floats(a, sm_count_) * 4, "attention"));
    check(cuda::attention_split(a, ws, sm_count_, stream_, &pro), "attention (q/k prologue fused)");
    done("attention");
  }
  void router(const float* logits, int T, int n_experts, int k, bool renormalize, int32_t* ids,
              float* weights) override {
    check(cuda::router(logits, T, n_experts, k, renormalize, ids, weights, stream_), "router");
    done("router");
  }
  void route(const float* x, int T, const MatView& w, int k, bool renormalize, float* logits,
             int32_t* ids, float* weights) override {
    if (!cuda::route_fused_ok(w, x, T, k))
      return Backend::route(x, T, w, k, renormalize, logits, ids, weights);
    auto* counter = static_cast<unsigned*>(scratch(kRoute, 4, "route"));
    check(cuda::route_fused(x, T, w, k, renormalize, logits, ids, weights, counter, stream_),
          "route (fused router product and top-k)");
    done("route");
  }
  void moe(const MoeArgs& a) override;
  void sample(const float* logits, int V, const SampleArgs& s, const float* u,
              int32_t* token) override {
    if (!cuda::sample_supported(s))
      fail(ErrorKind::kUnsupported,
           "sample: the GPU sampler takes greedy or 1 <= top_k <= 1024 (got top_k {})", s.top_k);
    void* ws = scratch(kSample, cuda::kSampleScratchBytes, "sample");
    check(cuda::sample(logits, V, s, u, token, ws, stream_), "sample");
    done("sample");
  }
  bool supports_sampling(const SampleArgs& s) const override { return cuda::sample_supported(s); }

 protected:
  void free(void* ptr) override {
    auto it = sizes_.find(ptr);
    if (it == sizes_.end()) return;
    used_ -= it->second;
    sizes_.erase(it);
    // Errors here cannot be reported from a destructor; clear them so that the next launch
    // does not report them as its own.
    if (cudaFree(ptr) != cudaSuccess) cudaGetLastError();
  }

 private:
  void* raw_alloc(size_t bytes, const char* what) {
    if (capturing_)
      fail(ErrorKind::kInternal, "cuda backend: {} of {} during graph capture", what,
           format_bytes(bytes));
    if (opt_.vram_budget && used_ + bytes > opt_.vram_budget)
      fail(ErrorKind::kOutOfMemory,
           "cuda backend: {} of {} exceeds the VRAM budget of {} ({} already in use)", what,
           format_bytes(bytes), format_bytes(opt_.vram_budget), format_bytes(used_));
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, std::max<size_t>(bytes, 1));
    if (e != cudaSuccess) {
      cudaGetLastError();  // clear the sticky-free error state of the runtime
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      fail(ErrorKind::kOutOfMemory, "cuda backend: {} of {} failed: {} ({} of {} free on the card)",
           what, format_bytes(bytes), cudaGetErrorString(e), format_bytes(free_b),
           format_bytes(total_b));
    }
    sizes_[p] = bytes;
    used_ += bytes;
    return p;
  }

  // A scratch buffer of at least `bytes`, kept for later calls. Growing it outside a capture is
  // safe: cudaFree waits for the kernels that may still use the old one.
  void* scratch(Scratch s, size_t bytes, const char* what) {
    if (bytes <= scratch_bytes_[s]) return scratch_[s];
    if (capturing_)
      fail(ErrorKind::kInternal, "cuda backend: {} scratch must grow during graph capture", what);
    if (scratch_[s]) {
      check(cudaStreamSynchronize(stream_), what);
      free(scratch_[s]);
      scratch_[s] = nullptr;
      scratch_bytes_[s] = 0;
    }
    const size_t want = bytes + bytes / 4;  // headroom for the next, slightly larger request
    scratch_[s] = raw_alloc(want, what);
    scratch_bytes_[s] = want;
    // Zeroed once: kernels that keep counters in their scratch leave them at zero again.
    check(cudaMemsetAsync(scratch_[s], 0, want, stream_), what);
    return scratch_[s];
  }

  void done(const char* op) {
    if (opt_.check_each_op && !capturing_) {
      check(cudaGetLastError(), op);
      check(cudaStreamSynchronize(stream_), op);
    }
  }

  bool use_gemv(int T, const MatView& w) const;
  static DType input_type(const MatView& w);
  const void* convert_input(const float* x, int T, const MatView& w);
  void gemm(const void* xc, int T, const MatView& w, float* out);

  CudaBackendOptions opt_;
  std::string name_;
  int sm_count_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  bool capturing_ = false;
  static constexpr uint64_t kMarks = 64;
  std::vector<cudaEvent_t> marks_;
  uint64_t mark_count_ = 0;
  std::unordered_map<void*, size_t> sizes_;
  size_t used_ = 0;
  void* scratch_[kNumScratch] = {};
  size_t scratch_bytes_[kNumScratch] = {};
};

bool CudaBackend::use_gemv(int T, const MatView& w) const {
  const int gemm_min = w.quantized() ? std::max(opt_.gemm_min_tokens, 16) : opt_.gemm_min_tokens;
  return T < gemm_min && cuda::gemv_fits(w);
}

void CudaBackend::matmul(const float* x, int T, const MatView& w, float* out) {
  const MatView* one = &w;
  matmuls(x, T, &one, &out, 1);
}

// One conversion of x for every product that multiplies it in the same 16-bit type.
void CudaBackend::matmuls(const float* x, int T, const MatView* const* w, float* const* out,
                          int n) {
  if (T <= 0) return;
  const void* xc = nullptr;
  DType xc_type = DType::kF32;
  for (int i = 0; i < n; ++i) {
    if (use_gemv(T, *w[i])) {
      check(cuda::gemv(*w[i], x, T, out[i], stream_), "matmul (gemv)");
    } else {
      if (xc == nullptr || input_type(*w[i]) != xc_type) {
        xc = convert_input(x, T, *w[i]);
        xc_type = input_type(*w[i]);
      }
      gemm(xc, T, *w[i], out[i]);
    }
  }
  done("matmul");
}

// The type cuBLAS multiplies weights of this type in: F32, else F16 for F16 weights, else BF16.
DType CudaBackend::input_type(const MatView& w) {
  return w.dtype == DType::kF32 ? DType::kF32 : w.dtype == DType::kF16 ? DType::kF16 : DType::kBF16;
}

// x as cuBLAS takes it for w: itself for F32 weights, else converted into scratch.
const void* CudaBackend::convert_input(const float* x, int T, const MatView& w) {
  const DType ct = input_type(w);
  if (ct == DType::kF32) return x;
  void* xc = scratch(kConvX, size_t(T) * size_t(w.cols) * 2, "matmul (input conversion)");
  check(cuda::convert(x, int64_t(T) * w.cols, ct, xc, stream_), "matmul (convert)");
  return xc;
}

// out[T][N] = x[T][C] W^T through cuBLAS, x already in input_type(w). In column-major terms
// out^T (N x T) = W^T' x^T, where the row-major W [N][C] is the column-major C x N matrix:
// op(A) = transpose.
void CudaBackend::gemm(const void* xc, int T, const MatView& w, float* out) {
  const int N = int(w.rows), C = int(w.cols);
  const float one = 1.0f, zero = 0.0f;
  if (w.dtype == DType::kF32) {
    check_blas(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, N, T, C, &one,
                           static_cast<const float*>(w.data), C, static_cast<const float*>(xc), C,
                           &zero, out, N),
               "matmul (cublasSgemm)");
    return;
  }
  const cudaDataType_t ctype = input_type(w) == DType::kF16 ? CUDA_R_16F : CUDA_R_16BF;
  if (!w.quantized()) {
    check_blas(
        cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, N, T, C, &one, w.data, ctype, C, xc, ctype, C,
                     &zero, out, CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "matmul (cublasGemmEx)");
    return;
  }
  // Quantized weights: dequantize row blocks to BF16 (bounded scratch), one GEMM per block.
  const int64_t rows_per =
      std::max<int64_t>(1, std::min<int64_t>(N, (64 << 20) / (int64_t(C) * 2)));
  void* wc = scratch(kConvW, size_t(rows_per) * C * 2, "matmul (weight dequantization)");
  for (int64_t r0 = 0; r0 < N; r0 += rows_per) {
    const int64_t nr = std::min<int64_t>(rows_per, N - r0);
    MatView part = w;
    part.rows = nr;
    const size_t groups_per_row = w.group > 0 ? size_t(C / w.group) : 0;
    part.data = static_cast<const uint8_t*>(w.data) + dtype_data_bytes(w.dtype, r0, C);
    if (w.scales) part.scales = w.scales + r0 * groups_per_row;
    if (w.mins) part.mins = w.mins + r0 * groups_per_row;
    check(cuda::dequantize(part, DType::kBF16, wc, stream_), "matmul (dequantize)");
    check_blas(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, int(nr), T, C, &one, wc, CUDA_R_16BF,
                            C, xc, CUDA_R_16BF, C, &zero, out + r0, CUDA_R_32F, N,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "matmul (cublasGemmEx, dequantized)");
  }
}

void CudaBackend::moe(const MoeArgs& a) {
  if (a.T <= 0) return;
  if (a.k <= 0 || a.hidden <= 0 || a.inter <= 0)
    fail(ErrorKind::kInvalidArgument, "moe: k {}, hidden {} and inter {} must be positive", a.k,
         a.hidden, a.inter);
  if (a.T >= opt_.moe_grouped_min_tokens && cuda::moe_grouped_supported(a)) {
    void* ws =
        scratch(kMoe, cuda::moe_grouped_workspace_bytes(a.T, a.k, a.n_experts, a.inter, a.hidden),
                "moe (grouped)");
    check(cuda::moe_grouped(a, ws, stream_), "moe (grouped INT4 GEMM)");
  } else {
    if (a.hidden > cuda::gemv_max_cols() || a.inter > cuda::gemv_max_cols())
      fail(ErrorKind::kUnsupported, "moe: hidden {} or inter {} above the GEMV limit of {}",
           a.hidden, a.inter, cuda::gemv_max_cols());
    float* ws = static_cast<float*>(
        scratch(kMoe, cuda::moe_gemv_workspace_floats(a.T, a.k, a.inter, a.hidden) * 4, "moe"));
    check(cuda::moe_gemv(a, ws, stream_), "moe (GEMV)");
  }
  done("moe");
}

}  // namespace

bool cuda_backend_built() {
  return true;
}

int cuda_device_count(std::string* reason) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (reason) *reason = std::string(cudaGetErrorString(e)) + " (" + cudaGetErrorName(e) + ")";
    cudaGetLastError();
    return 0;
  }
  if (n == 0 && reason) *reason = "the driver reports no CUDA device";
  return n;
}

CudaDeviceInfo cuda_device_info(int device) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  CudaDeviceInfo i;
  i.name = prop.name;
  i.cc_major = prop.major;
  i.cc_minor = prop.minor;
  i.sm_count = prop.multiProcessorCount;
  i.total_memory = prop.totalGlobalMem;
  i.l2_bytes = size_t(prop.l2CacheSize);
  check(cudaSetDevice(device), "cudaSetDevice");
  size_t free_b = 0, total_b = 0;
  check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
  i.free_memory = free_b;
  return i;
}

std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options) {
  return std::make_unique<CudaBackend>(options);
}

std::unique_ptr<Backend> make_cuda_backend(int device) {
  CudaBackendOptions o;
  o.device = device;
  return make_cuda_backend(o);
}

}  // namespace cs
