// The C API's handles and its edge: every exported function runs its body through guard(), which
// turns a cs::Error (or any other exception) into a status and the per-thread message, so no
// exception crosses the boundary. The handles wrap the same SessionRuntime and ChatSession the
// `coldstream chat` REPL runs on.
#pragma once

#include <atomic>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>

#include "coldstream.h"
#include "common/error.h"
#include "runtime/chat/chat_session.h"
#include "runtime/engine/sampler.h"
#include "runtime/engine/session_runtime.h"
#include "runtime/model/model.h"

struct cs_model {
  std::unique_ptr<cs::Model> model;
  cs::RuntimeConfig config;  // each session builds its runtime from it
  std::atomic<int> sessions{0};
};

struct cs_session {
  cs_model* model = nullptr;
  std::unique_ptr<cs::SessionRuntime> rt;
  std::unique_ptr<cs::ChatSession> chat;  // null when the model has no tokenizer
  std::atomic<bool> cancelled{false};     // cs_session_eval's flag (chat has its own)
  std::optional<cs::Sampler> sampler;     // cs_session_sample's, with the params it was made for
  cs_sampling_params sampler_params{};
};

namespace cs::capi {

// Records the message for cs_last_error() in this thread and returns `status`. Never throws.
cs_status set_error(cs_status status, std::string_view message) noexcept;
void clear_error() noexcept;
cs_status status_of(ErrorKind kind) noexcept;

// Throws cs::Error (kInvalidArgument) "`fn`: `what`" unless `ok`.
void require(bool ok, const char* fn, const char* what);

// A params struct from the caller: NULL means defaults; a wrong size field is refused.
template <typename T>
T params_or_default(const T* p, T defaults, const char* fn, const char* name) {
  if (!p) return defaults;
  if (p->size != sizeof(T))
    fail(ErrorKind::kInvalidArgument, "{}: {}.size is {} but this library's {} has {} bytes", fn,
         name, p->size, name, sizeof(T));
  return *p;
}

// `s` into a caller buffer: *length = s.size(); fits when capacity > s.size() (the NUL);
// text NULL with capacity 0 only measures.
cs_status copy_out(std::string_view s, char* text, size_t capacity, size_t* length, const char* fn);

// Runs `body` (returning cs_status) at the API edge.
template <typename F>
cs_status guard(const char* fn, F&& body) noexcept {
  try {
    const cs_status s = body();
    if (s == CS_OK) clear_error();
    return s;
  } catch (const Error& e) {
    const std::string_view msg = e.what();
    // Messages of argument checks already start with the function's name.
    if (msg.starts_with(fn)) return set_error(status_of(e.kind()), msg);
    try {
      return set_error(status_of(e.kind()), std::string(fn) + ": " + std::string(msg));
    } catch (...) {
      return set_error(status_of(e.kind()), msg);
    }
  } catch (const std::bad_alloc&) {
    return set_error(CS_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return set_error(CS_ERR_INTERNAL, e.what());
  } catch (...) {
    return set_error(CS_ERR_INTERNAL, "unknown exception");
  }
}

}  // namespace cs::capi
