// src/vfio/iova.hpp — numacma's own IOVA allocator (pure logic: no system
// calls, unit-tested like src/core), and the parsing of what the kernel says
// about IOVA space.
//
//   usable ranges (VFIO_IOMMU_GET_INFO's IOVA_RANGE capability)
//     minus reserved regions (/sys/kernel/iommu_groups/<g>/reserved_regions:
//     the MSI window 0xfee00000-0xfeefffff on x86)
//     minus [0, kIovaFloor)          (so that no DMA address is ever 0)
//   = the free list. alloc(bytes, align, limit) is first fit from the lowest
//   address: low IOVAs reach the most DMA masks, and a container is shared by
//   devices that may be attached later with narrower masks (the kernel's
//   dma-iommu allocates top-down below each device's own mask; a user-space
//   container maps areas once for every device, so lowest-first is the
//   choice that keeps later devices reachable).
#pragma once

#include <cstdint>
#include <map>
#include <string_view>
#include <vector>

#include "numacma/result.hpp"

namespace numacma::vfio {

/** An inclusive range [first, last] of IOVA space. */
struct IovaRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  bool operator==(const IovaRange&) const = default;
};

/** No IOVA below this is handed out (a DMA address of 0 hides bugs). */
inline constexpr std::uint64_t kIovaFloor = std::uint64_t{1} << 20;

/** One reserved region line of sysfs: "0x00000000fee00000 0x00000000feefffff msi".
 *  Returns every region of the text (any type: msi, direct, reserved,
 *  direct-relaxable); a malformed line is an error naming it. */
Result<std::vector<IovaRange>> parse_reserved_regions(std::string_view text);

/** `ranges` less every `holes` range, sorted and merged. */
std::vector<IovaRange> subtract(std::vector<IovaRange> ranges, const std::vector<IovaRange>& holes);

class IovaAllocator {
 public:
  /** Usable ranges (any order, may overlap); [0, kIovaFloor) is left out. */
  explicit IovaAllocator(const std::vector<IovaRange>& usable);

  /**
   * The lowest IOVA that is a multiple of `align` (a power of two, >= 4096)
   * with [iova, iova + bytes) free and iova + bytes - 1 <= limit. bytes > 0,
   * a multiple of 4096. Errors: invalid_argument (bad bytes/align),
   * unreachable (no usable IOVA at all at or below `limit`: the mask is too
   * narrow), no_memory (IOVA space below `limit` exhausted or too
   * fragmented). Messages name sizes and limits.
   */
  Result<std::uint64_t> alloc(std::uint64_t bytes, std::uint64_t align, std::uint64_t limit);

  /** Gives back exactly a range returned by alloc (invalid_argument otherwise). */
  Status free(std::uint64_t iova, std::uint64_t bytes);

  /** Takes a range out of the usable space for good (a reserved region of a
   *  group attached later). invalid_argument when a live allocation overlaps it. */
  Status exclude(IovaRange r);

  /** Free ranges, lowest first. */
  std::vector<IovaRange> free_ranges() const;
  /** The usable ranges it was built with (less the floor), merged. */
  const std::vector<IovaRange>& usable() const noexcept { return usable_; }
  std::uint64_t allocated_bytes() const noexcept { return allocated_; }
  std::size_t live() const noexcept { return live_.size(); }
  /** Free ranges are disjoint, sorted, non-adjacent, inside usable, and
   *  disjoint from every live allocation; byte counts add up. */
  bool invariant() const;

 private:
  std::vector<IovaRange> usable_;
  std::map<std::uint64_t, std::uint64_t> free_;   // first -> last (inclusive)
  std::map<std::uint64_t, std::uint64_t> live_;   // iova -> bytes
  std::uint64_t allocated_ = 0;
};

}  // namespace numacma::vfio
