// src/core/area.hpp — one CMA area (mm/cma.c's struct cma), with no OS in it.
//
//   cpu_base                                                  cpu_base + pages*P
//   |<-- segment 0 (dma_base A) -->|<-- segment 1 (dma_base B) ------------->|
//   | page 0 | page 1 | ...        | page k | ...                            |
//   bitmap bit i covers pages [i << order_per_bit, (i+1) << order_per_bit)
//
// An area is a span of `pages` pages of size P (the base page size, 4096 on
// x86-64) handed to it by a Backing. The span is split into segments, each
// physically (or IOVA-) contiguous: page j of segment s has DMA address
// s.dma_base + (j - s.first_page) * P. No allocation ever spans two segments,
// so a buffer's DMA addresses are always contiguous.
//
// alloc() is cma_alloc(): count pages, first fit from the start of the area,
// the start aligned to P << align_order in DMA-address space (docs/semantics.md A6);
// a first fit whose end lies above dma_limit is refused (A8) and counted as
// the kernel's allocate, check, release. release() is cma_release() but
// strict: it must name a live allocation exactly (F2). alloc() = find(), the
// search and its failure accounting, then commit(), the marking: a caller
// that must record an allocation elsewhere before it is live (a shared
// pool's journal) does so in between.
//
// The allocation state (bitmap, AreaCounters) lives in one of two places:
//  - owned (create()): this object's heap and members, the bits as coarse as
//    the allocations allow (q_ below). A private pool's area.
//  - external (create_over()): caller memory, storage_words(config) words of
//    bitmap and one AreaCounters, at order_per_bit for ever: a shared pool's
//    area, allocated on directly by several processes. That memory may be
//    written by anyone (another process, a hostile one): no method reads or
//    writes outside it, hits UB or loops forever whatever it holds; garbage
//    only gives wrong answers, and invariant() says so. Exact page counts of
//    allocations that are not whole bits are the caller's to keep (there is
//    no odd_ map; release() checks the run's length in bits).
// The configuration (segments, DMA bases) is this object's in both modes.
//
// Not thread-safe: the Pool holds one lock per Area (a shared area's lock is
// in the shared mapping).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "core/bitmap.hpp"
#include "core/limits.hpp"
#include "numacma/result.hpp"

namespace numacma::core {

struct Segment {
  std::uint64_t first_page = 0;  ///< index of the segment's first page in the area
  std::uint64_t pages = 0;
  std::uint64_t dma_base = 0;    ///< DMA address of the segment's first page
};

struct AreaConfig {
  std::string name;
  int node = -1;
  std::uint64_t page_size = kPageBytes;  ///< P; a power of two
  std::uint64_t pages = 0;         ///< > 0, a multiple of 1 << order_per_bit
  unsigned order_per_bit = 0;
  unsigned max_align_order = kCmaAlignmentOrder;  ///< CONFIG_CMA_ALIGNMENT
  /** Sorted, partitioning [0, pages); each a multiple of 1 << order_per_bit.
   *  Empty means one segment with dma_base 0. */
  std::vector<Segment> segments;
  std::uintptr_t cpu_base = 0;     ///< CPU address of page 0 (never dereferenced here)
};

struct AreaStats {
  std::string name;
  int node = -1;
  std::uint64_t base_dma = 0;      ///< DMA address of page 0
  std::uint64_t pages = 0;         ///< count
  unsigned order_per_bit = 0;
  std::uint64_t used = 0;          ///< pages allocated
  std::uint64_t maxchunk = 0;      ///< largest free run, in pages, within one segment
  std::uint64_t alloc_pages_success = 0;
  std::uint64_t alloc_pages_fail = 0;
  std::uint64_t release_pages_success = 0;
  std::uint64_t segments = 0;
};

/** The counters of an area, where an external area's live in shared memory:
 *  used_pages and live follow from the bitmap (derived state); the other
 *  three are the kernel's (mm/cma.c) and only ever grow. */
struct AreaCounters {
  std::uint64_t used_pages;            ///< pages of the live allocations' bits
  std::uint64_t live;                  ///< live allocations
  std::uint64_t alloc_pages_success;
  std::uint64_t alloc_pages_fail;
  std::uint64_t release_pages_success;
};
// A shared pool's state file holds it (shared/layout.hpp AreaState): pinned.
static_assert(sizeof(AreaCounters) == 40 && alignof(AreaCounters) == 8);
static_assert(std::is_trivially_copyable_v<AreaCounters> && std::is_standard_layout_v<AreaCounters>);
static_assert(offsetof(AreaCounters, used_pages) == 0 && offsetof(AreaCounters, live) == 8 &&
              offsetof(AreaCounters, alloc_pages_success) == 16 &&
              offsetof(AreaCounters, alloc_pages_fail) == 24 &&
              offsetof(AreaCounters, release_pages_success) == 32);

/** Where an external area's state lives (Area::create_over). */
struct AreaStorage {
  std::uint64_t* bitmap = nullptr;    ///< Area::storage_words(config) words
  AreaCounters* counters = nullptr;
};

/** A live allocation handed out by Area::alloc. */
struct Block {
  std::uint64_t first_page = 0;
  std::uint64_t pages = 0;
  std::uint64_t dma_addr = 0;
  std::uintptr_t cpu = 0;
};

class Area {
 public:
  /** Validates the config (sizes, power-of-two page, segment partition).
   *  Owned storage, all free, counters zero. */
  static Result<Area> create(AreaConfig config);

