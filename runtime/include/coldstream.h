/* coldstream: the public C API.
 *
 * Run huge Mixture-of-Experts language models on one consumer GPU from C99 or C++.
 * docs/C_API.md has a worked example; examples/c/chat.c is a complete program.
 *
 * Conventions
 * - Opaque handles: cs_model (weights, tokenizer, configuration; shareable) and cs_session (one
 *   conversation: its KV cache, its backend and, with offload, its expert cache).
 * - Names are cs_<object>_<action>. Functions return a cs_status; CS_OK is 0. On failure the
 *   message is available from cs_last_error() in the calling thread until its next API call.
 *   No C++ exception ever crosses this boundary.
 * - Params structs start with their own size in bytes. Get one from cs_*_default_params(),
 *   change the fields you need and pass it by pointer; a NULL params pointer means defaults.
 *   A struct whose size field does not match is refused with CS_ERR_INVALID_ARGUMENT. Structs
 *   the library fills (cs_model_info, cs_stats) also need their size field set by the caller.
 * - Strings in are UTF-8, NUL-terminated. Strings out are copied into caller buffers; each such
 *   function reports the length it needed, so a call with capacity 0 measures.
 *
 * Thread-safety
 * - A cs_model may be shared by several sessions on several threads at once.
 * - A cs_session is used by one thread at a time; cs_session_cancel() is the exception and
 *   may be called from any thread at any time.
 * - cs_version(), cs_status_string() and cs_last_error() may be called from any thread.
 */
#ifndef COLDSTREAM_H
#define COLDSTREAM_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#if defined(CS_BUILDING_LIBRARY)
#define CS_API __declspec(dllexport)
#else
#define CS_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define CS_API __attribute__((visibility("default")))
#else
#define CS_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define CS_VERSION_MAJOR 0
#define CS_VERSION_MINOR 1
#define CS_VERSION_PATCH 0

typedef enum cs_status {
  CS_OK = 0,
  CS_ERR_INVALID_ARGUMENT = 1,  /* a NULL handle, a bad params struct, a token out of range */
  CS_ERR_BAD_FILE = 2,          /* a malformed, truncated or corrupted model or config file */
  CS_ERR_NOT_FOUND = 3,         /* a missing file or tensor */
  CS_ERR_UNSUPPORTED = 4,       /* a valid file coldstream cannot run; a model without tokenizer */
  CS_ERR_IO = 5,                /* the operating system refused a read or write */
  CS_ERR_OUT_OF_MEMORY = 6,     /* a budget too small, an allocation that failed */
  CS_ERR_CANCELLED = 7,         /* stopped by a callback or cs_session_cancel() */
  CS_ERR_DEVICE = 8,            /* a CUDA error */
  CS_ERR_CONTEXT_FULL = 9,      /* the conversation no longer fits the context window */
  CS_ERR_BUFFER_TOO_SMALL = 10, /* an output buffer was too small; the length needed is stored */
  CS_ERR_INTERNAL = 11
} cs_status;

typedef struct cs_model cs_model;
typedef struct cs_session cs_session;

/* "0.1.0": the library's version at run time (compare with the CS_VERSION_* macros). */
CS_API const char* cs_version(void);
/* A short English name of a status ("invalid argument"). Never NULL. */
CS_API const char* cs_status_string(cs_status status);
/* The message of the last failed call in this thread, or "" after a success. Never NULL. */
CS_API const char* cs_last_error(void);

/* ---- models ----------------------------------------------------------------------------- */

/* Progress of a load: fraction in [0, 1], called at 0, as the weights are read into memory, and
 * at 1. Return non-zero to cancel the load (cs_model_load then returns CS_ERR_CANCELLED). */
typedef int (*cs_progress_fn)(float fraction, void* user_data);

