#!/usr/bin/env bash
# `coldstream chat` with stdin and stdout not terminals: the conversation comes from stdin, plain
# text goes out (no colours, no prompts), commands work, errors are clear.
# Usage: chat_pipe.sh COLDSTREAM MAKE_CHAT_MODEL
set -uo pipefail
cs=$1
make_model=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passes=0
fails=0
check() {  # description, command...
  local what=$1
  shift
  if "$@"; then
    echo "ok: $what"
    passes=$((passes + 1))
  else
    echo "FAIL: $what"
    fails=$((fails + 1))
  fi
}
"$make_model" "$tmp/m" || exit 1
export HOME=$tmp

# A scripted conversation with commands; replies are noise (random weights) but must be there.
printf 'Hello there\n/think off\nSecond message, \\\ncontinued\n/system Be brief.\n"""\nblock line 1\nblock line 2\n"""\n/stats\n/save %s\n/quit\nnever read\n' \
  "$tmp/conv.json" | "$cs" chat -m "$tmp/m" --max-tokens 6 --seed 3 >"$tmp/out" 2>"$tmp/err"
rc=$?
check "exit status 0" test $rc -eq 0
check "no terminal escapes in piped output" bash -c "! grep -q $'\x1b' '$tmp/out'"
check "output is valid UTF-8" iconv -f UTF-8 -t UTF-8 "$tmp/out" -o /dev/null
check "no banner or prompt on stdout" bash -c "! grep -qE '^(> |coldstream chat)' '$tmp/out'"
check "/think off acknowledged" grep -q '\[thinking off\]' "$tmp/out"
check "/stats shows speed and context" grep -q 'context: .* of 256 tokens used' "$tmp/out"
# /save writes JSON with one field per line (nlohmann dump(2)); plain grep reads it.
check "/save kept three user turns, multi-line input joined" \
  grep -qzF '"content": "Second message, \ncontinued"' "$tmp/conv.json"
check "a \"\"\" block is one message" grep -qF '"content": "block line 1\nblock line 2\n"' "$tmp/conv.json"
check "three replies saved" test "$(grep -c '"role": "assistant"' "$tmp/conv.json")" -eq 3
check "/system and /think were saved" grep -q '"system": "Be brief."' "$tmp/conv.json"
check "/quit stops reading" bash -c "! grep -q 'never read' '$tmp/conv.json'"

# /load restores a conversation; the next reply continues it.
printf '/load %s\n/save %s\nOne more\n/save %s\n' "$tmp/conv.json" "$tmp/again.json" "$tmp/more.json" |
  "$cs" chat -m "$tmp/m" --max-tokens 4 >"$tmp/out2" 2>&1
check "/load then /save round trips" cmp -s "$tmp/conv.json" "$tmp/again.json"
check "the loaded conversation grows" test "$(grep -c '"role": ' "$tmp/more.json")" -eq 8

# A context window that fills up: a clear message naming /reset, and /reset recovers.
yes 'The router predicts the next word again and again.' | head -8 >"$tmp/long"
printf '/reset\nHi\n' >>"$tmp/long"
"$cs" chat -m "$tmp/m" --ctx 64 --max-tokens 30 <"$tmp/long" >"$tmp/out3" 2>"$tmp/err3"
check "context full is reported with /reset" grep -q 'context window of 64 tokens.*/reset' "$tmp/err3"
check "after /reset the chat goes on" grep -q 'conversation cleared' "$tmp/out3"

# Configuration: a TOML file, flags win, unknown keys are named.
printf '[chat]\nsystem = "From config"\nmax_tokens = 3\n[sampling]\ntemperature = 0.0\n' >"$tmp/c.toml"
printf 'Hi\n/save %s\n' "$tmp/c.json" | "$cs" chat -m "$tmp/m" -c "$tmp/c.toml" >/dev/null 2>&1
check "--config sets the system prompt" grep -q 'From config' "$tmp/c.json"
printf '[sampling]\ntemprature = 1\n' >"$tmp/bad.toml"
"$cs" chat -m "$tmp/m" -c "$tmp/bad.toml" </dev/null >/dev/null 2>"$tmp/err4"
check "an unknown config key is named" grep -q "unknown key 'sampling.temprature'" "$tmp/err4"

