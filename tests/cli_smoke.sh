#!/usr/bin/env bash
# The coldstream command end to end: convert, info --verify, logits of the packed file, --force,
# synth with its GGUF twin, and errors that name the bad flag. Usage: cli_smoke.sh COLDSTREAM FIXTURES
set -u
cs=$1 fx=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "cli_smoke: $*"; exit 1; }

"$cs" convert -q "$fx/qwen3moe" "$tmp/q.cst" >/dev/null || fail "convert failed"
"$cs" info "$tmp/q.cst" --verify --vram-budget 200KiB >"$tmp/info" 2>&1 || fail "info failed"
grep -q "all 24 expert checksums match" "$tmp/info" || fail "info --verify: $(cat "$tmp/info")"
grep -q "VRAM budget" "$tmp/info" || fail "info --vram-budget printed nothing"
"$cs" logits -m "$tmp/q.cst" --ids 1,2,3 | grep -q '^\[\[' || fail "logits of a packed file"
"$cs" convert -q "$fx/qwen3moe" "$tmp/q.cst" 2>"$tmp/err" && fail "overwrote without --force"
grep -q -- "--force" "$tmp/err" || fail "no --force hint: $(cat "$tmp/err")"
"$cs" convert -q --force --experts q4-asym/64 "$fx/qwen3moe" "$tmp/q.cst" >/dev/null || fail "--force"
"$cs" convert -q --experts q5/32 "$fx/qwen3moe" "$tmp/x.cst" 2>"$tmp/err" && fail "accepted q5/32"
grep -q -- "--experts" "$tmp/err" || fail "bad format not named: $(cat "$tmp/err")"
"$cs" synth --shape qwen3-999b --out "$tmp/s.cst" 2>"$tmp/err" && fail "accepted a bad --shape"
grep -q "qwen3-235b-a22b" "$tmp/err" || fail "bad --shape does not list shapes: $(cat "$tmp/err")"
"$cs" bench --kernels moe-30b,bogus 2>"$tmp/err" && fail "bench accepted an unknown --kernels name"
grep -q "\-\-kernels: unknown benchmark 'bogus'.*moe-235b.*read-probe" "$tmp/err" ||
  fail "bad --kernels does not name the flag and the choices: $(cat "$tmp/err")"
"$cs" synth -q --shape tiny-mixtral --out "$tmp/s.cst" --gguf "$tmp/s.gguf" --probe-tokens 32 \
  >"$tmp/synth" || fail "synth failed"
grep -q "normalized entropy" "$tmp/synth" || fail "synth printed no routing entropy"
"$cs" convert -q "$tmp/s.gguf" "$tmp/g.cst" >/dev/null || fail "GGUF twin does not convert"
[ "$("$cs" logits -m "$tmp/s.cst" --ids 4,5)" = "$("$cs" logits -m "$tmp/g.cst" --ids 4,5)" ] ||
  fail "GGUF twin logits differ"
# The untimed warm-up (32 tokens by default) must fit the context when the timed runs are shorter.
"$cs" bench-offload --synthetic tiny --modes cpu --prefill 0 --prompt 4 --generate 3 --no-channels \
  >/dev/null 2>"$tmp/warm" || fail "bench-offload with the default warm-up: $(tail -2 "$tmp/warm")"
# bench-offload --rounds: each mode runs once per round; the comparison takes each mode's median.
"$cs" bench-offload --synthetic tiny --modes hybrid,cpu,stream --rounds 3 --prefill 0 --prompt 4 \
  --generate 3 --warmup 0 --no-channels --json "$tmp/b.json" >"$tmp/bench" 2>/dev/null ||
  fail "bench-offload --rounds failed"
[ "$(grep -c '^mode ' "$tmp/bench")" = 9 ] || fail "bench-offload --rounds 3: not 9 runs"
grep -q "median (min-max) of 3 rounds: mode hybrid" "$tmp/bench" ||
  fail "bench-offload --rounds 3: no spread line: $(tail -3 "$tmp/bench")"