  /** Words of bitmap storage an external area of this config needs. */
  static std::size_t storage_words(const AreaConfig& config);
  /**
   * An area over caller storage (see the top of this file), validated as
   * create() validates; bits of 2^order_per_bit pages for ever. init: clear
   * the bitmap and the counters (a fresh area); else adopt what is there
   * (another process's live state, or garbage: invariant() tells which).
   * invalid_argument for a null pointer.
   */
  static Result<Area> create_over(AreaConfig config, AreaStorage storage, bool init);

  /**
   * This area with its DMA addresses moved (an IOMMU maps its memory
   * elsewhere): `segments` replace the configuration's, validated as
   * create() validates them. An external area keeps its storage and all in
   * it (every process's live allocations; from now on alignment follows the
   * new addresses); an owned area must have nothing live (busy otherwise)
   * and starts empty, the kernel's counters carried over.
   */
  Result<Area> with_segments(std::vector<Segment> segments) const;

  Area(const Area& o);
  Area(Area&& o) noexcept;
  Area& operator=(const Area& o);
  Area& operator=(Area&& o) noexcept;
  ~Area() = default;

  /** True for an area over caller storage (create_over). */
  bool external() const noexcept { return bitmap_.external(); }

  /**
   * cma_alloc(count, align_order) = find() then commit(), and dma-direct's
   * look at what it returns. align_order is clamped to max_align_order. The
   * search is cma_alloc's, first fit over the whole area; dma_limit (the
   * device's mask: the highest DMA address the last byte may have) is looked
   * at after it, as dma_coherent_ok is: a first fit above it is taken, found
   * unreachable and released by the kernel (dma_free_contiguous), so it is
   * counted in alloc_pages_success and release_pages_success, nothing stays
   * marked, and the answer is Errc::unreachable (docs/semantics.md A8: an area whose
   * addresses the device cannot reach serves nothing). No fit at all:
   * counted in alloc_pages_fail, Errc::no_memory (Errc::unreachable when no
   * page of the area is at or below dma_limit). Not counted, as the kernel
   * returns before its accounting: count == 0 (Errc::invalid_argument) and a
   * count of more bitmap bits than the whole area (Errc::no_memory).
   */
  Result<Block> alloc(std::uint64_t count, unsigned align_order,
                      std::uint64_t dma_limit = UINT64_MAX);
  /** alloc()'s search and its failure accounting (alloc_pages_fail, the same
   *  errors): the block alloc() would return, not yet marked. A first fit
   *  above dma_limit is not counted here: it goes to *above (when given) and
   *  the caller counts it with count_taken_and_released() (a recorded area:
   *  core::record_taken_and_released). Changes nothing else, but for an
   *  owned area's bits getting finer (which decides nothing). */
  Result<Block> find(std::uint64_t count, unsigned align_order,
                     std::uint64_t dma_limit = UINT64_MAX, Block* above = nullptr);
  /** Counts `pages` allocated and released at once: cma_alloc's success
   *  and the cma_release that dma-direct makes of a buffer above the mask. */
  void count_taken_and_released(std::uint64_t pages) noexcept {
    counters_->alloc_pages_success += pages;
    counters_->release_pages_success += pages;
  }
  /** Marks b live and counts it (alloc_pages_success, used_pages, live).
   *  REQUIRES: b came from find() with nothing changed in between. */
  void commit(const Block& b);

