#!/usr/bin/env bash
# Writes the S235 benchmark model (BENCHMARKS.md: Qwen3-235B-A22B shapes, 20 of 94 layers) as a
# packed file and its GGUF twin, timing each step. Run on the GPU host from the repository root:
#   tools/synth_s235.sh /path/with/64GB/free [LAYERS]
# Each file is about 30 GB at 20 layers (experts 27.2 GB + attention 1.5 GB + embeddings and
# lm_head 1.3 GB); both together need about 60 GB.
set -euo pipefail
dir=${1:?usage: tools/synth_s235.sh OUTPUT_DIR [LAYERS]}
layers=${2:-20}
cs=build/apps/coldstream
[ -x "$cs" ] || ./scripts/build.sh
df -h "$dir"
start=$(date +%s.%N)
"$cs" synth --shape qwen3-235b-a22b --layers "$layers" --out "$dir/s235.cst" \
  --gguf "$dir/s235.gguf" --force --probe-tokens 32
end=$(date +%s.%N)
ls -l "$dir/s235.cst" "$dir/s235.gguf"
echo "synth + probe: $(echo "$end - $start" | bc) s"
sync
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
/usr/bin/time -v "$cs" info "$dir/s235.cst" --verify --vram-budget 5GiB 2>&1 |
  grep -E "verified|VRAM|experts|Elapsed|Maximum resident"
