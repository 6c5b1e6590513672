#!/usr/bin/env bash
# Builds coldstream with CUDA and runs the offload engine's GPU tests and benchmarks on the GPU
# machine (the scenarios of BENCHMARKS.md) through `coldstream bench-offload`, on random-weight
# packed models written by `coldstream synth`. Results go to $OUT (default: bench-out/) as text,
# stderr logs and JSON; summary.txt names the card, the commit and the date.
#
#   tools/bench_offload.sh [STEP...] [--model PATH] [--scratch DIR] [--quick]
#
# Steps (default: all, in this order; each should fit one 10-minute run on the GPU machine):
#   build     CUDA build (CS_CUDA=ON) of everything
#   test      ctest: the gpu label, then the offload unit and model tests
#   tiny      synth tiny-qwen3: channels + ablation (cache x prefetch), uniform and skewed
#   s235      S235: Qwen3-235B-A22B shape, 20 layers, VRAM budget 5 GiB, every expert in RAM
#   s235nvme  S235-nvme: the same file, half the expert bytes in RAM, the rest read from NVMe
#   s30off    S30-off: Qwen3-30B-A3B shape, 48 layers, VRAM budget 6 GiB
#   s30abl    the ablation (no cache / LRU / router-frequency x no prefetch / lookahead 1 / 2)
#             on the S30 shape cut to 12 layers, VRAM budget 3 GiB, uniform and skewed routing
#   clean     delete the synthetic model files
# Options:
#   --model PATH  run s235, s235nvme and s30off on this model (packed .cst or HF directory)
#                 instead of the synthetic files
#   --scratch DIR where synthetic models are written (default: /tmp/coldstream-bench; S235 at 20
#                 layers is ~30 GB, S30 ~18 GB; kept between steps until `clean`)
#   --quick       short runs (prefill 256, decode 32 + 16 tokens) for a smoke test
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
    build|test|tiny|s235|s235nvme|s30off|s30abl|clean) steps+=("$1"); shift ;;
    *) echo "bench_offload.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ ${#steps[@]} -eq 0 ]] && steps=(build test tiny s235 s235nvme s30off s30abl)
mkdir -p "$out" "$scratch"
bin=build/apps/coldstream
log() { echo "== $*" | tee -a "$out/summary.txt"; }
info() {
  { date -u +%FT%TZ; git rev-parse --short HEAD
    nvidia-smi --query-gpu=name,memory.total,pcie.link.gen.current,pcie.link.width.current --format=csv,noheader || true
    nproc; free -g | head -2; df -h "$scratch" | tail -1; } >>"$out/summary.txt" 2>&1
}

# Sizes of BENCHMARKS.md (prefill 2048; decode: prompt 512, 128 generated), or short ones.
if [[ $quick -eq 1 ]]; then sizes=(--prefill 256 --prompt 32 --generate 16); else sizes=(--prefill 2048 --prompt 512 --generate 128); fi

# synth NAME ARGS...: writes $scratch/NAME.cst once (coldstream synth ARGS).
synth() {
  local name=$1; shift
  [[ -f $scratch/$name.cst ]] && return 0
  log "synth $name: $*"
  "$bin" synth "$@" --out "$scratch/$name.cst" --probe-tokens 64 2>&1 | tail -3 | tee -a "$out/summary.txt"
}
# scenario NAME ARGS...: coldstream bench-offload ARGS, text + JSON + stderr into $out.
scenario() {
  local name=$1; shift
  log "$name: bench-offload $*"
  "$bin" bench-offload --json "$out/$name.json" "$@" 2>"$out/$name.err" | tee "$out/$name.txt"
}

for step in "${steps[@]}"; do
  case $step in
    build)
      info
      ./scripts/build.sh -DCS_CUDA=ON 2>&1 | tail -3 ;;
    test)
      (cd build && ctest -L gpu --output-on-failure) 2>&1 | tail -15 | tee "$out/test-gpu.txt"
      (cd build && ctest -R 'offload|planner|slot cache|policy|LRU|LFU|Belady|router freq|predict|nvme|locator|host arena|copy engine|VRAM|budget|config|hot-set' --output-on-failure) 2>&1 | tail -5 | tee "$out/test-offload.txt" ;;
    tiny)
      synth tiny --shape tiny-qwen3
      synth tiny-skewed --shape tiny-qwen3 --skew 1.2
      scenario tiny-uniform --model "$scratch/tiny.cst" --vram-budget 24MiB --host-budget 2MiB --ablation "${sizes[@]}"
      scenario tiny-skewed --model "$scratch/tiny-skewed.cst" --vram-budget 24MiB --host-budget 2MiB --ablation --no-channels "${sizes[@]}" ;;
    s235)
      m=$model; [[ -z $m ]] && { synth s235 --shape qwen3-235b-a22b --layers 20; m=$scratch/s235.cst; }
      scenario s235 --model "$m" --vram-budget 5GiB "${sizes[@]}" ;;
    s235nvme)
      # Half of the expert bytes (20 x 128 blobs of ~10.6 MB = 27 GB) in RAM.
      m=$model; [[ -z $m ]] && { synth s235 --shape qwen3-235b-a22b --layers 20; m=$scratch/s235.cst; }
      scenario s235-nvme --model "$m" --vram-budget 5GiB --host-budget 13GiB --horizon 2 "${sizes[@]}" ;;
    s30off)
      m=$model; [[ -z $m ]] && { synth s30 --shape qwen3-30b-a3b; m=$scratch/s30.cst; }
      scenario s30-off --model "$m" --vram-budget 6GiB "${sizes[@]}" ;;
    s30abl)
      synth s30-12 --shape qwen3-30b-a3b --layers 12
      synth s30-12-skewed --shape qwen3-30b-a3b --layers 12 --skew 1.2
      scenario s30-ablation-uniform --model "$scratch/s30-12.cst" --vram-budget 3GiB --ablation --no-channels --prefill 512 --prompt 128 --generate 64
      scenario s30-ablation-skewed --model "$scratch/s30-12-skewed.cst" --vram-budget 3GiB --ablation --no-channels --prefill 512 --prompt 128 --generate 64 ;;
    clean)
      rm -f "$scratch"/*.cst ;;
  esac
done
log "done: results in $out/"