  /** cma_release: (first_page, count) must be a live allocation exactly. An
   *  external area, which keeps no exact counts, checks that a marked run
   *  starts at first_page and is ceil(count / 2^order_per_bit) bits long. */
  Status release(std::uint64_t first_page, std::uint64_t count);

  /** Marks a known allocation of `count` pages at `first_page` as live, as
   *  alloc() would have left it, without counting it in the kernel's
   *  counters: rebuilding an area from the allocation records of a shared
   *  pool. corrupt (and nothing changed) when it is off a bit, beyond the
   *  area, across a segment boundary or over another allocation, whatever
   *  the count (no overflow for a count from a hostile record). */
  Status restore(std::uint64_t first_page, std::uint64_t count);
  std::uint64_t alloc_pages_fail() const noexcept { return counters_->alloc_pages_fail; }
  /** Forgets every allocation (used_pages and live become 0, the kernel's
   *  counters stay); the configuration, and so contains_cpu / dma_of_page,
   *  never change. An external area is cleared in place. */
  void clear_allocations();

  /** CPU-address lookup used by the pool's free path. */
  bool contains_cpu(std::uintptr_t cpu) const noexcept {
    return cpu >= cfg_.cpu_base && cpu < cfg_.cpu_base + cfg_.pages * cfg_.page_size;
  }
  std::uint64_t page_of_cpu(std::uintptr_t cpu) const noexcept {
    return (cpu - cfg_.cpu_base) / cfg_.page_size;
  }
  /** DMA address of page `page` (REQUIRES: page < pages). */
  std::uint64_t dma_of_page(std::uint64_t page) const noexcept;
  /** Lowest DMA address of any page of the area. */
  std::uint64_t lowest_dma() const noexcept { return lowest_dma_; }

  AreaStats stats() const;
  std::uint64_t live_allocations() const noexcept { return counters_->live; }
  /** The counters (an external area's are the caller's memory): the journal
   *  of a recorded area (core/records.hpp) sets the kernel's ones. */
  AreaCounters& counters() noexcept { return *counters_; }
  const AreaCounters& counters() const noexcept { return *counters_; }
  /** The bitmap at order_per_bit granularity (Bitmap::dump's format). */
  std::string dump_bitmap() const;
  /** log2 of the pages one bitmap bit covers now (>= order_per_bit). */
  unsigned pages_per_bit_order() const noexcept { return q_; }
  /** Bytes of allocation metadata: bitmap, allocation marks, summary tree. */
  std::size_t metadata_bytes() const noexcept { return bitmap_.footprint_bytes(); }
  const AreaConfig& config() const noexcept { return cfg_; }
  const std::string& name() const noexcept { return cfg_.name; }
  int node() const noexcept { return cfg_.node; }

