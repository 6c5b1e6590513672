#!/usr/bin/env bash
# coldstream trace, tune and plan end to end on the demo model: the trace records and summarises,
# tune writes a configuration that `coldstream config` and `generate` load, a hot set and a plot,
# plan answers for the Qwen3 shapes on the listed cards, and bad input names the flag or file.
# Usage: cli_tuning.sh COLDSTREAM SOURCE_DIR
set -u
cs=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "cli_tuning: $*"; exit 1; }
model=$src/models/coldstream-demo.cst

cat >"$tmp/p.jsonl" <<'JSON'
{"prompt": "The kernel documentation describes how memory is managed", "max_tokens": 8}
# a comment line
{"messages": [{"role": "user", "content": "What does the ls command do?"}], "max_tokens": 6}
JSON
"$cs" trace -m "$model" --prompts "$tmp/p.jsonl" --out "$tmp/t.trace" >"$tmp/trace" 2>&1 ||
  fail "trace failed: $(cat "$tmp/trace")"
grep -q "2 requests" "$tmp/trace" || fail "trace summary: $(cat "$tmp/trace")"
grep -q "mean entropy" "$tmp/trace" || fail "trace printed no entropy"
grep -q "working set growth" "$tmp/trace" || fail "trace printed no working set"
grep -q "predictor lookahead" "$tmp/trace" || fail "trace printed no predictor precision"
"$cs" trace -m "$model" --prompts "$tmp/p.jsonl" --out "$tmp/c.trace" --max-bytes 20KiB \
  >"$tmp/cap" 2>&1 || fail "capped trace failed"
grep -q "size cap" "$tmp/cap" || fail "no message at the cap: $(cat "$tmp/cap")"
echo '{"prompt": 3}' >"$tmp/bad.jsonl"
"$cs" trace -m "$model" --prompts "$tmp/bad.jsonl" --out "$tmp/x" 2>"$tmp/err" && fail "bad prompt"
grep -q "bad.jsonl:1" "$tmp/err" || fail "bad prompt not located: $(cat "$tmp/err")"

"$cs" tune -m "$model" --trace "$tmp/t.trace" --slots 40 --out "$tmp/best.toml" \
  --hardware-dir "$src/configs/hardware" >"$tmp/tune" 2>&1 || fail "tune failed: $(cat "$tmp/tune")"
grep -q "Belady" "$tmp/tune" || fail "tune printed no Belady bound"
grep -q "(default)" "$tmp/tune" || fail "tune printed no default row"
grep -q "<polyline" "$tmp/best.svg" || fail "no plot"
"$cs" config --config "$tmp/best.toml" >/dev/null || fail "tuned config does not load"
grep -q "# tuned" "$tmp/best.toml" || fail "tuned config has no comments"
"$cs" generate -m "$model" --device cpu --config "$tmp/best.toml" --ids 1,2,3 --max-tokens 2 \
  --greedy >/dev/null 2>"$tmp/gen" || fail "generate with the tuned config: $(cat "$tmp/gen")"
# tune --check: the simulator against a teacher-forced run on the host-only backend.
"$cs" tune -m "$model" --trace "$tmp/t.trace" --slots 40 --device cpu --hardware rtx4090 \
  --hardware-dir "$src/configs/hardware" --check default --check "$tmp/best.toml" \
  --json "$tmp/check.json" >"$tmp/check" 2>&1 || fail "tune --check failed: $(cat "$tmp/check")"
grep -q "^check default: simulated hit .* | measured hit .* (40 GPU slots, routing" "$tmp/check" ||
  fail "no check line: $(cat "$tmp/check")"
grep -q "^== measured against default: .*best.toml" "$tmp/check" || fail "no comparison line"
grep -q '"routing_agreement"' "$tmp/check.json" || fail "no JSON"
"$cs" tune -m "$model" --trace "$tmp/t.trace" --device cpu --check "$tmp/none.toml" 2>"$tmp/err" &&
  fail "accepted a missing configuration"
grep -q "none.toml" "$tmp/err" || fail "missing configuration not named: $(cat "$tmp/err")"
echo "garbage" >"$tmp/g.trace"
"$cs" tune -m "$model" --trace "$tmp/g.trace" 2>"$tmp/err" && fail "accepted a bad trace"
grep -q "g.trace: routing trace" "$tmp/err" || fail "bad trace not named: $(cat "$tmp/err")"

for m in qwen3-235b-a22b qwen3-30b-a3b; do
  for g in rtx3090 rtx4090 rtx5090 rtx6000ada h100 h200; do
    "$cs" plan -m $m --gpu $g --hardware-dir "$src/configs/hardware" >"$tmp/plan" 2>&1 ||
      fail "plan $m $g: $(cat "$tmp/plan")"
    grep -q "decode: .* tok/s" "$tmp/plan" || fail "plan $m $g: no decode estimate"
    grep -q "bottleneck" "$tmp/plan" || fail "plan $m $g: no bottleneck"
    grep -q "assumptions:" "$tmp/plan" || fail "plan $m $g: no assumptions"
  done
done
"$cs" plan -m qwen3-235b-a22b --vram 24GiB --pcie 25GB/s --ram 64GiB --nvme 7GB/s --cores 8 \
  >"$tmp/plan" || fail "plan with flags"
grep -q "NVMe" "$tmp/plan" || fail "235B in 64 GiB RAM should need NVMe: $(cat "$tmp/plan")"
"$cs" plan -m qwen3-235b-a22b --vram 8GiB --pcie 25GB/s | grep -q "does NOT fit" ||
  fail "235B dense weights do not fit 8 GiB"
"$cs" plan -m "$model" --gpu rtx4090 --hardware-dir "$src/configs/hardware" |
  grep -q "every expert stays resident" || fail "plan of the demo model"
"$cs" plan -m qwen3-30b-a3b --gpu rtx9999 --hardware-dir "$src/configs/hardware" 2>"$tmp/err" &&
  fail "accepted an unknown profile"
grep -q "rtx4090" "$tmp/err" || fail "unknown profile does not list profiles: $(cat "$tmp/err")"
echo "cli_tuning: 1 passed, 0 failed"