# The offload engine on the host-only backend: one --config file feeds the chat and the engine,
# and /stats shows the engine's counters next to speed, time to first token and context.
check "/stats says when the offload engine is off" grep -q '^offload: off' "$tmp/out"
printf '[chat]\nmax_tokens = 8\n[device]\nbackend = "cpu"\nvram_budget = "8MiB"\n[cache]\npolicy = "lru"\n[predictor]\nkind = "lookahead"\n' >"$tmp/off.toml"
printf 'Hello there\nAnd more\n/stats\n' | "$cs" chat -m "$tmp/m" -c "$tmp/off.toml" --seed 1 >"$tmp/out8" 2>"$tmp/err8"
check "chat with an offload config exits 0" test $? -eq 0
check "/stats: tok/s and time to first token" grep -qE 'tok/s, time to first token [0-9.]+ s' "$tmp/out8"
check "/stats: context used" grep -q 'context: .* of 256 tokens used' "$tmp/out8"
check "/stats: expert hit rate" grep -qE '^offload experts: [1-9][0-9]* uses, hit rate [0-9.]+%' "$tmp/out8"
check "/stats: bytes per tier and stall" grep -qE '^offload bytes per token: .* host->GPU, .* NVMe->host; stall' "$tmp/out8"
check "/stats: predictor precision and recall" grep -qE '^offload predictor: precision [0-9.]+%, recall [0-9.]+%' "$tmp/out8"
check "/stats: host RAM held for experts" grep -qE '^memory: .* of host RAM for experts' "$tmp/out8"
check "[chat] max_tokens from the same file" grep -q 'last reply: 8 tokens' "$tmp/out8"
# The same through flags, --ctx beside them.
printf 'Hi\n/stats\n' | "$cs" chat -m "$tmp/m" --backend cpu --vram-budget 8MiB --policy lfu --ctx 128 \
  --max-tokens 4 >"$tmp/out9" 2>"$tmp/err9"
check "offload flags on chat" grep -qE '^offload experts: [1-9]' "$tmp/out9"
check "--ctx with the offload flags" grep -q 'context: .* of 128 tokens used' "$tmp/out9"
printf '[chat]\nmax_tokens = 8\n[cache]\npolcy = "lru"\n' >"$tmp/bad2.toml"
"$cs" chat -m "$tmp/m" -c "$tmp/bad2.toml" </dev/null >/dev/null 2>"$tmp/err10"
check "an unknown offload key is named with its line" grep -q "bad2.toml:4:1: unknown key 'cache.polcy'" "$tmp/err10"

# No --model: the default model, or a clear error naming where it was looked for.
repo=$(cd "$(dirname "$0")/../.." && pwd)
if ls "$repo"/models/coldstream-demo* >/dev/null 2>&1; then
  printf 'Hi\n' | "$cs" chat --max-tokens 2 >/dev/null 2>"$tmp/err5"
  check "the default model chats" test $? -eq 0
else
  printf 'Hi\n' | "$cs" chat >/dev/null 2>"$tmp/err5"
  check "a missing default model is explained" grep -q 'default model is not here.*--model' "$tmp/err5"
fi
"$cs" chat -m "$repo/tests/fixtures/qwen3moe" </dev/null >/dev/null 2>"$tmp/err6"
check "a model without a tokenizer is refused clearly" grep -q 'has no tokenizer' "$tmp/err6"

# `coldstream template` and `coldstream tokenize` on the same model.
printf '[{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]' >"$tmp/msgs.json"
"$cs" template -m "$tmp/m" --messages "$tmp/msgs.json" --no-think >"$tmp/tpl"
printf '<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n' >"$tmp/tpl.want"
check "template prints the Qwen3 prompt byte for byte" cmp -s "$tmp/tpl" "$tmp/tpl.want"
printf '[{"role": "user"}]' >"$tmp/bad.json"
"$cs" template -m "$tmp/m" --messages "$tmp/bad.json" >/dev/null 2>"$tmp/err7"
check "a malformed messages file is named" grep -q "bad.json: message 0 has no 'content'" "$tmp/err7"
check "tokenize --ids-only prints the ids of special and plain text" \
  grep -qE '^([0-9]+,)?2,([0-9]+,)*3$' <("$cs" tokenize -m "$tmp/m" --ids-only '<|im_start|>The model<|im_end|>')
qwen="$repo/build/testdata/qwen3-tokenizer/tokenizer.json"
if [[ -f "${CS_TESTDATA_DIR:-$repo/build/testdata}/qwen3-tokenizer/tokenizer.json" ]]; then
  qwen="${CS_TESTDATA_DIR:-$repo/build/testdata}/qwen3-tokenizer/tokenizer.json"
  check "tokenize with the Qwen3 vocabulary" \
    test "$("$cs" tokenize -t "$qwen" --ids-only 'Hello, my dog is cute')" = "9707,11,847,5562,374,18838"
fi

echo "$passes passed, $fails failed"
test $fails -eq 0
