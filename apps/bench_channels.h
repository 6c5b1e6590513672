// `coldstream bench` measures the host's channels before it runs a model, so every result is
// printed next to the bound those channels imply (BENCHMARKS.md): host-to-GPU copies through the
// copy engine (pinned and pageable), DRAM reads on the CPU experts' threads (DramProbe), raw
// O_DIRECT reads of the experts file, and the NVMe tier itself (io_uring, checksums) reading the
// same file.
#pragma once

#include <string>

#include "kernels/backend.h"
#include "offload/expert_locator.h"
#include "offload/offload_config.h"

namespace cs::cli {

struct Channels {
  double copy_rate = 0;           // bytes/s, host -> backend memory from pinned (or plain) RAM
  double pageable_copy_rate = 0;  // bytes/s from pageable RAM (GPU backends only)
  double dram_read_rate = 0;      // bytes/s, every CPU expert thread
  // Both at once (hybrid decode's situation: the copies' DMA reads the same host memory): the
  // copy rate while all threads read DRAM, and the DRAM read rate while the copies run.
  double copy_rate_with_reads = 0, dram_read_with_copies = 0;
  double disk_raw_rate = 0;   // bytes/s, O_DIRECT preads of the experts file
  double disk_tier_rate = 0;  // bytes/s, the NVMe tier reading whole blobs, verified
  std::string notes;
  // What the copies and the CPU's reads reach together (0: not measured). Not the sum of the
  // rates measured apart, which overstates it: both read one DRAM.
  double combined_rate() const { return copy_rate_with_reads + dram_read_with_copies; }
};

// `locator` may have an empty path (no file: no disk figures). `threads` 0: config.cpu.threads (0:
// one per physical core).
Channels measure_channels(Backend& backend, const ExpertLocator& locator,
                          const OffloadConfig& config, int threads, uint64_t dram_bytes);

std::string format_channels(const Channels& c);

}  // namespace cs::cli
