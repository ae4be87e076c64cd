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
// Marks: every word carries a companion "mark" word (bit i marked or not),
// stored next to it -- data_[2w] is word w, data_[2w + 1] its marks -- so one
// 16-byte pair, never split across a cache line, holds both. The Area marks
// the first bit of each live allocation; a free of a random allocation in a
// large area then costs one cache miss, not two. Marks have no summary tree
// and no search: only test/set/clear and the run checks below.
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
  explicit Bitmap(std::size_t nbits);

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
  /** Sets bits [start, start + n) and the mark of bit start. REQUIRES: n > 0. */
  void set_run(std::size_t start, std::size_t n) noexcept;
  /** Clears bits [start, start + n) and the mark of bit start. REQUIRES: n > 0. */
  void clear_run(std::size_t start, std::size_t n) noexcept;
  /**
   * True iff a marked run of exactly n bits starts at start: start is marked,
   * bits [start, start + n) are set, no bit in (start, start + n) is marked, and
   * bit start + n is past the end, clear or marked. n > 0. Reads only the
   * words the run covers and the one after it (usually one 16-byte pair).
   */
  bool is_marked_run(std::size_t start, std::size_t n) const noexcept;
  /** The mark word w (bit j = mark of bit w * 64 + j). */
  std::uint64_t mark_word(std::size_t w) const noexcept { return data_[2 * w + 1]; }

  std::size_t count_set() const noexcept;
  /** Length of the longest run of clear bits in [from, to). */
  std::size_t largest_clear_run(std::size_t from, std::size_t to) const noexcept;
  std::size_t largest_clear_run() const noexcept { return largest_clear_run(0, nbits_); }

  /** Hex dump, 64 bits a line: "<first bit index>: <16 hex digits, bit 0 = lsb>". */
  std::string dump() const;

  std::size_t word_count() const noexcept { return data_.size() / 2; }
  std::uint64_t word(std::size_t w) const noexcept { return data_[2 * w]; }

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

  std::uint64_t& wd(std::size_t w) noexcept { return data_[2 * w]; }
  std::uint64_t wd(std::size_t w) const noexcept { return data_[2 * w]; }

  std::size_t nbits_ = 0;
  std::size_t nwords_ = 0;
  /** Pairs (word, mark word): data_[2w] = bits 64w.., data_[2w + 1] = their marks. */
  std::vector<std::uint64_t> data_;
  /** The "full" summary, a 64-ary tree: bit j of full_[0] is set iff word j
   *  is all ones; bit j of full_[k] iff full_[k-1][j] is all ones. The top
   *  level is one word, so finding the next non-full word costs a handful of
   *  countr_zero whatever the size (64 GiB of 4 KiB pages: 3 levels). */
  std::vector<std::vector<std::uint64_t>> full_;
};

}  // namespace numacma::core
