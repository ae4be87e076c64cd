// src/core/bitmap.cpp — word-at-a-time bitmap with a "full word" summary tree.
//
//   words_[w]        word w: 64 bits, 1 = allocated
//   marks_           bit j: an allocation starts at bit j << mark_shift_
//   full_[0].p[s]    bit (w % 64) of full_[0].p[w / 64] is set iff word w == ~0
//   full_[k].p[s]    bit (j % 64) of full_[k].p[j / 64] is set iff full_[k-1].p[j] == ~0
//   full_[levels_-1] a single word
//
// The pointers lead into own_ / own_marks_ (owned) or into the caller's
// storage (a view). For a view every stored word is untrusted: the
// hint is clamped where it is read (first_open()), every summary index is
// checked against its level's size, and every loop moves forward and stops
// at nbits_, so garbage can make answers wrong but never an access stray.
//
// The first_open hint (every word below it is full) lets a first-fit scan from the
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
#include <utility>

#include "core/check.hpp"

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

/** ceil(n / 64) without overflow. */
constexpr std::size_t words_for(std::size_t n) noexcept { return n / kBits + (n % kBits != 0); }

/** Words of a mark vector for nbits bits on a grid of 2^shift. */
std::size_t mark_words(std::size_t nbits, unsigned shift) noexcept {
  const std::size_t points = (nbits >> shift) + ((nbits & ((std::size_t{1} << shift) - 1)) != 0);
  return std::max<std::size_t>(words_for(points), 1);
}

}  // namespace

void Bitmap::size_for(std::size_t nbits) noexcept {
  nbits_ = nbits;
  nwords_ = words_for(nbits);
  levels_ = 0;
  std::size_t n = nwords_;
  do {
    n = words_for(n);
    full_[levels_++] = Span{nullptr, std::max<std::size_t>(n, 1)};
  } while (n > 1 && levels_ < kMaxLevels);
}

std::size_t Bitmap::summary_words() const noexcept {
  std::size_t n = 0;
  for (unsigned k = 0; k < levels_; ++k) n += full_[k].n;
  return n;
}

void Bitmap::place(std::uint64_t* words, std::uint64_t* levels) noexcept {
  words_ = words;
  for (unsigned k = 0; k < levels_; ++k) {
    full_[k].p = levels;
    levels += full_[k].n;
  }
}

Bitmap::Bitmap(std::size_t nbits, unsigned mark_shift) : mark_shift_(std::min(mark_shift, 48u)) {
  size_for(nbits);
  own_.assign(nwords_ + summary_words(), 0);
  own_marks_.assign(mark_words(nbits, mark_shift_), 0);
  repoint();
}

std::size_t Bitmap::storage_words(std::size_t nbits) noexcept {
  Bitmap sizes;  // owns nothing: only its sizes are computed
  sizes.size_for(nbits);
  return 1 + sizes.nwords_ + mark_words(nbits, 0) + sizes.summary_words();
}

Bitmap Bitmap::view(std::uint64_t* storage, std::size_t nbits) noexcept {
  Bitmap b;
  b.size_for(nbits);
  b.external_ = true;
  b.marks_ = Span{storage + 1 + b.nwords_, mark_words(nbits, 0)};
  b.place(storage + 1, b.marks_.p + b.marks_.n);
  return b;
}

void Bitmap::repoint() noexcept {
  if (external_) return;  // a view's pointers lead into the caller's storage, wherever it is copied
  place(own_.data(), own_.data() + nwords_);
  marks_ = Span{own_marks_.data(), own_marks_.size()};
}

void Bitmap::make_empty() noexcept {
  nbits_ = nwords_ = 0;
  first_open_ = 0;
  mark_shift_ = 0;
  std::fill(std::begin(full_), std::end(full_), Span{});
  levels_ = 0;
  external_ = false;
  own_.clear();
  own_marks_.clear();
  repoint();
}

Bitmap::Bitmap(const Bitmap& o)
    : nbits_(o.nbits_), nwords_(o.nwords_), words_(o.words_), first_open_(o.first_open_),
      mark_shift_(o.mark_shift_), marks_(o.marks_), levels_(o.levels_), external_(o.external_),
      own_(o.own_), own_marks_(o.own_marks_) {
  std::copy(std::begin(o.full_), std::end(o.full_), std::begin(full_));
  repoint();
}

Bitmap::Bitmap(Bitmap&& o) noexcept
    : nbits_(o.nbits_), nwords_(o.nwords_), words_(o.words_), first_open_(o.first_open_),
      mark_shift_(o.mark_shift_), marks_(o.marks_), levels_(o.levels_), external_(o.external_),
      own_(std::move(o.own_)), own_marks_(std::move(o.own_marks_)) {
  std::copy(std::begin(o.full_), std::end(o.full_), std::begin(full_));
  repoint();
  o.make_empty();
}

Bitmap& Bitmap::operator=(const Bitmap& o) {
  if (this != &o) *this = Bitmap(o);
  return *this;
}

