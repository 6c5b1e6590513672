#include "offload/numa.h"

#include <hwloc.h>

#include <memory>

namespace cs {
namespace {

struct Topology {
  hwloc_topology_t t = nullptr;
  explicit Topology(bool io) {
    if (hwloc_topology_init(&t) != 0) {
      t = nullptr;
      return;
    }
    if (io) hwloc_topology_set_io_types_filter(t, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    if (hwloc_topology_load(t) != 0) {
      hwloc_topology_destroy(t);
      t = nullptr;
    }
  }
  ~Topology() {
    if (t) hwloc_topology_destroy(t);
  }
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;
};

}  // namespace

int numa_node_count() {
  Topology topo(false);
  if (!topo.t) return 1;
  const int n = hwloc_get_nbobjs_by_type(topo.t, HWLOC_OBJ_NUMANODE);
  return n > 0 ? n : 1;
}

int numa_node_of_pci(const std::string& bus_id) {
  if (bus_id.empty()) return -1;
  Topology topo(true);
  if (!topo.t) return -1;
  if (hwloc_get_nbobjs_by_type(topo.t, HWLOC_OBJ_NUMANODE) <= 1) return -1;
  hwloc_obj_t dev = hwloc_get_pcidev_by_busidstring(topo.t, bus_id.c_str());
  if (!dev) return -1;
  hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(topo.t, dev);
  if (!anc || !anc->nodeset) return -1;
  const int node = hwloc_bitmap_first(anc->nodeset);
  return hwloc_bitmap_weight(anc->nodeset) == 1 ? node : -1;
}

bool bind_to_numa_node(void* ptr, size_t bytes, int node, std::string* error) {
  Topology topo(false);
  if (!topo.t) {
    if (error) *error = "hwloc could not load the topology";
    return false;
  }
  hwloc_obj_t obj = hwloc_get_numanode_obj_by_os_index(topo.t, unsigned(node));
  if (!obj) {
    if (error) *error = "no NUMA node " + std::to_string(node);
    return false;
  }
  if (hwloc_set_area_membind(topo.t, ptr, bytes, obj->nodeset, HWLOC_MEMBIND_BIND,
                             HWLOC_MEMBIND_BYNODESET) != 0) {
    if (error) *error = "hwloc_set_area_membind failed";
    return false;
  }
  return true;
}

}  // namespace cs
