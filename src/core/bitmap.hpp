// src/core/bitmap.hpp — the allocation bitmap of one CMA area.
//
//   bit i  <->  pages [i << order_per_bit, (i + 1) << order_per_bit) of the area
//   1 = allocated, 0 = free
//
//   word 0                word 1                 ...   word W-1 (tail bits past
//   [b0 b1 ... b63]       [b64 ... b127]                size() are always 0 and
//                                                        never handed out)
//
// Invariants (checked by consistent(), Area::invariant() and the fuzz targets):
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
//
// Two storage modes, one implementation (every method reads and writes
// through the same pointers):
//  - owned (the constructor): heap words this Bitmap frees; expand() and mark
//    refinement reallocate them. A private pool's areas.
//  - external (view()): caller memory, storage_words(nbits) words laid out as
//      [0]                   the first_open hint (see first_open below)
//      [1, 1 + W)            the bit words
//      then ceil(nbits/64)   mark words, grid 1 for ever (mark_shift 0)
//      then each level       of the summary tree, level 0 first
//    never reallocated, never freed: a shared pool's area, whose mapping
//    other processes (possibly hostile ones) can write. Its contents are
//    untrusted input: whatever they hold, no method reads or writes outside
//    the span, hits UB or loops forever (answers may then be wrong; Area's
//    invariant() tells). Every index derived from a stored word (the hint,
//    a summary bit, a mark) is clamped or bounds-checked.
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
  /** An empty owned bitmap (size() 0); what a moved-from Bitmap becomes. */
  Bitmap() = default;
  /** nbits bits, all clear, owned; marks on a grid of 2^mark_shift bits (at most 48). */
  explicit Bitmap(std::size_t nbits, unsigned mark_shift = 0);

  /** Words of external storage a view of nbits bits needs: the hint word,
   *  the bit words, the mark words at grid 1 and every summary level. */
  static std::size_t storage_words(std::size_t nbits) noexcept;
  /**
   * A bitmap over storage[0, storage_words(nbits)), which it neither owns
   * nor frees; marks on the grid of 1 bit for ever. The contents are used as
   * they are: a bitmap another process left, zeros (clear_all() makes them
   * so), or garbage.
   */
  static Bitmap view(std::uint64_t* storage, std::size_t nbits) noexcept;

  Bitmap(const Bitmap& o);
  Bitmap(Bitmap&& o) noexcept;
  Bitmap& operator=(const Bitmap& o);
  Bitmap& operator=(Bitmap&& o) noexcept;
  ~Bitmap() = default;

  /** True for a view(): caller storage, fixed size and mark grid. */
  bool external() const noexcept { return external_; }
  /** Every bit, mark and summary word zero, the hint 0, in place. */
  void clear_all() noexcept;

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
   * REQUIRES: owned storage (a view does nothing).
   */
  void expand(unsigned d);
  /** log2 of the mark grid, in bits. */
  unsigned mark_shift() const noexcept { return mark_shift_; }
  /** Sets bits [start, start + n) and the mark of bit start, refining the mark
   *  grid first if start is off it (which allocates; never for a view, whose
   *  grid is 1). REQUIRES: n > 0. */
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

  std::size_t word_count() const noexcept { return nwords_; }
  /** REQUIRES: w < word_count(). */
  std::uint64_t word(std::size_t w) const noexcept { return words_[w]; }
  /** Bytes of bit words, mark words and summary tree. */
  std::size_t footprint_bytes() const noexcept;

  /** First clear bit in [i, to), or SIZE_MAX; full words are skipped through
   *  the summary tree, so a long full stretch costs O(levels).
   *  REQUIRES: to <= size(). */
  std::size_t next_clear(std::size_t i, std::size_t to) const noexcept;

  /**
   * The stored structure agrees with the bit words: tail bits and marks past
   * size() zero, every summary bit equal to its item's fullness, every word
   * below the hint full. Always true of an owned bitmap; a view's storage may
   * have been written by anyone. O(storage). False with the reason in *why.
   */
  bool consistent(std::string* why = nullptr) const;

 private:
  /** A run of words: a summary level, the marks. */
  struct Span {
    std::uint64_t* p = nullptr;
    std::size_t n = 0;
  };
  /** Levels of the summary of at most 2^58 words (any size_t nbits). */
  static constexpr unsigned kMaxLevels = 10;

  /** First set bit in [i, to), or SIZE_MAX. */
  std::size_t next_set(std::size_t i, std::size_t to) const noexcept;
  template <bool kSet>
  void apply(std::size_t start, std::size_t n) noexcept;
  void refresh_summary(std::size_t word) noexcept;
  /** First word index >= w that is not all ones, or SIZE_MAX. */
  std::size_t next_nonfull_word(std::size_t w) const noexcept;

  /** Rebuilds the marks on the grid of 2^shift bits (shift < mark_shift_). */
  void refine_marks(unsigned shift);
  /** Sizes nbits_, nwords_, levels_ and the level sizes for nbits. */
  void size_for(std::size_t nbits) noexcept;
  /** Words of all the summary levels. */
  std::size_t summary_words() const noexcept;
  /** Becomes Bitmap() (the source of a move). */
  void make_empty() noexcept;
  /** Points words_ at words and the summary levels, one after the other, at levels. */
  void place(std::uint64_t* words, std::uint64_t* levels) noexcept;
  /** After a copy or a move: the pointers into own_ / own_marks_. */
  void repoint() noexcept;

  /**
   * The first_open hint: every word below it is all ones (nwords_ if all
   * are), so a first-fit search from the start begins there; set_range moves
   * it up when it fills its word, clear_range down to the word it clears.
   * Owned: first_open_, which only this code writes. A view: storage[0], the
   * word before words_, which anyone may have written: clamped on every read.
   * (The owned hint is a plain member, not a pointer, because it heads the
   * first-fit search's chain of dependent loads: the branch on external_ is
   * cheaper than one more load.)
   */
  std::size_t first_open() const noexcept {
    if (!external_) return first_open_;
    const std::uint64_t h = words_[-1];
    return h < nwords_ ? static_cast<std::size_t>(h) : nwords_;
  }
  void set_first_open(std::size_t w) noexcept {
    if (external_) words_[-1] = w;
    else first_open_ = w;
  }

  std::size_t nbits_ = 0;
  std::size_t nwords_ = 0;
  std::uint64_t* words_ = nullptr;  ///< word w = bits 64w .. 64w + 63
  std::size_t first_open_ = 0;      ///< the owned hint (see first_open())
  unsigned mark_shift_ = 0;
  /** Bit j of marks_.p[j / 64]: an allocation starts at bit j << mark_shift_. */
  Span marks_;
  /** The "full" summary, a 64-ary tree: bit j of full_[0] is set iff word j
   *  is all ones; bit j of full_[k] iff word j of full_[k-1] is all ones. The
   *  top level is one word, so finding the next non-full word costs a handful
   *  of countr_zero whatever the size (64 GiB of 4 KiB pages: 3 levels). */
  Span full_[kMaxLevels];
  unsigned levels_ = 0;
  bool external_ = false;
  std::vector<std::uint64_t> own_;        ///< owned: the bit words, then the summary levels
  std::vector<std::uint64_t> own_marks_;  ///< owned: the marks (refinement replaces them)
};

}  // namespace numacma::core
