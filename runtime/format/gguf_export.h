// Writing models as GGUF: the tensor names and metadata keys llama.cpp reads for qwen3moe and
// llama (Mixtral), shared by `coldstream synth --gguf` and by export of any checkpoint (test
// fixtures of every GGML type, and `coldstream convert IN OUT.gguf`).
#pragma once

#include <cstdint>
#include <string>

#include "runtime/format/checkpoint.h"
#include "runtime/format/gguf_writer.h"
#include "runtime/format/synth.h"

namespace cs {

// "token_embd.weight", "blk.3.attn_q.weight", ... for non-expert weights;
// "blk.3.ffn_gate_exps.weight" (stacked [H, I, E]) for experts.
std::string gguf_tensor_name(const WeightId& id);
// The GGUF row holding Hugging Face row r of a Q or K projection: Mixtral's are permuted for
// adjacent-pair RoPE (llama.cpp's converter does the same); other architectures: r.
int64_t gguf_qk_row(const ModelConfig& c, WeightRole role, int64_t r);

// Architecture metadata and the tokenizer vocabulary.
void write_gguf_metadata(GgufWriter& g, const ModelConfig& c, const std::string& name,
                         const SynthVocab& vocab);

// GGML types per class; norms and routers are always F32. A tensor whose rows do not fit the
// type's block (Q4_K and Q6_K need multiples of 256) is written as F32.
struct GgufExportTypes {
  uint32_t experts = 2, attention = 8, embeddings = 8, lm_head = 8, dense = 8;  // Q4_0, Q8_0
};
// Writes `in` as a GGUF file (single part). The vocabulary is the checkpoint's own when it came
// from GGUF, else synth_vocab(config).
void export_gguf(const Checkpoint& in, const std::string& path, const GgufExportTypes& types,
                 bool force, PwriteFn pwrite = {});

}  // namespace cs
