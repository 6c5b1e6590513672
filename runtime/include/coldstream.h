/* coldstream: the public C API.
 *
 * Run huge Mixture-of-Experts language models on one consumer GPU from C99 or C++.
 *
 * Conventions
 * - Opaque handles: cs_model (weights, tokenizer; shareable) and cs_session (one conversation).
 * - Names are cs_<object>_<action>. Functions return a cs_status; CS_OK is 0. On failure the
 *   message is available from cs_last_error() in the calling thread until its next API call.
 *   No C++ exception ever crosses this boundary.
 * - Params structs start with their own size in bytes. Get one from cs_*_default_params(),
 *   change the fields you need and pass it by pointer; a NULL params pointer means defaults.
 *   A struct whose size field does not match is refused with CS_ERR_INVALID_ARGUMENT.
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
#define CS_API __declspec(dllimport)
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
  CS_ERR_INVALID_ARGUMENT = 1, /* a NULL handle, a bad params struct, a token out of range */
  CS_ERR_BAD_FILE = 2,         /* a malformed, truncated or corrupted model or config file */
  CS_ERR_NOT_FOUND = 3,        /* a missing file or tensor */
  CS_ERR_UNSUPPORTED = 4,      /* a valid file coldstream cannot run */
  CS_ERR_IO = 5,               /* the operating system refused a read or write */
  CS_ERR_OUT_OF_MEMORY = 6,    /* a budget too small, an allocation that failed */
  CS_ERR_CANCELLED = 7,        /* stopped by a callback or cs_session_cancel() */
  CS_ERR_DEVICE = 8,           /* a CUDA error */
  CS_ERR_CONTEXT_FULL = 9,     /* the conversation no longer fits the context window */
  CS_ERR_INTERNAL = 10
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

/* Progress of a load: fraction in [0, 1]. Return non-zero to cancel the load. */
typedef int (*cs_progress_fn)(float fraction, void* user_data);

typedef struct cs_model_params {
  size_t size;                 /* sizeof(cs_model_params) */
  const char* config_path;     /* a TOML configuration file; NULL = none */
  const char* config_toml;     /* TOML text, applied after config_path; NULL = none */
  const char* device;          /* "auto" (default: the GPU when there is one), "cpu" or "cuda" */
  uint64_t vram_budget_bytes;  /* GPU memory the runtime may use; 0 = the config's or all free */
  int32_t n_threads;           /* CPU threads; 0 = one per physical core */
  cs_progress_fn progress;     /* may be NULL */
  void* progress_user_data;
} cs_model_params;

CS_API cs_model_params cs_model_default_params(void);

/* Loads a packed coldstream file (.cst) or a Hugging Face model directory. */
CS_API cs_status cs_model_load(const char* path, const cs_model_params* params, cs_model** out_model);
/* Frees a model. REQUIRES: every session made from it has been freed. NULL is allowed. */
CS_API void cs_model_free(cs_model* model);

typedef struct cs_model_info {
  size_t size;                 /* sizeof(cs_model_info) */
  const char* architecture;    /* "qwen3_moe" or "mixtral"; valid while the model lives */
  int32_t n_vocab;
  int32_t n_layers;
  int32_t n_experts;           /* per MoE layer */
  int32_t n_experts_per_token;
  int32_t context_length;      /* the model's maximum positions */
} cs_model_info;

CS_API cs_status cs_model_get_info(const cs_model* model, cs_model_info* out_info);

/* Text to tokens. Writes up to `capacity` ids and stores the number needed in *n_tokens
 * (CS_OK only when everything fit). parse_special: recognise "<|im_start|>" and the like. */
CS_API cs_status cs_model_tokenize(const cs_model* model, const char* text, int parse_special, int32_t* tokens,
                                   size_t capacity, size_t* n_tokens);
/* Tokens to text (the raw bytes of the tokens, NUL-terminated when room allows). Stores the
 * byte count needed, without the NUL, in *length. */
CS_API cs_status cs_model_detokenize(const cs_model* model, const int32_t* tokens, size_t n_tokens, char* text,
                                     size_t capacity, size_t* length);

/* ---- sessions ---------------------------------------------------------------------------- */