Bitmap& Bitmap::operator=(Bitmap&& o) noexcept {
  if (this == &o) return *this;
  nbits_ = o.nbits_;
  nwords_ = o.nwords_;
  words_ = o.words_;
  first_open_ = o.first_open_;
  mark_shift_ = o.mark_shift_;
  marks_ = o.marks_;
  std::copy(std::begin(o.full_), std::end(o.full_), std::begin(full_));
  levels_ = o.levels_;
  external_ = o.external_;
  own_ = std::move(o.own_);
  own_marks_ = std::move(o.own_marks_);
  repoint();
  o.make_empty();
  return *this;
}

void Bitmap::clear_all() noexcept {
  std::fill(words_, words_ + nwords_, 0);
  std::fill(marks_.p, marks_.p + marks_.n, 0);
  for (unsigned k = 0; k < levels_; ++k) std::fill(full_[k].p, full_[k].p + full_[k].n, 0);
  set_first_open(0);
}

std::size_t Bitmap::footprint_bytes() const noexcept {
  return (nwords_ + marks_.n + summary_words()) * sizeof(std::uint64_t);
}

bool Bitmap::test(std::size_t i) const noexcept {
  return i < nbits_ && ((words_[i / kBits] >> (i % kBits)) & 1u) != 0;
}

void Bitmap::refresh_summary(std::size_t w) noexcept {
  // w < nwords_, so w / 64^(k+1) < full_[k].n at every level.
  bool full = words_[w] == kAll;
  for (unsigned k = 0; k < levels_; ++k) {
    std::uint64_t& word = full_[k].p[w / kBits];
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
  unsigned k = 0;
  for (;; ++k) {
    if (k == levels_) return kNone;
    const Span& level = full_[k];
    const std::size_t s = j / kBits;
    if (s >= level.n) return kNone;
    const std::uint64_t notfull = ~level.p[s] & (kAll << (j % kBits));
    if (notfull != 0) {
      j = s * kBits + static_cast<std::size_t>(std::countr_zero(notfull));
      break;
    }
    j = s + 1;  // the next word of this level is item s + 1 of the level above
  }
  // Down: item j of level k is not full; take the first non-full item below
  // it. (A view's summary may claim a word below is full all the same:
  // countr_zero(0) is 64, the item after it, and the result still only grows.)
  while (k > 0) {
    --k;
    if (j >= full_[k].n) return kNone;  // tail bits past the last word
    j = j * kBits + static_cast<std::size_t>(std::countr_zero(~full_[k].p[j]));
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
    if constexpr (kSet) words_[w] |= m;
    else words_[w] &= ~m;
    refresh_summary(w);
    if constexpr (kSet) {
      if (w == first_open() && words_[w] == kAll) set_first_open(std::min(next_nonfull_word(w + 1), nwords_));
    } else {
      if (w < first_open()) set_first_open(w);
    }
    i += hi - lo;
  }
}

void Bitmap::set_range(std::size_t start, std::size_t n) noexcept { apply<true>(start, n); }
void Bitmap::clear_range(std::size_t start, std::size_t n) noexcept { apply<false>(start, n); }

std::size_t Bitmap::next_clear(std::size_t i, std::size_t to) const noexcept {
  // Every word below first_open() is full: a search from the start begins there.
  i = std::max(i, first_open() * kBits);
  while (i < to) {
    std::size_t w = i / kBits;
    const std::uint64_t free_bits = ~words_[w] & ~((std::uint64_t{1} << (i % kBits)) - 1);
    if (free_bits != 0) {
      const std::size_t r = w * kBits + static_cast<std::size_t>(std::countr_zero(free_bits));
      return r < to ? r : kNone;
    }
    // Skip full words through the summary tree (it returns a word > w).
    w = next_nonfull_word(w + 1);
    if (w == kNone || w * kBits >= to) return kNone;
    i = w * kBits;
  }
  return kNone;
}

std::size_t Bitmap::next_set(std::size_t i, std::size_t to) const noexcept {
  while (i < to) {
    const std::size_t w = i / kBits;
    const std::uint64_t set_bits = words_[w] & ~((std::uint64_t{1} << (i % kBits)) - 1);
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
    if ((words_[w] & m) != m) return false;
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
  return ((marks_.p[j / kBits] >> (j % kBits)) & 1u) != 0;
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
    const std::uint64_t m = marks_.p[w] & (kAll << (j % kBits));
    if (m != 0) {
      const std::size_t b = (w * kBits + static_cast<std::size_t>(std::countr_zero(m))) << mark_shift_;
      return b < to ? b : kNone;
    }
    j = (w + 1) * kBits;
  }
}

void Bitmap::refine_marks(unsigned shift) {
  NUMACMA_CORE_REQUIRE(!external_);
  if (external_ || shift >= mark_shift_) return;  // a view's grid is 1 already
  std::vector<std::uint64_t> finer(mark_words(nbits_, shift), 0);
  const unsigned up = mark_shift_ - shift;
  for (std::size_t w = 0; w < marks_.n; ++w)
    for (std::uint64_t m = marks_.p[w]; m != 0; m &= m - 1) {
      const std::size_t k = (w * kBits + static_cast<std::size_t>(std::countr_zero(m))) << up;
      finer[k / kBits] |= std::uint64_t{1} << (k % kBits);
    }
  own_marks_.swap(finer);
  marks_ = Span{own_marks_.data(), own_marks_.size()};
  mark_shift_ = shift;
}

void Bitmap::expand(unsigned d) {
  NUMACMA_CORE_REQUIRE(!external_ || d == 0);
  if (d == 0 || external_) return;  // a view's size is the storage's
  Bitmap finer(nbits_ << d, mark_shift_ + d);
  // Runs of set bits, each one set_range (the summary follows).
  for (std::size_t i = next_set(0, nbits_); i != kNone;) {
    std::size_t e = next_clear(i, nbits_);
    if (e == kNone) e = nbits_;
    finer.set_range(i << d, (e - i) << d);
    i = e < nbits_ ? next_set(e, nbits_) : kNone;
  }
  // A grid point j was bit j << s and is now bit j << (s + d): the same words.
  finer.own_marks_ = std::move(own_marks_);
  finer.marks_ = Span{finer.own_marks_.data(), finer.own_marks_.size()};
  *this = std::move(finer);
}

void Bitmap::set_run(std::size_t start, std::size_t n) {
  if ((start & ((std::size_t{1} << mark_shift_) - 1)) != 0)
    refine_marks(static_cast<unsigned>(std::countr_zero(start)));
  const std::size_t j = start >> mark_shift_;
  marks_.p[j / kBits] |= std::uint64_t{1} << (j % kBits);
  apply<true>(start, n);
}

void Bitmap::clear_run(std::size_t start, std::size_t n) noexcept {
  if ((start & ((std::size_t{1} << mark_shift_) - 1)) == 0) {
    const std::size_t j = start >> mark_shift_;
    marks_.p[j / kBits] &= ~(std::uint64_t{1} << (j % kBits));
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
    const std::uint64_t m = marks_.p[j0 / kBits] >> (j0 % kBits);
    if ((span == kBits ? m : m & ((std::uint64_t{1} << span) - 1)) != 1) return false;
  } else if (!test_mark(start) || next_mark(start + 1, end) != kNone) {
    return false;
  }
  // Bits [start, end) set.
  const std::size_t lo = start % kBits;
  if (lo + n <= kBits) {
    const std::uint64_t m = span_mask(lo, lo + n);
    if ((words_[start / kBits] & m) != m) return false;
  } else if (!range_is_set(start, n)) {
    return false;
  }
  // Bit `end`, if any, clear or the start of the next allocation.
  return end == nbits_ || !test(end) || test_mark(end);
}

std::size_t Bitmap::count_set() const noexcept {
  std::size_t c = 0;
  for (std::size_t w = 0; w < nwords_; ++w) c += static_cast<std::size_t>(std::popcount(words_[w]));
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
                  static_cast<unsigned long long>(words_[w]));
    out += line;
  }
  return out;
}