typedef struct cs_model_params {
  size_t size; /* sizeof(cs_model_params) */
  /* The configuration: a TOML file, then TOML text, then the fields below (each wins over what
   * comes before it). Keys: docs/CONFIG.md; [chat] and [sampling] tables are accepted and left
   * to the command-line chat. Setting any offload key (beyond device.backend, device.gpu,
   * device.context, device.max_batch) runs experts through the offload engine. */
  const char* config_path; /* NULL = none */
  const char* config_toml; /* NULL = none */
  const char* device; /* "auto" (default: the GPU when there is one), "cpu", "cuda", "cuda:N" */
  uint64_t
      vram_budget_bytes; /* GPU memory a session may use; 0 = the config's (default: all free) */
  uint64_t
      host_budget_bytes; /* host RAM for experts per session; 0 = the config's (default: all) */
  int32_t offload;       /* 1 = always use the offload engine, 0 = when the config asks (default) */
  int32_t n_threads;     /* CPU threads; 0 = the config's (default: one per physical core) */
  cs_progress_fn progress; /* may be NULL */
  void* progress_user_data;
} cs_model_params;

CS_API cs_model_params cs_model_default_params(void);

/* Loads a packed coldstream file (.cst) or a Hugging Face model directory. Sets *out_model to
 * NULL on failure. */
CS_API cs_status cs_model_load(const char* path, const cs_model_params* params,
                               cs_model** out_model);
/* Frees a model. REQUIRES: every session made from it has been freed. NULL is allowed. */
CS_API void cs_model_free(cs_model* model);

typedef struct cs_model_info {
  size_t size;              /* sizeof(cs_model_info), set by the caller */
  const char* architecture; /* "qwen3_moe" or "mixtral"; valid while the model lives */
  const char* description;  /* what the model says it is ("" when it does not); same lifetime */
  int32_t n_vocab;
  int32_t n_layers;
  int32_t n_experts; /* per MoE layer */
  int32_t n_experts_per_token;
  int32_t context_length; /* the model's maximum positions */
  int32_t has_tokenizer;  /* 0: only the token-level API works */
} cs_model_info;

CS_API cs_status cs_model_get_info(const cs_model* model, cs_model_info* out_info);

/* Text to tokens. Writes up to `capacity` ids and stores the number needed in *n_tokens;
 * CS_ERR_BUFFER_TOO_SMALL when they did not all fit (capacity 0 measures).
 * parse_special: recognise "<|im_start|>" and the like. */
CS_API cs_status cs_model_tokenize(const cs_model* model, const char* text, int parse_special,
                                   int32_t* tokens, size_t capacity, size_t* n_tokens);
/* Tokens to text (the raw bytes of the tokens, NUL-terminated). Stores the byte count needed,
 * without the NUL, in *length; CS_ERR_BUFFER_TOO_SMALL unless capacity > *length. */
CS_API cs_status cs_model_detokenize(const cs_model* model, const int32_t* tokens, size_t n_tokens,
                                     char* text, size_t capacity, size_t* length);

/* ---- sessions ---------------------------------------------------------------------------- */

typedef struct cs_session_params {
  size_t size;      /* sizeof(cs_session_params) */
  int32_t n_ctx;    /* context window in tokens; 0 = the config's (default: min(model, 4096)) */
  int32_t thinking; /* 1 = let reasoning models think (default), 0 = answer directly */
  const char* system_prompt; /* NULL or "" = none; copied */
} cs_session_params;

CS_API cs_session_params cs_session_default_params(void);
/* A new conversation on `model`: its own backend, KV cache and (with offload) expert cache. */
CS_API cs_status cs_session_new(cs_model* model, const cs_session_params* params,
                                cs_session** out_session);
CS_API void cs_session_free(cs_session* session); /* NULL is allowed */

typedef struct cs_sampling_params {
  size_t size;                /* sizeof(cs_sampling_params) */
  float temperature;          /* 0 = greedy; default 0.7 */
  int32_t top_k;              /* 0 = off; default 20 */
  float top_p;                /* 1 = off; default 0.8 */
  float min_p;                /* 0 = off; default 0 */
  float repetition_penalty;   /* 1 = off; default 1 */
  uint64_t seed;              /* default 0 */
  int32_t max_tokens;         /* cs_session_generate: at most this many tokens; default 512 */
  int32_t ignore_stop_tokens; /* cs_session_generate: 1 = go on past <|im_end|>, EOS and the
                               * like until max_tokens (benchmarks, tests); default 0 */
} cs_sampling_params;

CS_API cs_sampling_params cs_sampling_default_params(void);

/* Chat level. Roles: "system" (sets the system prompt), "user", "assistant". */
CS_API cs_status cs_session_add_message(cs_session* session, const char* role, const char* content);
CS_API cs_status cs_session_set_thinking(cs_session* session, int enabled);
/* The prompt the model's chat template renders for the conversation so far, with the generation
 * prompt. Stores the byte count needed (without the NUL) in *length; CS_ERR_BUFFER_TOO_SMALL
 * unless capacity > *length. */
