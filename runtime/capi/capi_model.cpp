// The C API: versions, errors, models, tokenizing. Sessions are in capi_session.cpp.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "runtime/capi/capi_internal.h"
#include "runtime/tokenizer/tokenizer.h"

namespace cs::capi {
namespace {

thread_local std::string t_last_error;

}  // namespace

const char* last_error() noexcept;

cs_status set_error(cs_status status, std::string_view message) noexcept {
  try {
    t_last_error.assign(message);
  } catch (...) {
    t_last_error.clear();  // no memory for the message: the status still says what happened
  }
  return status;
}

void clear_error() noexcept {
  t_last_error.clear();
}

const char* last_error() noexcept {
  return t_last_error.c_str();
}

cs_status status_of(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::kInvalidArgument:
      return CS_ERR_INVALID_ARGUMENT;
    case ErrorKind::kBadFile:
      return CS_ERR_BAD_FILE;
    case ErrorKind::kNotFound:
      return CS_ERR_NOT_FOUND;
    case ErrorKind::kUnsupported:
      return CS_ERR_UNSUPPORTED;
    case ErrorKind::kIo:
      return CS_ERR_IO;
    case ErrorKind::kOutOfMemory:
      return CS_ERR_OUT_OF_MEMORY;
    case ErrorKind::kCancelled:
      return CS_ERR_CANCELLED;
    case ErrorKind::kDevice:
      return CS_ERR_DEVICE;
    case ErrorKind::kContextFull:
      return CS_ERR_CONTEXT_FULL;
    case ErrorKind::kInternal:
      return CS_ERR_INTERNAL;
  }
  return CS_ERR_INTERNAL;
}

void require(bool ok, const char* fn, const char* what) {
  if (!ok) fail(ErrorKind::kInvalidArgument, "{}: {}", fn, what);
}

cs_status copy_out(std::string_view s, char* text, size_t capacity, size_t* length,
                   const char* fn) {
  require(length != nullptr, fn, "length is NULL");
  require(text != nullptr || capacity == 0, fn, "text is NULL but capacity is not 0");
  *length = s.size();
  if (!text) return CS_OK;  // measuring
  if (capacity <= s.size()) {
    if (capacity > 0) text[0] = '\0';
    return set_error(
        CS_ERR_BUFFER_TOO_SMALL,
        fmt::format("{}: {} bytes and the NUL do not fit a buffer of {}", fn, s.size(), capacity));
  }
  std::memcpy(text, s.data(), s.size());
  text[s.size()] = '\0';
  return CS_OK;
}

namespace {

// Reads the model's non-expert weights page by page (bringing a mapped file into memory),
// reporting progress; returns false when the callback asks to stop.
bool read_weights(const Model& m, cs_progress_fn progress, void* user) {
  std::vector<const MatView*> views;
  const ModelWeights& w = m.weights();
  for (const MatView* v : {&w.embed, &w.final_norm, &w.lm_head}) views.push_back(v);
  for (const LayerWeights& l : w.layers)
    for (const MatView* v : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.q_norm, &l.k_norm,
                             &l.ffn_norm, &l.router, &l.dense.gate, &l.dense.up, &l.dense.down})
      views.push_back(v);
  size_t total = 0;
  for (const MatView* v : views)
    if (!v->empty()) total += dtype_data_bytes(v->dtype, v->rows, v->cols);
  constexpr size_t kPage = 4096;
  const size_t step = std::max(total / 16, kPage);  // about 16 reports
  size_t done = 0, next_report = step;
  volatile unsigned char sink = 0;  // keeps the reads
  for (const MatView* v : views) {
    if (v->empty()) continue;
    const auto* p = static_cast<const unsigned char*>(v->data);
    const size_t n = dtype_data_bytes(v->dtype, v->rows, v->cols);
    for (size_t i = 0; i < n; i += kPage) {
      sink = sink + p[i];
      if (done + i >= next_report) {
        next_report += step;
        if (progress && progress(float(double(done + i) / double(total)), user) != 0) return false;
      }
    }
    done += n;
  }
  return true;
}

void check_device(const std::string& d) {
  if (d == "auto" || d == "cpu") return;
  if (cuda_device_number(d)) return;
  fail(ErrorKind::kInvalidArgument,
       "cs_model_load: device '{}' is not auto, cpu, cuda or cuda:N (params.device)", d);
}

}  // namespace
}  // namespace cs::capi

using namespace cs;
using namespace cs::capi;

