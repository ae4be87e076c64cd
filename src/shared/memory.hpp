// src/shared/memory.hpp — the memory of a reserved area: a memfd that the
// pool's keeper holds, sealed so that no process it is handed to can shrink
// or grow it (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL: nobody can truncate
// it under another's mapping), and that has no name anywhere in the file
// system (nothing to squat, replace or unlink).
//
//   hugetlb  memfd of 2 MiB or 1 GiB pages, faulted in on the node under a
//            strict binding, its pages' order by physical address kept
//            (hpmap) so that every process maps them the same way
//   anon     memfd of 4 KiB shmem pages bound to the node (the binding is the
//            file's shared policy), faulted in and checked; its DMA
//            addresses are IOVAs at a fixed base per area
//   sim      a sparse memfd; DMA addresses laid out by the sim backing as
//            Pool::create's would be
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backing/backing.hpp"
#include "numacma/result.hpp"
#include "os/fd.hpp"
#include "shared/layout.hpp"

namespace numacma::shared {

struct NewArea {
  std::string name;
  int node = -1;
  std::uint64_t bytes = 0;      ///< a multiple of 4 KiB
  std::uint64_t phys_base = 0;  ///< where the plan put it (sim)
  std::uint32_t index = 0;      ///< its place in the pool (anon IOVA base)
};

struct AreaMemory {
  AreaSpec spec;
  os::Fd fd;                    ///< sealed
};

/** Creates and fills the area's memory. `kind`: hugetlb-2M, hugetlb-1G,
 *  anon or sim (auto is decided by the caller). */
Result<AreaMemory> create_area_memory(const std::string& kind, const NewArea& a, backing::Backing* sim);

/** Checks that `fd` is a memfd sealed against shrinking and growing (and,
 *  with write_sealed, against writes) of at least `bytes`. */
Status check_sealed(int fd, std::uint64_t bytes, bool write_sealed, const std::string& what);

/** Maps an area's memory handed over by the keeper (hugetlb: its pages in
 *  the order of hpmap): the CPU base. */
Result<std::uintptr_t> map_area_memory(int fd, const AreaDesc& d, const std::vector<std::uint32_t>& hpmap);
void unmap_area_memory(const AreaDesc& d, std::uintptr_t cpu_base) noexcept;

}  // namespace numacma::shared
