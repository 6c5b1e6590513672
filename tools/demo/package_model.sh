#!/usr/bin/env bash
# Turns the trained demo model (Hugging Face layout, from tools/demo/run_gpu.sh) into the shipped
# default model: adds the description the chat banner shows, then converts it to the packed
# format with the default policy (experts q4/32, attention/embeddings q8/32, norms/routers f32).
#
#   tools/demo/package_model.sh demo-data/demo-model models/coldstream-demo.cst
set -euo pipefail
src=${1:?usage: package_model.sh HF_DIR OUT.cst}
out=${2:?usage: package_model.sh HF_DIR OUT.cst}
here=$(cd "$(dirname "$0")/../.." && pwd)
python3 - "$src/config.json" <<'PY'
import json, sys
path = sys.argv[1]
c = json.load(open(path))
c["coldstream_description"] = (
    "The coldstream demo model: a 29M-parameter Qwen3-MoE (8 layers, 32 experts, 4 active) trained "
    "for about 5 minutes on free Debian documentation. It knows a little about Unix commands, "
    "programming manuals and English words, and is often wrong: a toy that shows the runtime at work.")
json.dump(c, open(path, "w"), indent=2, sort_keys=True)
PY
"$here/build/apps/coldstream" convert "$src" "$out" --force
