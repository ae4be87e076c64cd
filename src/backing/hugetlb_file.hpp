// src/backing/hugetlb_file.hpp — the hugepages of a hugetlbfs file, mapped in
// ascending physical-address order (DPDK's legacy memory mode sorts its pages
// the same way).
//
//   file (fd)      page 0   page 1   page 2   page 3        faulted in on the node,
//   phys           0x3c00.. 0x1200.. 0x1220.. 0x3be0..      order the kernel gave them
//                      \        |        |       /
//   cpu_base       [ page 1 ][ page 2 ][ page 3 ][ page 0 ]  order = {1, 2, 3, 0}
//   segments       [ 0x1200 + 4M      ][ 0x3be0 + 4M      ]  runs of adjacent slots
//
// The kernel hands hugepages out in whatever order its free lists hold them,
// so a plain MAP_HUGETLB area of N pages is cut into many short segments even
// when most of its pages are physical neighbours. Mapping each file page at
// the slot of its physical rank turns every such set of neighbours into one
// segment. A page is mapped at one virtual range only at the end: populate
// and read the physical addresses through a first mapping, map the pages
// again at a fresh range in sorted order, then drop the first mapping. The
// file keeps the pages; the mappings keep the file.
//
// Used by the private hugetlb backing (on a memfd, closed once mapped) and by
// areas shared between processes (a named hugetlbfs file that another process
// maps with map_in_order).
#pragma once

#include <cstdint>
#include <vector>

#include "core/area.hpp"
#include "numacma/result.hpp"

namespace numacma::backing {

/** Hugepages of a hugetlbfs file, mapped in ascending physical-address order. */
struct HugeMapping {
  std::uintptr_t cpu_base = 0;
  std::uint64_t mapped_bytes = 0;          ///< a multiple of huge_page_bytes
  std::uint64_t huge_page_bytes = 0;
  std::vector<std::uint32_t> order;        ///< order[k]: the file's hugepage index mapped at cpu_base + k * hp
  std::vector<std::uint64_t> phys;         ///< phys[k]: physical address of slot k; empty when unreadable
};

/** Sizes the file (ftruncate) to mapped_bytes, faults every page in on `node` (strict bind,
 *  populate, verify with move_pages: a page elsewhere is an error), reads the physical
 *  addresses and maps the pages in ascending physical order; mlock when `lock`.
 *  Unreadable physical addresses: file order, phys empty. Undoes everything on failure
 *  (the mappings, and the file is truncated back to 0 so that its pages go back to the pool).
 *  REQUIRES: fd an empty hugetlbfs file of pages of `hp` (2 MiB or 1 GiB); mapped_bytes
 *  a non-zero multiple of hp; node >= 0, or -1 for no binding. The fd stays the caller's. */
Result<HugeMapping> populate_sorted(int fd, std::uint64_t mapped_bytes, std::uint64_t hp, int node, bool lock);

/** Maps an already populated file in the given order (another process attaching): file
 *  page order[k] at cpu_base + k * hp, one mmap per run of pages consecutive both in the
 *  file and in `order`; faulted in (page tables only: the pages exist); mlock when `lock`.
 *  Unmaps on failure. Release with unmap_huge(cpu_base, order.size() * hp). */
Result<std::uintptr_t> map_in_order(int fd, const std::vector<std::uint32_t>& order, std::uint64_t hp, bool lock);

/** Segments in 4 KiB pages over [0, bytes) from per-slot physical addresses (pure logic):
 *  slot k covers pages [k * hp/4K, (k + 1) * hp/4K) cut at bytes; a segment is a run of
 *  slots whose physical addresses are adjacent (phys[k] == phys[k - 1] + hp).
 *  REQUIRES: phys.size() * hp >= bytes. Empty phys (unreadable) gives no segments. */
std::vector<core::Segment> segments_from_phys(const std::vector<std::uint64_t>& phys, std::uint64_t hp,
                                              std::uint64_t bytes);

/** Unlocks and unmaps what populate_sorted / map_in_order mapped. */
void unmap_huge(std::uintptr_t cpu_base, std::uint64_t mapped_bytes) noexcept;

/** Every page (one per `step` bytes) of the range is on `node`, by move_pages; else
 *  Errc::no_memory naming the first that is not (binding is strict). Also used by
 *  the anonymous backings (real.cpp). */
Status verify_node(void* p, std::uint64_t bytes, std::uint64_t step, int node);

/** Asks the kernel to compact the node's memory (<sysfs_root>/devices/system/
 *  node/nodeN/compact), so that hugepages taken from the buddy allocator after
 *  it (nr_hugepages raised, surplus pages) are more often neighbours. "" when
 *  done, else a note: failing to compact is no reason not to reserve. */
std::string compact_node(const std::string& sysfs_root, int node);

}  // namespace numacma::backing
