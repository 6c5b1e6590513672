#!/usr/bin/env bash
# Runs train.py end to end on this machine's CPU, without transformers: Debian's python3-torch
# plus the stand-ins in tools/demo/fake/ (a Qwen3-MoE written from FACTS.md, a pure-Python
# safetensors). Then checks what a real run's consumer would: the artifacts reassemble, and the C++
# runtime reads the export and computes the same logits and perplexity as the training model.
#
#   apt-get install python3-torch python3-sentencepiece python3-matplotlib   # once
#   tools/demo/test_local.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/coldstream-demo-test.XXXXXX)
trap 'rm -rf "$T"' EXIT
export PYTHONPATH=tools/demo/fake
$PY tools/demo/train.py --smoke --max-steps 4 --out "$T/run/demo-model" --artifacts "$T/art" > "$T/train.out" 2>&1 || {
  cat "$T/train.out"; echo "test_local: train.py failed" >&2; exit 1; }
grep -E "reload check|heldout|sample" "$T/train.out" | head
mkdir -p "$T/unpacked" && cat "$T/art"/demo-model.tar.gz.* | tar xz -C "$T/unpacked"
M=$T/unpacked/demo-model
for f in config.json model.safetensors tokenizer.model metrics.json train_log.txt; do
  [[ -s $M/$f ]] || { echo "test_local: $f missing from the artifacts" >&2; exit 1; }
done
# The runtime's logits for a held-out window equal the exported model's (fake transformers, fp32).
$PY - "$M" "$T" <<'PY'
import array, json, sys, torch
sys.path.insert(0, "tools/demo")
import transformers
m, t = sys.argv[1], sys.argv[2]
a = array.array("H"); a.frombytes(open("demo-data/tokens/heldout_small.u16", "rb").read())
ids = list(a[:100])
open(f"{t}/ids.txt", "w").write(" ".join(map(str, ids)))
model = transformers.AutoModelForCausalLM.from_pretrained(m, dtype=torch.float32)
with torch.no_grad():
    lg = model(torch.tensor([ids])).logits[0]
json.dump(lg.tolist(), open(f"{t}/want.json", "w"))
import torch.nn.functional as F
nll = F.cross_entropy(lg[:-1], torch.tensor(ids[1:]), reduction="mean").item()
open(f"{t}/want_ppl.txt", "w").write(repr(float(torch.tensor(nll).exp())))
PY
"$BUILD/apps/coldstream" logits --model "$M" --ids "$(tr ' ' ',' < "$T/ids.txt")" > "$T/got.json"
"$BUILD/apps/coldstream" perplexity --model "$M" --ids-file "$T/ids.txt" --ctx 100 --json 2>/dev/null > "$T/ppl.json"
$PY - "$T" <<'PY'
import json, sys
t = sys.argv[1]
got, want = json.load(open(f"{t}/got.json")), json.load(open(f"{t}/want.json"))
err = max(abs(g - w) for gr, wr in zip(got, want) for g, w in zip(gr, wr))
scale = max(abs(w) for wr in want for w in wr)
ppl, want_ppl = json.load(open(f"{t}/ppl.json"))["perplexity"], float(open(f"{t}/want_ppl.txt").read())
print(f"test_local: runtime vs training model: logits rel err {err / scale:.2e}; "
      f"perplexity {ppl:.4f} vs {want_ppl:.4f}")
assert err / scale < 1e-4, "the runtime reads the export differently"
assert abs(ppl / want_ppl - 1) < 1e-4, "perplexity definitions differ"
PY
echo "test_local: OK"
