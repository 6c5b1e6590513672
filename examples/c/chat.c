/* A plain C99 program on the coldstream C API: loads a model and streams the reply to a prompt.
 *
 *   cc -std=c99 chat.c $(pkg-config --cflags --libs coldstream) -o chat
 *   ./chat MODEL.cst "Why is the sky blue?" [--max-tokens N] [--no-think]
 *
 * The reasoning of a thinking model goes to stderr, the answer to stdout. Exit status: 0 on
 * success, 1 on an error (the message from cs_last_error() is printed), 2 on bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coldstream.h>

static int on_progress(float fraction, void* user_data) {
  (void)user_data;
  fprintf(stderr, "\rloading %3.0f%%", 100.0 * fraction);
  if (fraction >= 1.0f) fputc('\n', stderr);
  return 0; /* non-zero would cancel the load */
}

static int on_text(const char* text, size_t length, int is_reasoning, void* user_data) {
  (void)user_data;
  fwrite(text, 1, length, is_reasoning ? stderr : stdout);
  fflush(is_reasoning ? stderr : stdout);
  return 0; /* non-zero would stop the reply */
}

static int fail(const char* what, cs_status status) {
  fprintf(stderr, "chat: %s: %s (%s)\n", what, cs_last_error(), cs_status_string(status));
  return 1;
}

int main(int argc, char** argv) {
  const char* path;
  const char* prompt;
  int max_tokens = 128, think = 1, i;
  cs_model_params mp;
  cs_session_params sp;
  cs_sampling_params gp;
  cs_model* model = NULL;
  cs_session* session = NULL;
  cs_status st;
  cs_stats stats;
  int rc = 0;

  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL PROMPT [--max-tokens N] [--no-think]\n", argv[0]);
    return 2;
  }
  path = argv[1];
  prompt = argv[2];
  for (i = 3; i < argc; ++i) {
    if (strcmp(argv[i], "--max-tokens") == 0 && i + 1 < argc)
      max_tokens = atoi(argv[++i]);
    else if (strcmp(argv[i], "--no-think") == 0)
      think = 0;
    else {
      fprintf(stderr, "chat: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  fprintf(stderr, "coldstream %s (built against %d.%d.%d)\n", cs_version(), CS_VERSION_MAJOR,
          CS_VERSION_MINOR, CS_VERSION_PATCH);

  mp = cs_model_default_params();
  mp.progress = on_progress;
  st = cs_model_load(path, &mp, &model);
  if (st != CS_OK) return fail("loading the model", st);

  sp = cs_session_default_params();
  sp.thinking = think;
  sp.system_prompt = "You are a helpful assistant.";
  st = cs_session_new(model, &sp, &session);
  if (st != CS_OK) {
    rc = fail("creating a session", st);
    goto done;
  }
  st = cs_session_add_message(session, "user", prompt);
  if (st != CS_OK) {
    rc = fail("adding the message", st);
    goto done;
  }
  gp = cs_sampling_default_params();
  gp.max_tokens = max_tokens;
  st = cs_session_generate(session, &gp, on_text, NULL);
  putchar('\n');
  if (st != CS_OK && st != CS_ERR_CONTEXT_FULL) {
    rc = fail("generating", st);
    goto done;
  }
  stats.size = sizeof stats;
  if (cs_session_get_stats(session, &stats) == CS_OK)
    fprintf(stderr, "%d tokens, %.1f tok/s, first token after %.3f s, context %d of %d\n",
            stats.generated_tokens, stats.decode_tokens_per_s, stats.time_to_first_token_s,
            stats.context_used, stats.context_size);
done:
  cs_session_free(session);
  cs_model_free(model);
  return rc;
}