CS_API cs_status cs_session_render(const cs_session* session, char* text, size_t capacity,
                                   size_t* length);

/* Streaming output: `text` holds `length` bytes of whole UTF-8 characters (never a split
 * character). is_reasoning is 1 inside <think> ... </think>. Return non-zero to stop. */
typedef int (*cs_text_fn)(const char* text, size_t length, int is_reasoning, void* user_data);

/* Generates the assistant's reply to the conversation, streaming it to `on_text` (may be NULL),
 * and appends it to the conversation. Returns CS_ERR_CANCELLED when stopped by the callback or
 * cs_session_cancel() (the partial reply is kept), CS_ERR_CONTEXT_FULL when the conversation no
 * longer fits (cs_session_reset() starts over). Reaching max_tokens is CS_OK. */
CS_API cs_status cs_session_generate(cs_session* session, const cs_sampling_params* params,
                                     cs_text_fn on_text, void* user_data);
/* Forgets the conversation and the context (the system prompt stays). */
CS_API cs_status cs_session_reset(cs_session* session);
/* Asks the cs_session_generate or cs_session_eval running now to stop soon: before the next MoE
 * layer with the offload engine or on the CPU, else after the token or the prefill chunk (at most
 * 128 tokens) in progress. Any thread; a no-op with no call running, or for NULL. */
CS_API void cs_session_cancel(cs_session* session);

/* Token level: append tokens to the context and run them. CS_ERR_CONTEXT_FULL when they do not
 * fit; CS_ERR_CANCELLED when cancelled (the chunks already run stay in the context). */
CS_API cs_status cs_session_eval(cs_session* session, const int32_t* tokens, size_t n_tokens);
/* Logits after the last evaluated token: *logits points to n_vocab floats, valid until the
 * session's next call. */
CS_API cs_status cs_session_logits(const cs_session* session, const float** logits,
                                   size_t* n_vocab);
/* Samples the next token from the current logits (does not evaluate it). Draws continue one
 * random sequence while the params stay the same; new params (or a new seed) restart it. */
CS_API cs_status cs_session_sample(cs_session* session, const cs_sampling_params* params,
                                   int32_t* token);
/* The tokens in the context (the n_past first ones are copied when capacity allows). */
CS_API cs_status cs_session_tokens(const cs_session* session, int32_t* tokens, size_t capacity,
                                   size_t* n_past);

typedef struct cs_stats {
  size_t size; /* sizeof(cs_stats), set by the caller */
  /* the last cs_session_generate */
  double prefill_tokens_per_s; /* prompt tokens evaluated (not those reused from the cache) / s */
  double decode_tokens_per_s;  /* tokens after the first / time after the first */
  double time_to_first_token_s;
  int32_t prompt_tokens; /* the rendered prompt */
  int32_t reused_tokens; /* of those, already in the KV cache */
  int32_t generated_tokens;
  /* now */
  int32_t context_used; /* tokens in the context */
  int32_t context_size;
  /* the offload engine, whole session; zeros when every expert is resident */
  int32_t offload_active;     /* 1 when experts move through the offload engine */
  uint64_t expert_uses;       /* (layer, expert) uses */
  double expert_hit_rate;     /* uses found in a GPU slot / uses */
  uint64_t bytes_from_ram;    /* expert bytes copied from host RAM to the GPU */
  uint64_t bytes_from_disk;   /* expert bytes read from the model file into host RAM */
  double stall_s;             /* time blocked waiting for expert reads and copies */
  double predictor_precision; /* prefetched experts that were used / prefetched */
  double predictor_recall;    /* used experts that were predicted / used */
  /* memory held by the session */
  uint64_t gpu_memory_bytes;  /* on the GPU (with offload on the CPU backend: its simulated
                               * GPU budget in use; 0 resident on the CPU) */
  uint64_t host_memory_bytes; /* host RAM for experts (the offload engine's host tier) */
} cs_stats;

CS_API cs_status cs_session_get_stats(cs_session* session, cs_stats* out_stats);

#ifdef __cplusplus
}
#endif

#endif /* COLDSTREAM_H */
