// src/shared/memory.hpp — the memory of a reserved area: a file that outlives
// the process that reserved it.
//
//   hugetlb  <hugetlbfs mount>/numacma.NAME.<area>.<pid>: the node's hugepages,
//            faulted in under a strict binding, mapped in physical-address
//            order; the order is kept (hpmap) so that every process maps them
//            the same way
//   anon     /dev/shm/numacma.NAME.<area>.<pid> (tmpfs), bound to the node
//            (the binding is the file's shared policy), faulted in and
//            checked; its DMA addresses are IOVAs at a fixed base per area
//   sim      <pool dir>/<area>.mem, sparse; DMA addresses laid out by the sim
//            backing as Pool::create's would be
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backing/backing.hpp"
#include "numacma/result.hpp"
#include "shared/layout.hpp"
#include "topology/topology.hpp"

namespace numacma::shared {

/** Where anon areas live: POSIX shared memory's tmpfs. */
inline constexpr const char* kShmDir = "/dev/shm";

struct NewArea {
  std::string name;
  int node = -1;
  std::uint64_t bytes = 0;      ///< a multiple of 4 KiB
  std::uint64_t phys_base = 0;  ///< where the plan put it (sim)
  std::uint32_t index = 0;      ///< its place in the pool (anon IOVA base)
};

struct FileAccess {
  unsigned mode = 0600;
  long gid = -1;               ///< -1: the reserving user's group
};

/** Creates the area's file and memory. `kind`: hugetlb-2M, hugetlb-1G, anon
 *  or sim (auto is decided by the caller). The AreaSpec is ready for the
 *  state file. On failure nothing is left behind. */
Result<AreaSpec> create_area_memory(const std::string& kind, const NewArea& a, const std::string& pool_name,
                                    const std::string& dir, const FileAccess& access,
                                    backing::Backing* sim);

/** Maps an area of a validated state file into this process (hugetlb: its
 *  file's pages in the order of hpmap): its CPU base. */
Result<std::uintptr_t> map_area_memory(const AreaDesc& d, const std::vector<std::uint32_t>& hpmap);
void unmap_area_memory(const AreaDesc& d, std::uintptr_t cpu_base) noexcept;

/** Removes the area's file. */
Status remove_area_memory(const AreaDesc& d);

}  // namespace numacma::shared
