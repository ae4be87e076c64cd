// src/core/bitmap.hpp — the allocation bitmap of one CMA area.
//
//   bit i  <->  pages [i << order_per_bit, (i + 1) << order_per_bit) of the area
//   1 = allocated, 0 = free
//
//   word 0                word 1                 ...   word W-1 (tail bits past
//   [b0 b1 ... b63]       [b64 ... b127]                size() are always 0 and
//                                                        never handed out)
//
// Invariants (checked by Area::invariant() and the fuzz target):
//  - bits at index >= size() are zero;
//  - set_range/clear_range touch exactly [start, start + n);
//  - find_clear_run returns the FIRST index i in [from, to) such that
//    [i, i + n) is clear, i + n <= to, and (i + align_offset) & align_mask == 0
//    (the kernel's bitmap_find_next_zero_area_off); the search is
//    word-at-a-time (count-trailing-zeros over 64-bit words), never a loop
//    over single bits.
// Marks: the Area marks the first bit of each live allocation. Starts are
// kept on a grid of 2^mark_shift bits: mark bit j says "an allocation starts at
// bit j << mark_shift". The grid starts coarse (the area's largest alignment)
// and is refined, once and for good, the first time an allocation starts off
// it (set_run rebuilds the marks at the finer grid, O(marks)). A bitmap whose
// runs all start on multiples of 16 bits thus spends 1/16 mark bit per bit
// instead of 1. (Area also makes each bit cover as many pages as its
// allocations allow, see area.hpp; with both, a 64 GiB area of 64 KiB buffers
// keeps 258 KiB of metadata.) Marks have no summary tree and no search beyond
// next_mark.
// Not thread-safe: the owning Area's lock protects it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace numacma::core {

class Bitmap {
 public:
  Bitmap() = default;
  /** nbits bits, all clear; marks on a grid of 2^mark_shift bits (at most 48). */
  explicit Bitmap(std::size_t nbits, unsigned mark_shift = 0);

  std::size_t size() const noexcept { return nbits_; }
  bool test(std::size_t i) const noexcept;

  // REQUIRES: start + n <= size()
  void set_range(std::size_t start, std::size_t n) noexcept;
  void clear_range(std::size_t start, std::size_t n) noexcept;
  bool range_is_clear(std::size_t start, std::size_t n) const noexcept;
  bool range_is_set(std::size_t start, std::size_t n) const noexcept;

  /**
   * First-fit search for n clear bits in [from, to) whose start index i
   * satisfies (i + align_offset) & align_mask == 0. align_mask must be
   * 2^k - 1. Returns nullopt when no such run exists (or n == 0).
   */
  std::optional<std::size_t> find_clear_run(std::size_t n, std::size_t align_mask,
                                            std::size_t align_offset, std::size_t from,
                                            std::size_t to) const noexcept;

  bool test_mark(std::size_t i) const noexcept;
  /** First marked bit in [i, to), or SIZE_MAX. */
  std::size_t next_mark(std::size_t i, std::size_t to) const noexcept;
  /**
   * Every bit becomes 2^d bits (size() grows 2^d times): bit i set becomes
   * bits [i << d, (i + 1) << d) set, a mark at i a mark at i << d (the mark
   * grid grows with it). O(size() << d). Used when an Area's bits get finer.
   */
  void expand(unsigned d);
  /** log2 of the mark grid, in bits. */
  unsigned mark_shift() const noexcept { return mark_shift_; }
  /** Sets bits [start, start + n) and the mark of bit start, refining the mark
   *  grid first if start is off it (which allocates). REQUIRES: n > 0. */
  void set_run(std::size_t start, std::size_t n);
  /** Clears bits [start, start + n) and the mark of bit start. REQUIRES: n > 0. */
  void clear_run(std::size_t start, std::size_t n) noexcept;
  /**
   * True iff a marked run of exactly n bits starts at start: start is marked,
   * bits [start, start + n) are set, no bit in (start, start + n) is marked, and
   * bit start + n is past the end, clear or marked. n > 0. Reads only the
   * words the run covers, the one after it and the marks of the run's grid
   * points (usually one word of each).
   */
  bool is_marked_run(std::size_t start, std::size_t n) const noexcept;

  std::size_t count_set() const noexcept;
  /** Length of the longest run of clear bits in [from, to). */
  std::size_t largest_clear_run(std::size_t from, std::size_t to) const noexcept;
  std::size_t largest_clear_run() const noexcept { return largest_clear_run(0, nbits_); }

  /** Hex dump, 64 bits a line: "<first bit index>: <16 hex digits, bit 0 = lsb>". */
  std::string dump() const;

  std::size_t word_count() const noexcept { return words_.size(); }
  std::uint64_t word(std::size_t w) const noexcept { return words_[w]; }
  /** Bytes of bit words, mark words and summary tree. */
  std::size_t footprint_bytes() const noexcept {
    std::size_t words = words_.size() + marks_.size();
    for (const auto& level : full_) words += level.size();
    return words * sizeof(std::uint64_t);
  }

  /** First clear bit in [i, to), or SIZE_MAX; full words are skipped through
   *  the summary tree, so a long full stretch costs O(levels). */
  std::size_t next_clear(std::size_t i, std::size_t to) const noexcept;

 private:
  /** First set bit in [i, to), or SIZE_MAX. */
  std::size_t next_set(std::size_t i, std::size_t to) const noexcept;
  template <bool kSet>
  void apply(std::size_t start, std::size_t n) noexcept;
  void refresh_summary(std::size_t word) noexcept;
  /** First word index >= w that is not all ones, or SIZE_MAX. */
  std::size_t next_nonfull_word(std::size_t w) const noexcept;

  /** Rebuilds the marks on the grid of 2^shift bits (shift < mark_shift_). */
  void refine_marks(unsigned shift);

  std::uint64_t& wd(std::size_t w) noexcept { return words_[w]; }
  std::uint64_t wd(std::size_t w) const noexcept { return words_[w]; }

  std::size_t nbits_ = 0;
  std::size_t nwords_ = 0;
  std::vector<std::uint64_t> words_;  ///< word w = bits 64w .. 64w + 63
  /** Every word below it is all ones (nwords_ if all are): a first-fit search
   *  from the start begins here. set_range moves it up when it fills its
   *  word, clear_range down to the word it clears. */
  std::size_t first_open_ = 0;
  unsigned mark_shift_ = 0;
  /** Bit j of marks_[j / 64]: an allocation starts at bit j << mark_shift_. */
  std::vector<std::uint64_t> marks_;
  /** The "full" summary, a 64-ary tree: bit j of full_[0] is set iff word j
   *  is all ones; bit j of full_[k] iff full_[k-1][j] is all ones. The top
   *  level is one word, so finding the next non-full word costs a handful of
   *  countr_zero whatever the size (64 GiB of 4 KiB pages: 3 levels). */
  std::vector<std::vector<std::uint64_t>> full_;
};

}  // namespace numacma::core
