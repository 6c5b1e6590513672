// Conversion of a checkpoint (Hugging Face, GPTQ, GGUF) into a packed file, streaming: one
// tensor (in row chunks) or one expert per worker thread at a time is in memory, never the
// model. The output appears at its path only when complete (OutputFile).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "runtime/format/checkpoint.h"
#include "runtime/format/output_file.h"
#include "runtime/format/quant_policy.h"

namespace cs {

struct ConvertOptions {
  QuantPolicy policy;
  bool force = false;  // overwrite an existing destination
  int threads = 0;     // expert workers; 0 = one per core
  // (bytes written, bytes total); called from one thread at a time.
  std::function<void(uint64_t, uint64_t)> progress;
  // Messages about formats that changed to fit a tensor (e.g. a group that does not divide).
  std::function<void(const std::string&)> note;
  PwriteFn pwrite;  // tests inject write failures here
};

struct ConvertResult {
  uint64_t bytes = 0;
  TensorFormat expert_format;
};

// Throws cs::Error; on failure nothing is left at `out`.
ConvertResult convert_to_packed(const Checkpoint& in, const std::string& out,
                                const ConvertOptions& options);

// The format a weight of class `c` gets from `policy` given its source's native format.
TensorFormat choose_format(const QuantPolicy& policy, WeightClass c,
                           const std::optional<TensorFormat>& native);

}  // namespace cs