  /**
   * Recomputes used pages and the live-allocation map from the bitmap and
   * checks they agree with the counters and that the bitmap's summary and
   * hint agree with its words; false (with the reason in *why) if not. Used
   * by tests and debug builds, and to vet an external area's adopted state.
   */
  bool invariant(std::string* why = nullptr) const;

 private:
  /** Owned storage, bits as coarse as the segments allow. */
  explicit Area(AreaConfig config);
  /** Over storage, bits of 2^order_per_bit pages. */
  Area(AreaConfig config, AreaStorage storage);
  /** find() (kCommit false) or alloc() (true: find, then commit the run
   *  found, which is known to fit). */
  template <bool kCommit>
  Result<Block> search(std::uint64_t count, unsigned align_order, std::uint64_t dma_limit, Block* above);
  /** cma_alloc's search: the first free run of `count` pages (whole bits of
   *  the current q_) aligned to align_order in DMA space, in area order. */
  bool first_fit(std::uint64_t count, unsigned align_order, Block* out);
  /** create()'s checks; fills in the one default segment. */
  static Status validate(AreaConfig& c);

  /** Bits [b, end) of the live allocation starting at bit b: up to the next
   *  clear bit or the next allocation start. REQUIRES: bitmap_.test_mark(b). */
  std::uint64_t run_bits(std::uint64_t b) const noexcept;
  /** Index of the segment holding `page` (REQUIRES: page < pages). */
  std::size_t segment_of_page(std::uint64_t page) const noexcept;
  /** The coarsest q the segments allow (see q_), at most order_per_bit + 8. */
  static unsigned initial_q(const AreaConfig& c) noexcept;
  /** Records a live allocation of `count` pages at first_page: bits [b, b + bits)
   *  of the current grid (alloc, commit, restore). */
  void take(std::uint64_t b, std::uint64_t bits, std::uint64_t first_page, std::uint64_t count);
  /** Makes each bit cover 2^q pages (q < q_): every bit becomes 2^(q_ - q).
   *  Owned areas only (an external one is at order_per_bit already). */
  void refine(unsigned q);

  AreaConfig cfg_;
  // One bitmap bit covers 2^q_ pages. q_ starts as coarse as the segments
  // allow (up to 2^8 pages) and is refined, never coarsened, the first time
  // an allocation's page count is not a whole number of bits: while every
  // live allocation and every segment is a whole number of bits, first fit
  // over bits and first fit over pages give the same answer (every free run
  // starts and ends on a bit boundary), so the coarse bitmap is exact. An
  // area that only hands out 64 KiB multiples keeps a bit per 16 pages: its
  // metadata is 1/16 of a page-granular bitmap's. q_ >= order_per_bit, whose
  // rounding of sizes (R6) is unchanged. An external area's q_ is
  // order_per_bit for ever: its storage is sized for that, and other
  // processes read the same bits.
  unsigned q_ = 0;
  // The used bits and the live allocations, with no per-allocation heap node
  // (a hash map of every live allocation made the free path of a large area a
  // cache miss):
  //   bitmap_  bit b set iff bit b is allocated; bit b MARKED iff a live
  //            allocation starts at bit b (marks on a grid as coarse as the
  //            starts allow, see bitmap.hpp); an allocation runs over the set
  //            bits up to the next clear bit or mark
  //   odd_     first_page -> pages, only for an allocation whose page count is
  //            not a whole number of bits (order_per_bit > 0); empty otherwise,
  //            and always in an external area (its owner keeps exact counts)
  Bitmap bitmap_;
  std::unordered_map<std::uint64_t, std::uint64_t> odd_;
  std::uint64_t lowest_dma_ = UINT64_MAX;
  // The counters: own_counters_ for an owned area (copies and moves point
  // counters_ at their own), the caller's for an external one.
  AreaCounters own_counters_{};
  AreaCounters* counters_ = &own_counters_;
};

}  // namespace numacma::core
