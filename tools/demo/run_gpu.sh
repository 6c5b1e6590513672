#!/usr/bin/env bash
# The one command to run on the GPU host: a smoke run of every stage on a tiny model (~30 s),
# then the real training run, which finishes everything by START + TOTAL_SECONDS.
#
#   TOTAL_SECONDS=500 bash tools/demo/run_gpu.sh          (carry: demo-data/tokens)
#
# SKIP_SMOKE=1 skips the smoke run (when it already passed in an earlier call). Extra arguments
# for the real run go in TRAIN_ARGS (e.g. TRAIN_ARGS="--compile off").
# Needs python3 with torch >= 2.9, transformers 5, safetensors, numpy (matplotlib and
# sentencepiece optional: plot and chat samples). Output: $OUT/demo-model.tar.gz.NN (the model
# directory, at most 15 MiB a part), $OUT/train_log.txt, $OUT/metrics.json, $OUT/loss.png.
# Reassemble with: cat demo-model.tar.gz.* | tar xz
set -uo pipefail
START=$(date +%s)
TOTAL=${TOTAL_SECONDS:-500}
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
: "${OUT:=/tmp/coldstream-demo/out}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
[[ -s demo-data/tokens/train.u16.xz || -s demo-data/tokens/train.u16 ]] || {
  echo "run_gpu: demo-data/tokens is missing: carry it (tools/demo/tokenize_corpus.sh makes it)" >&2; exit 1; }
if [[ ${SKIP_SMOKE:-0} != 1 ]]; then
  echo "=== smoke run (tiny model, every stage) ==="
  if ! python3 tools/demo/train.py --smoke --artifacts /tmp/coldstream-demo/smoke-artifacts \
      --out /tmp/coldstream-demo/smoke-model; then
    echo "run_gpu: the smoke run failed; not starting the real run" >&2
    exit 1
  fi
fi
echo "=== real run: everything done by $(date -d @$((START + TOTAL)) +%T) ==="
python3 tools/demo/train.py --deadline $((START + TOTAL)) --artifacts "$OUT" \
  --out /tmp/coldstream-demo/demo-model ${TRAIN_ARGS:-}
rc=$?
ls -l "$OUT"
exit $rc
