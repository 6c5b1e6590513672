#!/usr/bin/env bash
# Is the trace simulator honest on this machine (issue 9)? Synthesises a small skewed model at a
# real checkpoint's shapes, traces a few requests, tunes a configuration from the trace, then runs
# `coldstream tune --check` on the default, the tuned configuration and a variant of it with the
# other copy mode: for each, the simulator's hit rate, served rate and decode tok/s next to a real
# run teacher-forced on the trace's tokens. Then `coldstream plan` for the model against a
# measured decode with every expert fitting the GPU (cuda only).
#
#   tools/validate_tune.sh [--bin DIR] [--device cuda|cpu] [--scratch DIR]
#
# cuda (default, the GPU host): Qwen3-30B-A3B shapes cut to 12 layers, --skew 1.2, 4 requests of
#   ~32 prompt tokens and 64 generated tokens, a 3 GiB VRAM budget (about a third of the 1536
#   experts of ~2.6 MB fit next to ~0.9 GB of dense weights and the runtime's reserve). About a
#   minute on the H200 host.
# cpu (a smoke test on a CPU build): the tiny-qwen3 shape (2 MoE layers x 16 experts, top-4),
#   3 requests of 12 generated tokens, 12 GPU slots.
# Output in $OUT (default ./validate_out), at most 7 files: summary.txt (the lines to read),
# log.txt (every command's output), check.json, tuned.toml (and tuned.hotset when the tuned
# configuration has a hot set), variant.toml, plan.txt. Exits 1 when a command fails.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
out=${OUT:-validate_out}
bindir="" device=cuda scratch=/tmp/coldstream-validate
while [[ $# -gt 0 ]]; do
  case $1 in
    --bin) bindir=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --scratch) scratch=$2; shift 2 ;;
    *) echo "validate_tune.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ $device == cuda || $device == cpu ]] || { echo "validate_tune.sh: --device cuda or cpu" >&2; exit 2; }
cs=${bindir:-build/apps}/coldstream
[[ -x $cs ]] || { echo "validate_tune.sh: no coldstream at $cs (give --bin DIR)" >&2; exit 2; }
mkdir -p "$out" "$scratch"
rm -f "$out"/{summary.txt,log.txt,check.json,tuned.toml,tuned.hotset,variant.toml,plan.txt}
sum=$out/summary.txt log=$out/log.txt
t_start=$SECONDS
say() { echo "$*" | tee -a "$sum"; }
# run NAME CMD...: the command's output to log.txt (and to $scratch/NAME.out), at most 150 s;
# exit 1 on failure.
run() {
  local name=$1; shift
  local t0=$SECONDS
  echo "== $name: $*" >>"$log"
  if ! timeout 150 "$@" >"$scratch/$name.out" 2>&1; then
    cat "$scratch/$name.out" >>"$log"
    say "FAILED: $name ($*); see $log"
    tail -5 "$scratch/$name.out"
    exit 1
  fi
  cat "$scratch/$name.out" >>"$log"
  echo "$name: $((SECONDS - t0)) s" >>"$sum"
}

{ date -u +%FT%TZ; echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), device $device"
  [[ $device == cuda ]] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo "cores: $(nproc)"; } >>"$sum" 2>&1

if [[ $device == cuda ]]; then
  model=$scratch/s30-12-skewed.cst
  shape=(--shape qwen3-30b-a3b --layers 12 --skew 1.2)
  budget=(--vram-budget 3GiB)
  gen=64 n_prompts=4
else
  model=$scratch/tiny.cst
  shape=(--shape tiny-qwen3 --skew 1.2)
  budget=(--slots 12)
  gen=12 n_prompts=3
fi
[[ -f $model ]] || run synth "$cs" synth "${shape[@]}" --probe-tokens 0 --quiet --out "$model"

# Prompts of about 32 tokens each (raw text; the synthetic vocabulary is byte-level BPE with a
# few merges: about 1.4 characters per token).
texts=("How is memory managed in the page cache?"
       "A lighthouse keeper finds a message in a bottle"
       "The difference between a process and a thread"
       "Five ways to make a slow database query fast")
: >"$scratch/prompts.jsonl"
for ((i = 0; i < n_prompts; ++i)); do
  printf '{"prompt": "%s", "max_tokens": %d}\n' "${texts[i]}" "$gen" >>"$scratch/prompts.jsonl"
done
trace=$scratch/run.trace
run trace "$cs" trace -m "$model" --prompts "$scratch/prompts.jsonl" --out "$trace"
grep -m1 "^wrote" "$scratch/trace.out" | tee -a "$sum"

run tune "$cs" tune -m "$model" --trace "$trace" --hardware h200 --hardware-dir configs/hardware "${budget[@]}" \
  --out "$out/tuned.toml" --plot "$scratch/tuned.svg"
grep -m1 "^GPU slots" "$scratch/tune.out" >>"$sum"
grep -m1 "(default)" "$scratch/tune.out" >>"$sum"
sed -n '/^rank/{n;p;q}' "$scratch/tune.out" | sed 's/^/tuned: /' | tee -a "$sum"

# The variant: the tuned configuration with the other copy path (stream, or hybrid when the tuned
# one streams).
other=stream
grep -q '^mode = "stream"' "$out/tuned.toml" && other=hybrid
sed "s/^mode = \"[a-z]*\"/mode = \"$other\"/" "$out/tuned.toml" >"$out/variant.toml"
grep -q "^mode = \"$other\"" "$out/variant.toml" || { say "FAILED: no offload.mode in tuned.toml"; exit 1; }
say "variant: the tuned configuration with offload.mode = $other"

run check "$cs" tune -m "$model" --trace "$trace" "${budget[@]}" --device "$device" --warmup 1 \
  --check default --check "$out/tuned.toml" --check "$out/variant.toml" --json "$out/check.json"
grep -E "^cost model|^check |^== measured" "$scratch/check.out" | tee -a "$sum"

run plan "$cs" plan -m "$model" --gpu h200 --hardware-dir configs/hardware
cp "$scratch/plan.out" "$out/plan.txt"
grep -E "decode:|resident" "$scratch/plan.out" | sed 's/^/plan (h200 profile): /' | tee -a "$sum"
if [[ $device == cuda ]]; then
  # Every expert fits the budget: after the prompt nearly every use is a hit.
  run resident "$cs" bench-offload --model "$model" --vram-budget 40GiB --offload-mode stream \
    --no-channels --prefill 0 --prompt 32 --generate "$gen"
  grep -E "^configured" "$scratch/resident.out" | head -1 | cut -c1-200 |
    sed 's/^/measured, every expert fitting the GPU: /' | tee -a "$sum"
  # What the plan's "every expert stays resident" means: no offload engine (chat without offload
  # settings), the resident decode path with CUDA graphs.
  run resident_bench "$cs" bench --model "$model" --no-kernels --prompt 32 --gen "$gen" --prefill 0
  grep -E "^  decode \(" "$scratch/resident_bench.out" | sed 's/^ */measured, resident path: /' |
    tee -a "$sum"
fi
say "done in $((SECONDS - t_start)) s: $out/"
