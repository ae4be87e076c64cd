// src/dmapool/layout.hpp — where the blocks of a dma_pool page lie (pure
// logic: no system calls, no memory of the pool's own).
//
// The kernel's dma_pool_create rules (mm/dmapool.c), applied once per pool:
//   align 0 -> 1; align not a power of two -> error
//   size 0 or > INT_MAX -> error; size < 16 -> 16 (the kernel's free-block
//   record); size rounded up to align
//   page bytes = max(size, 4096)
//   boundary 0 -> the page; boundary not a power of two, or < size -> error;
//   boundary = min(boundary, page bytes)
// and pool_initialise_page's carving: blocks at 0, size, 2*size, ... except
// that a block that would cross the next boundary starts at that boundary.
//
// Locating a block from an address: slots of 2^slot_shift bytes, where
// 2^slot_shift <= block size, so no two blocks start in the same slot;
// slot_block[off >> slot_shift] names the only block that can start there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/limits.hpp"
#include "numacma/result.hpp"

namespace numacma::dmapool {

struct Layout {
  std::size_t block = 0;       ///< block size (rounded up to align)
  std::size_t align = 1;
  std::size_t boundary = 0;
  std::size_t page_bytes = 0;  ///< bytes asked of alloc_coherent per page
  std::size_t boundary_asked = 0;  ///< the caller's boundary (0: none)
  unsigned slot_shift = 0;
  std::vector<std::uint32_t> offsets;     ///< block index -> offset in the page
  std::vector<std::int32_t> slot_block;   ///< slot -> block index, -1 = none

  std::size_t blocks() const noexcept { return offsets.size(); }
  /** The block that starts exactly at `off`, or -1 (inside a block, in the
   *  padding before a boundary, past the page). */
  /** True when a page at DMA address `dma` keeps the caller's boundary:
   *  each block's offset respects it only if the page starts on one (or, for
   *  a boundary beyond the page, the page crosses none). */
  bool page_fits(std::uint64_t dma) const noexcept {
    if (boundary_asked == 0) return true;
    if (boundary_asked <= page_bytes) return dma % boundary_asked == 0;
    return dma / boundary_asked == (dma + page_bytes - 1) / boundary_asked;
  }
  std::int32_t block_at(std::uint64_t off) const noexcept {
    if (off >= page_bytes) return -1;
    const std::int32_t b = slot_block[static_cast<std::size_t>(off >> slot_shift)];
    return b >= 0 && offsets[static_cast<std::size_t>(b)] == off ? b : -1;
  }
};

/** The layout for dma_pool_create(size, align, boundary); invalid_argument
 *  with the reason when the kernel would return NULL, its message "who: reason"
 *  (who names the pool: "dma_pool prp"). `page` is the system page size. */
Result<Layout> make_layout(std::size_t size, std::size_t align, std::size_t boundary,
                           std::size_t page = core::kPageBytes, std::string_view who = "dma_pool");

}  // namespace numacma::dmapool