bool Bitmap::consistent(std::string* why) const {
  const auto fail = [&](const char* w) {
    if (why != nullptr) *why = w;
    return false;
  };
  if (nbits_ % kBits != 0 && (words_[nwords_ - 1] >> (nbits_ % kBits)) != 0)
    return fail("bits set past the end of the bitmap");
  // Marks: the grid points past the end are zero.
  const std::size_t points = (nbits_ >> mark_shift_) + ((nbits_ & ((std::size_t{1} << mark_shift_) - 1)) != 0);
  for (std::size_t w = points / kBits; w < marks_.n; ++w) {
    const std::size_t from = w == points / kBits ? points % kBits : 0;
    if ((marks_.p[w] >> from) != 0) return fail("marks set past the end of the bitmap");
  }
  // Summary: every bit says whether its item below is all ones; none past the items.
  for (unsigned k = 0; k < levels_; ++k) {
    const std::uint64_t* below = k == 0 ? words_ : full_[k - 1].p;
    const std::size_t items = k == 0 ? nwords_ : full_[k - 1].n;
    for (std::size_t s = 0; s < full_[k].n; ++s) {
      std::uint64_t want = 0;
      for (std::size_t b = 0; b < kBits && s * kBits + b < items; ++b)
        if (below[s * kBits + b] == kAll) want |= std::uint64_t{1} << b;
      if (full_[k].p[s] != want) return fail("the full-word summary differs from the words");
    }
  }
  if ((external_ ? words_[-1] : first_open_) > nwords_) return fail("the first-open hint is past the last word");
  for (std::size_t w = 0; w < first_open(); ++w)
    if (words_[w] != kAll) return fail("a word below the first-open hint is not full");
  return true;
}

}  // namespace numacma::core
