// NUMA placement with hwloc: which memory node is closest to a PCI device (the GPU), and
// binding a memory range to a node before its pages are touched.
#pragma once

#include <cstddef>
#include <string>

namespace cs {

// The NUMA node nearest to the PCI device "dddd:bb:dd.f" (as CUDA reports it), or -1 when
// unknown (no such device in the topology, or a machine with one node).
int numa_node_of_pci(const std::string& bus_id);
// Number of NUMA nodes (1 on most desktops).
int numa_node_count();
// Binds [ptr, ptr + bytes) to `node`. Returns false and fills `error` when the OS refuses.
bool bind_to_numa_node(void* ptr, size_t bytes, int node, std::string* error);

}  // namespace cs
