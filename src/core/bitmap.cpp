// src/core/bitmap.cpp — word-at-a-time bitmap with a "full word" summary tree.
//
//   words_[w]        word w: 64 bits, 1 = allocated
//   marks_           bit j: an allocation starts at bit j << mark_shift_
//   full_[0][s]      bit (w % 64) of full_[0][w / 64] is set iff word w == ~0
//   full_[k][s]      bit (j % 64) of full_[k][j / 64] is set iff full_[k-1][j] == ~0
//   full_.back()     a single word
//
// first_open_ (every word below it is full) lets a first-fit scan from the
// start of a nearly full area begin at its first hole; from there the tree
// lets it skip any stretch of full words in O(levels) countr_zero steps
// (level k skips 64^(k+1) words), which keeps a nearly-full area cheap to
// search however large it is: 64 MiB of
// 4 KiB pages has 2 levels, 64 GiB has 3. set_range/clear_range update only
// the words they touch, and a summary bit only when its word's fullness flips.
#include "core/bitmap.hpp"

#include <algorithm>
#include <bit>
#include <cstdio>

namespace numacma::core {

namespace {

constexpr std::size_t kBits = 64;
constexpr std::uint64_t kAll = ~std::uint64_t{0};

/** Bits [lo, hi) of a word set (0 <= lo < hi <= 64). */
constexpr std::uint64_t span_mask(std::size_t lo, std::size_t hi) noexcept {
  const std::uint64_t upto_hi = hi == kBits ? kAll : ((std::uint64_t{1} << hi) - 1);
  return upto_hi & ~((std::uint64_t{1} << lo) - 1);
}

constexpr std::size_t kNone = static_cast<std::size_t>(-1);

}  // namespace

namespace {
/** Words of a mark vector for nbits bits on a grid of 2^shift. */
std::size_t mark_words(std::size_t nbits, unsigned shift) noexcept {
  const std::size_t points = (nbits >> shift) + ((nbits & ((std::size_t{1} << shift) - 1)) != 0);
  return std::max<std::size_t>((points + kBits - 1) / kBits, 1);
}
}  // namespace

Bitmap::Bitmap(std::size_t nbits, unsigned mark_shift)
    : nbits_(nbits),
      nwords_((nbits + kBits - 1) / kBits),
      words_(nwords_, 0),
      mark_shift_(std::min(mark_shift, 48u)),
      marks_(mark_words(nbits, mark_shift_), 0) {
  std::size_t n = nwords_;
  do {
    n = (n + kBits - 1) / kBits;
    full_.emplace_back(std::max<std::size_t>(n, 1), 0);
  } while (n > 1);
}

bool Bitmap::test(std::size_t i) const noexcept {
  return i < nbits_ && ((wd(i / kBits) >> (i % kBits)) & 1u) != 0;
}

void Bitmap::refresh_summary(std::size_t w) noexcept {
  bool full = wd(w) == kAll;
  for (auto& level : full_) {
    std::uint64_t& word = level[w / kBits];
    const bool was = word == kAll;
    const std::uint64_t bit = std::uint64_t{1} << (w % kBits);
    if (full) word |= bit;
    else word &= ~bit;
    full = word == kAll;
    if (full == was) return;  // the level above does not change
    w /= kBits;
  }
}

std::size_t Bitmap::next_nonfull_word(std::size_t w) const noexcept {
  // Up: the first level whose word still has a non-full item at or after w.
  std::size_t j = w;
  std::size_t k = 0;
  for (;; ++k) {
    if (k == full_.size()) return kNone;
    const std::vector<std::uint64_t>& level = full_[k];
    const std::size_t s = j / kBits;
    if (s >= level.size()) return kNone;
    const std::uint64_t notfull = ~level[s] & (kAll << (j % kBits));
    if (notfull != 0) {
      j = s * kBits + static_cast<std::size_t>(std::countr_zero(notfull));
      break;
    }
    j = s + 1;  // the next word of this level is item s + 1 of the level above
  }
  // Down: item j of level k is not full; take the first non-full item below it.
  while (k > 0) {
    --k;
    if (j >= full_[k].size()) return kNone;  // tail bits past the last word
    j = j * kBits + static_cast<std::size_t>(std::countr_zero(~full_[k][j]));
  }
  return j < nwords_ ? j : kNone;
}

template <bool kSet>
void Bitmap::apply(std::size_t start, std::size_t n) noexcept {
  if (n == 0) return;
  std::size_t i = start;
  const std::size_t end = start + n;
  while (i < end) {
    const std::size_t w = i / kBits, lo = i % kBits;
    const std::size_t hi = std::min(kBits, lo + (end - i));
    const std::uint64_t m = span_mask(lo, hi);
    if constexpr (kSet) wd(w) |= m;
    else wd(w) &= ~m;
    refresh_summary(w);
    if constexpr (kSet) {
      if (w == first_open_ && wd(w) == kAll) first_open_ = std::min(next_nonfull_word(w + 1), nwords_);
    } else {
      if (w < first_open_) first_open_ = w;
    }
    i += hi - lo;
  }
}

void Bitmap::set_range(std::size_t start, std::size_t n) noexcept { apply<true>(start, n); }
void Bitmap::clear_range(std::size_t start, std::size_t n) noexcept { apply<false>(start, n); }

std::size_t Bitmap::next_clear(std::size_t i, std::size_t to) const noexcept {
  // Every word below first_open_ is full: a search from the start begins there.
  i = std::max(i, first_open_ * kBits);
  while (i < to) {
    std::size_t w = i / kBits;
    const std::uint64_t free_bits = ~wd(w) & ~((std::uint64_t{1} << (i % kBits)) - 1);
    if (free_bits != 0) {
      const std::size_t r = w * kBits + static_cast<std::size_t>(std::countr_zero(free_bits));
      return r < to ? r : kNone;
    }
    // Skip full words through the summary tree.
    w = next_nonfull_word(w + 1);
    if (w == kNone || w * kBits >= to) return kNone;
    i = w * kBits;
  }
  return kNone;
}

std::size_t Bitmap::next_set(std::size_t i, std::size_t to) const noexcept {
  while (i < to) {
    const std::size_t w = i / kBits;
    const std::uint64_t set_bits = wd(w) & ~((std::uint64_t{1} << (i % kBits)) - 1);
    if (set_bits != 0) {
      const std::size_t r = w * kBits + static_cast<std::size_t>(std::countr_zero(set_bits));
      return r < to ? r : kNone;
    }
    i = (w + 1) * kBits;
  }
  return kNone;
}

bool Bitmap::range_is_clear(std::size_t start, std::size_t n) const noexcept {
  return n == 0 || next_set(start, start + n) == kNone;
}

bool Bitmap::range_is_set(std::size_t start, std::size_t n) const noexcept {
  if (n == 0) return true;
  for (std::size_t i = start, end = start + n; i < end;) {
    const std::size_t w = i / kBits, lo = i % kBits;
    const std::size_t hi = std::min(kBits, lo + (end - i));
    const std::uint64_t m = span_mask(lo, hi);
    if ((wd(w) & m) != m) return false;
    i += hi - lo;
  }
  return true;
}

std::optional<std::size_t> Bitmap::find_clear_run(std::size_t n, std::size_t align_mask,
                                                  std::size_t align_offset, std::size_t from,
                                                  std::size_t to) const noexcept {
  to = std::min(to, nbits_);
  if (n == 0 || from >= to || n > to - from) return std::nullopt;
  std::size_t i = from;
  for (;;) {
    i = next_clear(i, to);
    if (i == kNone) return std::nullopt;
    // The first index >= i with (index + align_offset) & align_mask == 0.
    const std::size_t aligned = ((i + align_offset + align_mask) & ~align_mask) - align_offset;
    if (aligned < i || aligned > to || n > to - aligned) return std::nullopt;
    const std::size_t s = next_set(aligned, aligned + n);
    if (s == kNone) return aligned;
    i = s + 1;
  }
}

bool Bitmap::test_mark(std::size_t i) const noexcept {
  const std::size_t grid = (std::size_t{1} << mark_shift_) - 1;
  if (i >= nbits_ || (i & grid) != 0) return false;
  const std::size_t j = i >> mark_shift_;
  return ((marks_[j / kBits] >> (j % kBits)) & 1u) != 0;
}

std::size_t Bitmap::next_mark(std::size_t i, std::size_t to) const noexcept {
  to = std::min(to, nbits_);
  if (i >= to) return kNone;
  // The first grid point at or after i, then word-at-a-time over the marks.
  std::size_t j = ((i - 1) >> mark_shift_) + 1;
  if (i == 0) j = 0;
  for (;;) {
    if ((j << mark_shift_) >= to) return kNone;
    const std::size_t w = j / kBits;
    const std::uint64_t m = marks_[w] & (kAll << (j % kBits));
    if (m != 0) {
      const std::size_t b = (w * kBits + static_cast<std::size_t>(std::countr_zero(m))) << mark_shift_;
      return b < to ? b : kNone;
    }
    j = (w + 1) * kBits;
  }
}

void Bitmap::refine_marks(unsigned shift) {
  std::vector<std::uint64_t> finer(mark_words(nbits_, shift), 0);
  const unsigned up = mark_shift_ - shift;
  for (std::size_t w = 0; w < marks_.size(); ++w)
    for (std::uint64_t m = marks_[w]; m != 0; m &= m - 1) {
      const std::size_t k = (w * kBits + static_cast<std::size_t>(std::countr_zero(m))) << up;
      finer[k / kBits] |= std::uint64_t{1} << (k % kBits);
    }
  marks_.swap(finer);
  mark_shift_ = shift;
}

void Bitmap::expand(unsigned d) {
  if (d == 0) return;
  Bitmap finer(nbits_ << d, mark_shift_ + d);
  // Runs of set bits, each one set_range (the summary follows).
  for (std::size_t i = next_set(0, nbits_); i != kNone;) {
    std::size_t e = next_clear(i, nbits_);
    if (e == kNone) e = nbits_;
    finer.set_range(i << d, (e - i) << d);
    i = e < nbits_ ? next_set(e, nbits_) : kNone;
  }
  // A grid point j was bit j << s and is now bit j << (s + d): the same words.
  finer.marks_ = std::move(marks_);
  *this = std::move(finer);
}

void Bitmap::set_run(std::size_t start, std::size_t n) {
  if ((start & ((std::size_t{1} << mark_shift_) - 1)) != 0)
    refine_marks(static_cast<unsigned>(std::countr_zero(start)));
  const std::size_t j = start >> mark_shift_;
  marks_[j / kBits] |= std::uint64_t{1} << (j % kBits);
  apply<true>(start, n);
}

void Bitmap::clear_run(std::size_t start, std::size_t n) noexcept {
  if ((start & ((std::size_t{1} << mark_shift_) - 1)) == 0) {
    const std::size_t j = start >> mark_shift_;
    marks_[j / kBits] &= ~(std::uint64_t{1} << (j % kBits));
  }
  apply<false>(start, n);
}

bool Bitmap::is_marked_run(std::size_t start, std::size_t n) const noexcept {
  if (n == 0 || start >= nbits_ || n > nbits_ - start) return false;
  const std::size_t end = start + n;
  const std::size_t grid = (std::size_t{1} << mark_shift_) - 1;
  if ((start & grid) != 0) return false;
  // The start marked and no mark in (start, end): the grid points
  // [j0, j1) with j1 = ceil(end / grid) hold exactly one mark, the first.
  const std::size_t j0 = start >> mark_shift_;
  const std::size_t j1 = ((end - 1) >> mark_shift_) + 1;
  if (j1 - j0 <= kBits - j0 % kBits) {  // one mark word (the usual case)
    const std::size_t span = j1 - j0;
    const std::uint64_t m = marks_[j0 / kBits] >> (j0 % kBits);
    if ((span == kBits ? m : m & ((std::uint64_t{1} << span) - 1)) != 1) return false;
  } else if (!test_mark(start) || next_mark(start + 1, end) != kNone) {
    return false;
  }
  // Bits [start, end) set.
  const std::size_t lo = start % kBits;
  if (lo + n <= kBits) {
    const std::uint64_t m = span_mask(lo, lo + n);
    if ((wd(start / kBits) & m) != m) return false;
  } else if (!range_is_set(start, n)) {
    return false;
  }
  // Bit `end`, if any, clear or the start of the next allocation.
  return end == nbits_ || !test(end) || test_mark(end);
}

std::size_t Bitmap::count_set() const noexcept {
  std::size_t c = 0;
  for (std::size_t w = 0; w < nwords_; ++w) c += static_cast<std::size_t>(std::popcount(wd(w)));
  return c;
}

std::size_t Bitmap::largest_clear_run(std::size_t from, std::size_t to) const noexcept {
  to = std::min(to, nbits_);
  std::size_t best = 0;
  std::size_t i = from;
  while (i < to) {
    const std::size_t a = next_clear(i, to);
    if (a == kNone) break;
    std::size_t b = next_set(a, to);
    if (b == kNone) b = to;
    best = std::max(best, b - a);
    i = b;
  }
  return best;
}

std::string Bitmap::dump() const {
  std::string out;
  char line[48];
  for (std::size_t w = 0; w < nwords_; ++w) {
    std::snprintf(line, sizeof line, "%zu: %016llx\n", w * kBits,
                  static_cast<unsigned long long>(wd(w)));
    out += line;
  }
  return out;
}

}  // namespace numacma::core