extern "C" {

const char* cs_version(void) {
  return "0.1.0";
}

const char* cs_status_string(cs_status status) {
  switch (status) {
    case CS_OK:
      return "ok";
    case CS_ERR_INVALID_ARGUMENT:
      return "invalid argument";
    case CS_ERR_BAD_FILE:
      return "bad file";
    case CS_ERR_NOT_FOUND:
      return "not found";
    case CS_ERR_UNSUPPORTED:
      return "unsupported";
    case CS_ERR_IO:
      return "input/output error";
    case CS_ERR_OUT_OF_MEMORY:
      return "out of memory";
    case CS_ERR_CANCELLED:
      return "cancelled";
    case CS_ERR_DEVICE:
      return "device error";
    case CS_ERR_CONTEXT_FULL:
      return "context full";
    case CS_ERR_BUFFER_TOO_SMALL:
      return "buffer too small";
    case CS_ERR_INTERNAL:
      return "internal error";
  }
  return "unknown status";
}

const char* cs_last_error(void) {
  return last_error();
}

cs_model_params cs_model_default_params(void) {
  cs_model_params p;
  std::memset(&p, 0, sizeof p);
  p.size = sizeof p;
  p.device = "auto";
  return p;
}

cs_status cs_model_load(const char* path, const cs_model_params* params, cs_model** out_model) {
  static constexpr const char* fn = "cs_model_load";
  return guard(fn, [&] {
    require(out_model != nullptr, fn, "out_model is NULL");
    *out_model = nullptr;
    require(path != nullptr && *path != '\0', fn, "path is NULL or empty");
    const cs_model_params p =
        params_or_default(params, cs_model_default_params(), fn, "cs_model_params");
    require(p.n_threads >= 0, fn, "params.n_threads is negative");
    require(p.offload == 0 || p.offload == 1, fn, "params.offload is not 0 or 1");
    auto m = std::make_unique<cs_model>();
    RuntimeConfig& rc = m->config;
    rc.device = p.device && *p.device ? p.device : "auto";
    check_device(rc.device);
    if (p.config_path) rc.load_file(p.config_path);
    if (p.config_toml) rc.load_text(p.config_toml, "config_toml");
    if (p.vram_budget_bytes > 0)
      rc.set("device.vram_budget", std::to_string(p.vram_budget_bytes), "params.vram_budget_bytes");
    if (p.host_budget_bytes > 0)
      rc.set("memory.host_budget", std::to_string(p.host_budget_bytes), "params.host_budget_bytes");
    if (p.n_threads > 0) rc.offload.cpu.threads = p.n_threads;
    if (p.offload == 1) rc.use_offload = true;

    if (p.progress && p.progress(0.0f, p.progress_user_data) != 0)
      fail(ErrorKind::kCancelled, "the progress callback cancelled the load of {}", path);
    m->model = Model::load(path);
    if (const Tokenizer* tok = m->model->tokenizer();
        tok && tok->vocab_size() > m->model->config().vocab_size)
      fail(ErrorKind::kBadFile,
           "{}: the tokenizer has {} tokens but the model's vocabulary (vocab_size) is {}", path,
           tok->vocab_size(), m->model->config().vocab_size);
    if (!read_weights(*m->model, p.progress, p.progress_user_data) ||
        (p.progress && p.progress(1.0f, p.progress_user_data) != 0))
      fail(ErrorKind::kCancelled, "the progress callback cancelled the load of {}", path);
    *out_model = m.release();
    return CS_OK;
  });
}

void cs_model_free(cs_model* model) {
  delete model;
}

cs_status cs_model_get_info(const cs_model* model, cs_model_info* out_info) {
  static constexpr const char* fn = "cs_model_get_info";
  return guard(fn, [&] {
    require(model != nullptr, fn, "model is NULL");
    require(out_info != nullptr, fn, "out_info is NULL");
    if (out_info->size != sizeof(cs_model_info))
      fail(ErrorKind::kInvalidArgument,
           "{}: out_info->size is {} but this library's cs_model_info has {} bytes", fn,
           out_info->size, sizeof(cs_model_info));
    const ModelConfig& c = model->model->config();
    out_info->architecture = c.model_type.c_str();
    out_info->description = model->model->description().c_str();
    out_info->n_vocab = c.vocab_size;
    out_info->n_layers = c.n_layers;
    out_info->n_experts = c.n_experts;
    out_info->n_experts_per_token = c.n_experts_per_tok;
    out_info->context_length = c.max_position_embeddings;
    out_info->has_tokenizer = model->model->tokenizer() != nullptr;
    return CS_OK;
  });
}

cs_status cs_model_tokenize(const cs_model* model, const char* text, int parse_special,
                            int32_t* tokens, size_t capacity, size_t* n_tokens) {
  static constexpr const char* fn = "cs_model_tokenize";
  return guard(fn, [&] {
    require(model != nullptr, fn, "model is NULL");
    require(text != nullptr, fn, "text is NULL");
    require(n_tokens != nullptr, fn, "n_tokens is NULL");
    require(tokens != nullptr || capacity == 0, fn, "tokens is NULL but capacity is not 0");
    const Tokenizer* tok = model->model->tokenizer();
    if (!tok) fail(ErrorKind::kUnsupported, "{}: {} has no tokenizer", fn, model->model->path());
    const std::vector<int32_t> ids = tok->encode(text, parse_special != 0);
    *n_tokens = ids.size();
    if (!tokens) return CS_OK;  // measuring
    if (ids.size() > capacity)
      return set_error(
          CS_ERR_BUFFER_TOO_SMALL,
          fmt::format("{}: {} tokens do not fit a buffer of {}", fn, ids.size(), capacity));
    std::copy(ids.begin(), ids.end(), tokens);
    return CS_OK;
  });
}

cs_status cs_model_detokenize(const cs_model* model, const int32_t* tokens, size_t n_tokens,
                              char* text, size_t capacity, size_t* length) {
  static constexpr const char* fn = "cs_model_detokenize";
  return guard(fn, [&] {
    require(model != nullptr, fn, "model is NULL");
    require(tokens != nullptr || n_tokens == 0, fn, "tokens is NULL but n_tokens is not 0");
    const Tokenizer* tok = model->model->tokenizer();
    if (!tok) fail(ErrorKind::kUnsupported, "{}: {} has no tokenizer", fn, model->model->path());
    for (size_t i = 0; i < n_tokens; ++i)
      if (tokens[i] < 0 || tokens[i] >= tok->vocab_size())
        fail(ErrorKind::kInvalidArgument, "{}: token {} at index {} is outside 0 .. {}", fn,
             tokens[i], i, tok->vocab_size() - 1);
    return copy_out(tok->decode(std::span<const int32_t>(tokens, n_tokens)), text, capacity, length,
                    fn);
  });
}

}  // extern "C"
