#include <vector>

#include "common/error.h"
#include "kernels/quant.h"
#include "runtime/format/packed_reader.h"
#include "tests/fuzz/fuzz_targets.h"

namespace cs::fuzz {

int packed(const uint8_t* data, size_t size) {
  try {
    const PackedIndex ix = PackedFile::parse(data, size, "fuzz.cst");
    // Everything the loader would touch: the last row of every tensor, every expert blob.
    std::vector<float> row;
    for (const auto& [name, t] : ix.tensors) {
      MatView v{t.format.dtype,
                data + t.data,
                t.scales ? reinterpret_cast<const uint16_t*>(data + t.scales) : nullptr,
                t.mins ? reinterpret_cast<const uint16_t*>(data + t.mins) : nullptr,
                t.rows,
                t.cols,
                t.format.group};
      if (t.cols > (1 << 20)) continue;
      row.resize(size_t(t.cols));
      dequantize_row(v, t.rows - 1, row.data());
    }
    for (size_t m = 0; m < ix.layer_offset.size(); ++m) {
      const ExpertWeights w = expert_views(ix.expert_layout, data + ix.layer_offset[m]);
      if (w.down.cols > (1 << 20)) continue;
      row.resize(size_t(w.down.cols));
      dequantize_row(w.down, w.down.rows - 1, row.data());
      volatile uint64_t h = xxh3(data + ix.layer_offset[m], ix.expert_layout.bytes);
      (void)h;
    }
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace cs::fuzz

#ifdef CS_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return cs::fuzz::packed(data, size);
}
#endif
