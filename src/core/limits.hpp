// src/core/limits.hpp — every size limit numacma builds on, named once.
//
// Core layer: no OS, no other layer. Each value says why it is that value;
// code elsewhere in src/ uses these names, never the literals.
#pragma once

#include <cstdint>

namespace numacma::core {

/** P, the base page size areas, shelves and the shared layout are counted in.
 *  4096 on x86-64 and on 4K-page arm64, the only targets; a different runtime
 *  page size is refused by the backings (backing.hpp), not adapted to. */
inline constexpr std::uint64_t kPageBytes = 4096;

/** The most pages one area may have: 2^40 pages of 4 KiB are 4 PiB, more
 *  memory than any machine has, and it keeps pages * P, a bitmap's bit index
 *  and a record count far inside 64 bits whatever is added to them. */
inline constexpr std::uint64_t kMaxAreaPages = std::uint64_t{1} << 40;

/** The largest order_per_bit a pool accepts (R6): one bitmap bit per 2^9 pages
 *  = 2 MiB, a pageblock, the granule a kernel CMA area is reserved in; more
 *  would make even a one-page request use more than an area's granule. */
inline constexpr unsigned kMaxOrderPerBit = 9;

/** The largest order_per_bit core::Area itself takes: far above what a pool
 *  passes (kMaxOrderPerBit), low enough that no shift by it nears 64. */
inline constexpr unsigned kAreaMaxOrderPerBit = 20;

/** CONFIG_CMA_ALIGNMENT: an allocation of 2^k pages is aligned to 2^min(k, 8)
 *  pages (1 MiB at most), as the kernel's cma_alloc aligns. */
inline constexpr unsigned kCmaAlignmentOrder = 8;

/** Every CMA area is a whole number of pageblocks and starts on one (the
 *  kernel's CMA_MIN_ALIGNMENT_BYTES = pageblock_nr_pages << PAGE_SHIFT, 2 MiB
 *  with 4 KiB pages). */
inline constexpr std::uint64_t kCmaMinAlignmentBytes = std::uint64_t{2} << 20;

/** The largest single request (an allocation, a device area, the shared
 *  state file): 2^46 bytes = 64 TiB, beyond any area (kMaxAreaPages * P is
 *  larger only in theory), so a size above it is refused up front and no
 *  rounding of a size can overflow 64 bits. */
inline constexpr std::uint64_t kMaxRequestBytes = std::uint64_t{1} << 46;

static_assert((kPageBytes & (kPageBytes - 1)) == 0, "P is a power of two");
static_assert(kCmaMinAlignmentBytes == kPageBytes << kMaxOrderPerBit,
              "order_per_bit's cap is one bit per CMA granule");
static_assert(kMaxOrderPerBit <= kAreaMaxOrderPerBit);
static_assert(kMaxRequestBytes / kPageBytes <= kMaxAreaPages);

}  // namespace numacma::core
