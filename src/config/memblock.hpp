// src/config/memblock.hpp — where the kernel puts CMA areas in physical memory,
// modelled (pure logic: no system calls).
//
//   physical_layout(topology)   each node's memory: its memory blocks
//                               (node<N>/memory<M> x block_size_bytes) when the
//                               tree has them, else a synthesized window per node
//                               (node i at the next 1 GiB boundary, MemTotal long)
//   Memblock                    the free memory at early boot, node-tagged ranges;
//     cma_reserve(size, limit, nid)   mm/cma.c cma_declare_contiguous_nid with
//                               base 0: 2 MiB aligned (a pageblock, the CMA
//                               minimum alignment); bottom-up from 4 GiB when the
//                               memory ends at or above 4 GiB + size, else (or when
//                               that finds nothing) top-down below `limit`; nid -1:
//                               any node, else that node only
//     take / alloc_top_down / give_back   exact carving, for the sim backing
//
// What the kernel reserves for itself at boot (its image, the initrd, page
// tables) is not known here: only the first 16 MiB are taken out, so a node
// that is nearly full in a real guest may still fit an area here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/limits.hpp"
#include "numacma/result.hpp"
#include "topology/topology.hpp"

namespace numacma::config {

/** The architecture whose placement rules the plan follows (R5). */
enum class Arch { x86_64, arm64 };
/** The architecture numacma was built for. */
Arch host_arch() noexcept;
const char* arch_name(Arch a) noexcept;
/** "x86_64" (also "x86-64", "amd64") or "arm64" (also "aarch64"). */
Result<Arch> parse_arch(std::string_view text);

inline constexpr std::uint64_t kCmaMinAlignment = core::kCmaMinAlignmentBytes;  // core/limits.hpp
inline constexpr std::uint64_t k4G = 4ULL << 30;

/** A physical range [start, end) of one node's memory. */
struct PhysRange {
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  int node = -1;
  bool operator==(const PhysRange&) const = default;
};

/** Every online node's memory, sorted by address. */
std::vector<PhysRange> physical_layout(const topo::Topology& t);

/** The limit below which the default area is reserved: x86-64 gives
 *  dma_contiguous_reserve() the end of mapped memory; arm64 its DMA-zone
 *  limit (4 GiB when memory starts below it, capped at the end of memory). */
std::uint64_t default_area_limit(Arch arch, const std::vector<PhysRange>& layout);

class Memblock {
 public:
  explicit Memblock(const std::vector<PhysRange>& memory, std::uint64_t reserved_low = 16ULL << 20);

  /** The end of memory (memblock_end_of_DRAM). */
  std::uint64_t end() const noexcept { return end_; }
  /** cma_declare_contiguous_nid(0, size, limit, 0, ...): the base, or
   *  no_memory with the reason. size must be a multiple of 2 MiB. */
  Result<std::uint64_t> cma_reserve(std::uint64_t size, std::uint64_t limit, int nid);
  /** Carves exactly [start, start + size) out of `nid`'s free memory. */
  Status take(std::uint64_t start, std::uint64_t size, int nid);
  /** The highest `align`-aligned free range of `size` on `nid` below `hi`. */
  Result<std::uint64_t> alloc_top_down(std::uint64_t size, std::uint64_t align, std::uint64_t lo,
                                       std::uint64_t hi, int nid);
  Result<std::uint64_t> alloc_bottom_up(std::uint64_t size, std::uint64_t align, std::uint64_t lo,
                                        std::uint64_t hi, int nid);
  /** Gives [start, start + size) of `nid` back (merged with its neighbours). */
  void give_back(std::uint64_t start, std::uint64_t size, int nid);
  /** Free bytes of a node (-1: all). */
  std::uint64_t free_bytes(int nid) const noexcept;
  const std::vector<PhysRange>& free() const noexcept { return free_; }

 private:
  void carve(std::size_t i, std::uint64_t start, std::uint64_t size);
  std::vector<PhysRange> free_;  // sorted, disjoint, node-tagged
  std::uint64_t end_ = 0;
};

}  // namespace numacma::config