typedef struct cs_session_params {
  size_t size;           /* sizeof(cs_session_params) */
  int32_t n_ctx;         /* context window in tokens; 0 = min(model context, 4096) */
  int32_t thinking;      /* 1 = let reasoning models think (default), 0 = answer directly */
  const char* system_prompt; /* NULL = none */
} cs_session_params;

CS_API cs_session_params cs_session_default_params(void);
CS_API cs_status cs_session_new(cs_model* model, const cs_session_params* params, cs_session** out_session);
CS_API void cs_session_free(cs_session* session); /* NULL is allowed */

typedef struct cs_sampling_params {
  size_t size;               /* sizeof(cs_sampling_params) */
  float temperature;         /* 0 = greedy; default 0.7 */
  int32_t top_k;             /* 0 = off; default 20 */
  float top_p;               /* 1 = off; default 0.8 */
  float min_p;               /* 0 = off; default 0 */
  float repetition_penalty;  /* 1 = off; default 1 */
  uint64_t seed;             /* default 0 */
  int32_t max_tokens;        /* generate at most this many tokens; default 512 */
} cs_sampling_params;

CS_API cs_sampling_params cs_sampling_default_params(void);

/* Chat level. Roles: "system", "user", "assistant". */
CS_API cs_status cs_session_add_message(cs_session* session, const char* role, const char* content);
CS_API cs_status cs_session_set_thinking(cs_session* session, int enabled);
/* The prompt the chat template renders for the conversation so far, with the generation prompt.
 * Stores the byte count needed (without the NUL) in *length. */
CS_API cs_status cs_session_render(const cs_session* session, char* text, size_t capacity, size_t* length);

/* Streaming output: `text` holds `length` bytes of whole UTF-8 characters (never a split
 * character). is_reasoning is 1 inside <think> ... </think>. Return non-zero to stop. */
typedef int (*cs_text_fn)(const char* text, size_t length, int is_reasoning, void* user_data);

/* Generates the assistant's reply to the conversation, streaming it to `on_text` (may be NULL),
 * and appends it to the conversation. Returns CS_ERR_CANCELLED when stopped by the callback or
 * cs_session_cancel() (the partial reply is kept), CS_ERR_CONTEXT_FULL when the conversation no
 * longer fits (cs_session_reset() starts over). */
CS_API cs_status cs_session_generate(cs_session* session, const cs_sampling_params* params, cs_text_fn on_text,
                                     void* user_data);
/* Forgets the conversation (the system prompt stays). */
CS_API cs_status cs_session_reset(cs_session* session);
/* Asks a running cs_session_generate or cs_session_eval to stop soon. Any thread. */
CS_API void cs_session_cancel(cs_session* session);

/* Token level: append tokens to the context and run them. */
CS_API cs_status cs_session_eval(cs_session* session, const int32_t* tokens, size_t n_tokens);
/* Logits after the last evaluated token: *logits points to n_vocab floats, valid until the
 * session's next call. */
CS_API cs_status cs_session_logits(const cs_session* session, const float** logits, size_t* n_vocab);
/* Samples the next token from the current logits (does not evaluate it). */
CS_API cs_status cs_session_sample(cs_session* session, const cs_sampling_params* params, int32_t* token);

typedef struct cs_stats {
  size_t size;                   /* sizeof(cs_stats) */
  double prefill_tokens_per_s;   /* last generation */
  double decode_tokens_per_s;    /* last generation */
  double time_to_first_token_s;  /* last generation */
  int32_t context_used;          /* tokens in the context */
  int32_t context_size;
  double expert_hit_rate;        /* GPU expert cache hits / expert uses, whole session; 0 without offload */
  uint64_t bytes_from_ram;       /* expert bytes copied from host RAM, whole session */
  uint64_t bytes_from_disk;      /* expert bytes read from disk, whole session */
  uint64_t gpu_memory_bytes;     /* device memory held by the model and session */
  uint64_t host_memory_bytes;    /* host memory held for experts */
} cs_stats;

CS_API cs_status cs_session_get_stats(const cs_session* session, cs_stats* out_stats);

#ifdef __cplusplus
}
#endif

#endif /* COLDSTREAM_H */