python3 - "$tmp/b.json" <<'PY' || fail "bench-offload --rounds: medians wrong in $tmp/b.json"
import json, sys
d = json.load(open(sys.argv[1]))
m = d["modes"]
assert m["rounds"] == 3 and len(m["decode_ratio_per_round"]) == 3
for name, med in m["median_decode_tok_s"].items():
    runs = sorted(r["decode_tok_s"] for r in d["runs"] if r["name"] == name)
    assert [r["round"] for r in d["runs"] if r["name"] == name] == [0, 1, 2]
    assert med == runs[1], (name, med, runs)
for name, (lo, hi) in m["decode_range_tok_s"].items():
    runs = [r["decode_tok_s"] for r in d["runs"] if r["name"] == name]
    assert lo == min(runs) and hi == max(runs) and lo <= m["median_decode_tok_s"][name] <= hi
best = max(v for k, v in m["median_decode_tok_s"].items() if k != "mode hybrid")
assert abs(m["decode_ratio"] - m["median_decode_tok_s"]["mode hybrid"] / best) < 1e-9
# --no-channels: no rate was measured, so no bound is printed (a guessed rate gave bounds a run
# exceeded by 2x).
assert all(r["decode_bound"] == 0 and r["combined_bound"] == 0 for r in d["runs"]), d["runs"]
# The hybrid runs record their calibration and final channel scales; the others have none.
for r in d["runs"]:
    h = r["hybrid"]
    if r["name"] != "mode hybrid":
        assert h is None, r
        continue
    assert h["copy_rate"] > 0 and h["dram_rate"] > 0 and h["cpu_expert_seconds"] > 0, h
    assert 1 / 3 <= h["copy_scale"] <= 3 and 1 / 3 <= h["cpu_scale"] <= 3, h
    assert "GB/s" in h["cost_model"], h
PY
# With the channels measured: copies and DRAM reads also both at once; the combined-channel bound
# uses what they reached together.
# Each mode's own decode bound counts the channel it used: the cpu mode's is its misses at the DRAM
# read rate (it used to count copies only and print thousands of times the combined bound).
"$cs" bench-offload --synthetic tiny --modes hybrid,cpu --prefill 0 --prompt 4 --generate 3 \
  --warmup 0 --dram 64MiB --json "$tmp/c.json" >"$tmp/bench" 2>/dev/null ||
  fail "bench-offload with channels failed"
grep -q "both at once: copies" "$tmp/bench" || fail "no both-at-once channel line: $(head -2 "$tmp/bench")"
python3 - "$tmp/c.json" <<'PY' || fail "bench-offload channels wrong in $tmp/c.json"
import json, sys
d = json.load(open(sys.argv[1]))
c = d["channels"]
assert c["copy_rate"] > 0 and c["dram_read_rate"] > 0, c
assert c["copy_rate_with_reads"] > 0 and c["dram_read_with_copies"] > 0, c
assert abs(c["combined_rate"] - c["copy_rate_with_reads"] - c["dram_read_with_copies"]) < 1, c
assert all(r["combined_bound"] > 0 for r in d["runs"]), d["runs"]
assert all(0 < r["decode_bound"] < 10 * r["combined_bound"] for r in d["runs"]), d["runs"]
PY
# A bad --modes fails before the model is built and the channels are measured.
out=$("$cs" bench-offload --synthetic tiny --modes hybrid,foo 2>&1) && fail "bench-offload --modes foo accepted"
echo "$out" | grep -q "got 'foo'" || fail "bench-offload --modes foo: $out"
echo "$out" | grep -q "^channels" && fail "bench-offload --modes foo measured the channels first"
# tokenize and template take a packed file's stored tokenizer (they used to read directories only).
demo="$(dirname "$0")/../models/coldstream-demo.cst"
# (the ids equal the loaded model's tokenizer's: tests/model/test_demo_model.cpp)
"$cs" tokenize --model "$demo" --ids-only "Hello, world" | grep -Eq '^[0-9]+(,[0-9]+)+$' ||
  fail "tokenize --model demo.cst: $("$cs" tokenize --model "$demo" --ids-only "Hello, world" 2>&1)"
printf '[{"role": "user", "content": "hi"}]' >"$tmp/msg.json"
"$cs" template --model "$demo" --messages "$tmp/msg.json" | grep -q '<|im_start|>assistant' ||
  fail "template --model demo.cst gave no ChatML prompt"
echo "cli_smoke: 1 passed, 0 failed"
