#!/usr/bin/env bash
# Builds coldstream with CUDA and runs the offload engine's GPU tests and benchmarks on the GPU
# machine (scenarios of BENCHMARKS.md). Results go to $OUT (default: bench-out/) as logs and JSON.
#
#   tools/bench_offload.sh [STEP...] [--model PATH] [--scratch DIR] [--quick]
#
# Steps (default: all, in this order; each should fit one 10-minute run on the GPU machine):
#   build     CUDA build (CS_CUDA=ON) of everything
#   test      ctest: gpu label, then the offload unit and model tests
#   tiny      synthetic tiny model: channels + ablation (cache x prefetch), uniform and skewed
#   s235      S235: Qwen3-235B-A22B shape, 20 layers, VRAM budget 5 GiB, every expert in RAM
#   s235nvme  S235-nvme: as S235 with half the expert bytes in RAM, the rest read from NVMe
#   s30off    S30-off: Qwen3-30B-A3B shape, 48 layers, VRAM budget 6 GiB
#   s30abl    the ablation (no cache / LRU / router-frequency x no prefetch / lookahead 1 / 2)
#             on the S30 shape cut to 12 layers, VRAM budget 2 GiB, uniform and skewed routing
# Options:
#   --model PATH  run s235/s235nvme/s30off on this model (a packed file from `coldstream synth`,
#                 once the packed reader passes its ExpertLocator) instead of the in-memory
#                 synthetic shapes. The synthetic shapes keep non-expert weights in BF16, so S235
#                 uses a 32000-token vocabulary to fit them in its 5 GiB budget.
#   --scratch DIR where synthetic expert blob files are written (default: /tmp/coldstream-bench;
#                 S235 writes ~27 GB, deleted after each step)
#   --quick       short runs (prefill 256, decode 32+16) for a smoke test
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench-out}
scratch=/tmp/coldstream-bench
model=""
quick=0
steps=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --model) model=$2; shift 2 ;;
    --scratch) scratch=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    build|test|tiny|s235|s235nvme|s30off|s30abl) steps+=("$1"); shift ;;
    *) echo "bench_offload.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ ${#steps[@]} -eq 0 ]] && steps=(build test tiny s235 s235nvme s30off s30abl)
mkdir -p "$out" "$scratch"
bin=build/apps/coldstream
log() { echo "== $*" | tee -a "$out/summary.txt"; }
info() {
  { date -u +%FT%TZ; git rev-parse --short HEAD; nvidia-smi --query-gpu=name,memory.total,pcie.link.gen.current,pcie.link.width.current --format=csv,noheader || true; nproc; free -g | head -2; } >>"$out/summary.txt" 2>&1
}

# Prefill/decode sizes of BENCHMARKS.md, or short ones.
if [[ $quick -eq 1 ]]; then big=(--prefill 256 --prompt 32 --generate 16); else big=(--prefill 2048 --prompt 512 --generate 128); fi

# $1: name; the rest: arguments of coldstream bench (model or synthetic shape, budgets).
scenario() {
  local name=$1; shift
  log "$name: $*"
  "$bin" bench-offload --scratch "$scratch" --json "$out/$name.json" "$@" 2>"$out/$name.err" | tee "$out/$name.txt"
  rm -f "$scratch"/synthetic-experts.bin
}

for step in "${steps[@]}"; do
  case $step in
    build)
      info
      ./scripts/build.sh -DCS_CUDA=ON 2>&1 | tail -3 ;;
    test)
      (cd build && ctest -L gpu --output-on-failure) 2>&1 | tee "$out/test-gpu.txt"
      (cd build && ctest -R 'offload|planner|slot cache|policy|LRU|LFU|Belady|router freq|predict|nvme|locator|host arena|copy engine|VRAM|budget|config|hot-set' --output-on-failure) 2>&1 | tail -5 | tee "$out/test-offload.txt" ;;
    tiny)
      scenario tiny-uniform --synthetic tiny --prefill 256 --prompt 64 --generate 64 --vram-budget 24MiB --host-budget 2MiB --ablation
      scenario tiny-skewed --synthetic tiny --skew 1 --prefill 256 --prompt 64 --generate 64 --vram-budget 24MiB --host-budget 2MiB --ablation ;;
    s235)
      if [[ -n $model ]]; then scenario s235 --model "$model" --vram-budget 5GiB --ablation "${big[@]}"
      else scenario s235 --synthetic qwen3-235b-a22b --layers 20 --vocab 32000 --vram-budget 5GiB "${big[@]}"; fi ;;
    s235nvme)
      # Half of 20 x 128 experts of 10.6 MB (the blob size bench prints): 13.6 GB.
      if [[ -n $model ]]; then scenario s235-nvme --model "$model" --vram-budget 5GiB --host-budget 13GiB --horizon 2 "${big[@]}"
      else scenario s235-nvme --synthetic qwen3-235b-a22b --layers 20 --vocab 32000 --vram-budget 5GiB --host-budget 13GiB --horizon 2 "${big[@]}"; fi ;;
    s30off)
      if [[ -n $model ]]; then scenario s30-off --model "$model" --vram-budget 6GiB "${big[@]}"
      else scenario s30-off --synthetic qwen3-30b-a3b --vram-budget 6GiB "${big[@]}"; fi ;;
    s30abl)
      scenario s30-ablation-uniform --synthetic qwen3-30b-a3b --layers 12 --vocab 32000 --vram-budget 2GiB --ablation --no-channels --prefill 512 --prompt 128 --generate 64
      scenario s30-ablation-skewed --synthetic qwen3-30b-a3b --layers 12 --vocab 32000 --skew 1 --vram-budget 2GiB --ablation --no-channels --prefill 512 --prompt 128 --generate 64 ;;
  esac
done
log "done: results in $out/"
