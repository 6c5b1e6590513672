#!/usr/bin/env bash
# Trains the demo model's SentencePiece BPE tokenizer on the training split of the corpus.
#
#   tools/demo/train_tokenizer.sh            (after tools/demo/build_corpus.sh)
#
# Writes tools/demo/tokenizer/tokenizer.model and tokenizer.vocab (both committed). Settings:
#   8192 pieces, BPE, byte fallback (any byte sequence encodes; a newline is <0x0A>), digits split,
#   identity normalisation and no dummy prefix or whitespace folding (the text comes back byte
#   for byte), no BOS/EOS (Qwen-style: documents end with <|endoftext|>), and the ChatML and
#   reasoning tags as user-defined symbols: <|endoftext|> <|im_start|> <|im_end|> <think> </think>.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DEMO_DATA:-demo-data}
OUT=tools/demo/tokenizer
command -v spm_train >/dev/null || { echo "train_tokenizer: spm_train is missing (apt-get install sentencepiece)" >&2; exit 1; }
for f in "$DATA/corpus/train.jsonl" "$DATA/corpus/chat_train.jsonl"; do
  [[ -s $f ]] || { echo "train_tokenizer: $f is missing; run tools/demo/build_corpus.sh" >&2; exit 1; }
done
mkdir -p "$DATA/tok" "$OUT"
python3 tools/demo/tokens.py lines "$DATA/tok/spm_input.txt" "$DATA/corpus/train.jsonl" "$DATA/corpus/chat_train.jsonl"
spm_train --input="$DATA/tok/spm_input.txt" --model_prefix="$DATA/tok/tokenizer" \
  --model_type=bpe --vocab_size=8192 --byte_fallback=true --split_digits=true \
  --user_defined_symbols='<|endoftext|>,<|im_start|>,<|im_end|>,<think>,</think>' \
  --normalization_rule_name=identity --add_dummy_prefix=false --remove_extra_whitespaces=false \
  --allow_whitespace_only_pieces=true --max_sentencepiece_length=16 \
  --unk_id=0 --bos_id=-1 --eos_id=-1 --pad_id=-1 --character_coverage=0.9995 \
  --input_sentence_size=1500000 --shuffle_input_sentence=true --random_seed=1234 \
  --num_threads="${JOBS:-2}" --max_sentence_length=4192 --minloglevel=1
cp "$DATA/tok/tokenizer.model" "$DATA/tok/tokenizer.vocab" "$OUT/"
echo "train_tokenizer: wrote $OUT/tokenizer.model ($(stat -c %s "$OUT/tokenizer.model") bytes)"
