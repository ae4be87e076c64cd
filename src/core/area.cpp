// src/core/area.cpp — cma_alloc / cma_release over a Bitmap, in DMA-address space.
//
//   segment s:  bits [sb, eb) of the bitmap, DMA base D
//   bit i of s covers DMA [D + (i - sb) * G, D + (i - sb + 1) * G), G = P << order_per_bit
//   an allocation aligned to A = P << a (a > order_per_bit) must start at a bit i with
//   (D / G + i - sb) % (A / G) == 0  ->  the bitmap's (i + offset) & mask == 0 with
//   mask = A / G - 1 and offset = (D / G - sb) & mask, computed per segment.
//
// One implementation for both storage modes (area.hpp): they differ only in
// where bitmap_ and *counters_ live, in q_ (an external area never refines)
// and in odd_ (never used by an external area). Every count that may come
// from outside (restore's records, release's caller) is turned into bits
// without overflow, and every bit index derived from the bitmap's contents
// is one the bitmap returned below its size().
#include "core/area.hpp"

#include <algorithm>
#include <bit>

#include "core/check.hpp"

namespace numacma::core {

namespace {

std::string fmt_pages(std::uint64_t n) { return std::to_string(n) + (n == 1 ? " page" : " pages"); }

/** ceil(count / 2^q) without overflow (count may be anything a caller or a
 *  record says). */
constexpr std::uint64_t bits_of(std::uint64_t count, unsigned q) noexcept {
  return (count >> q) + ((count & ((std::uint64_t{1} << q) - 1)) != 0 ? 1 : 0);
}

/** The lowest DMA address of any segment (UINT64_MAX for none). */
std::uint64_t lowest_of(const std::vector<Segment>& segments) noexcept {
  std::uint64_t low = UINT64_MAX;
  for (const Segment& s : segments) low = std::min(low, s.dma_base);
  return low;
}

}  // namespace

unsigned Area::initial_q(const AreaConfig& c) noexcept {
  // As coarse as every segment allows: its first page, its length and the
  // DMA offset of its pages (dma_base / P - first_page) all multiples of 2^q
  // pages, so that every run of whole bits starts and ends where a
  // page-granular first fit could start and end it. At most 2^8 pages a bit.
  unsigned q = c.order_per_bit + 8;
  for (const Segment& s : c.segments) {
    const std::uint64_t dma_offset = s.dma_base / c.page_size - s.first_page;  // mod 2^64
    const std::uint64_t any = s.first_page | s.pages | dma_offset;
    if (any != 0) q = std::min(q, static_cast<unsigned>(std::countr_zero(any)));
  }
  return std::max(q, c.order_per_bit);
}

Area::Area(AreaConfig config)
    : cfg_(std::move(config)),
      q_(initial_q(cfg_)),
      // Marks start on the grid of the largest alignment an allocation can
      // ask for; the bitmap refines it if a start ever falls off it.
      bitmap_(static_cast<std::size_t>(cfg_.pages >> q_),
              std::min(cfg_.max_align_order > q_ ? cfg_.max_align_order - q_ : 0u, 40u)) {
  lowest_dma_ = lowest_of(cfg_.segments);
}

Area::Area(AreaConfig config, AreaStorage storage)
    : cfg_(std::move(config)),
      q_(cfg_.order_per_bit),
      bitmap_(Bitmap::view(storage.bitmap, static_cast<std::size_t>(cfg_.pages >> q_))),
      counters_(storage.counters) {
  lowest_dma_ = lowest_of(cfg_.segments);
}

// Copies and moves: an owned area's counters_ points at its own member, an
// external one's at the caller's counters (shared by every copy, like the
// bitmap storage).
Area::Area(const Area& o)
    : cfg_(o.cfg_),
      q_(o.q_),
      bitmap_(o.bitmap_),
      odd_(o.odd_),
      lowest_dma_(o.lowest_dma_),
      own_counters_(o.own_counters_),
      counters_(o.external() ? o.counters_ : &own_counters_) {}

Area::Area(Area&& o) noexcept
    : cfg_(std::move(o.cfg_)),
      q_(o.q_),
      bitmap_(std::move(o.bitmap_)),
      odd_(std::move(o.odd_)),
      lowest_dma_(o.lowest_dma_),
      own_counters_(o.own_counters_),
      counters_(bitmap_.external() ? o.counters_ : &own_counters_) {}

Area& Area::operator=(const Area& o) {
  if (this != &o) *this = Area(o);
  return *this;
}

Area& Area::operator=(Area&& o) noexcept {
  if (this == &o) return *this;
  cfg_ = std::move(o.cfg_);
  q_ = o.q_;
  bitmap_ = std::move(o.bitmap_);
  odd_ = std::move(o.odd_);
  lowest_dma_ = o.lowest_dma_;
  own_counters_ = o.own_counters_;
  counters_ = bitmap_.external() ? o.counters_ : &own_counters_;
  return *this;
}

std::uint64_t Area::run_bits(std::uint64_t b) const noexcept {
  // Word at a time: a run another process marked over a whole area must not
  // cost a bit-by-bit walk on every refused release.
  const std::size_t n = bitmap_.size(), from = static_cast<std::size_t>(b) + 1;
  const std::size_t e = std::min({bitmap_.next_clear(from, n), bitmap_.next_mark(from, n), n});
  return e - b;
}

Status Area::validate(AreaConfig& c) {
  auto bad = [&](const std::string& why) {
    return make_error(Errc::invalid_argument, "area '" + c.name + "': " + why);
  };
  if (c.page_size == 0 || !std::has_single_bit(c.page_size)) return bad("page size is not a power of two");
  if (c.order_per_bit > kAreaMaxOrderPerBit)
    return bad("order_per_bit above " + std::to_string(kAreaMaxOrderPerBit));
  if (c.pages == 0) return bad("no pages");
  const std::uint64_t per_bit = std::uint64_t{1} << c.order_per_bit;
  if (c.pages % per_bit != 0)
    return bad(fmt_pages(c.pages) + " is not a multiple of " + fmt_pages(per_bit) + " (order_per_bit)");
  if (c.pages > kMaxAreaPages) return bad("more than 2^40 pages");
  if (c.segments.empty()) c.segments.push_back({0, c.pages, 0});
  std::uint64_t next = 0;
  for (const Segment& s : c.segments) {
    if (s.first_page != next) return bad("segments do not partition the area in order");
    if (s.pages == 0 || s.pages % per_bit != 0)
      return bad("a segment is empty or not a multiple of the bitmap granule");
    if (s.dma_base % c.page_size != 0) return bad("a segment's DMA base is not page aligned");
    if (s.dma_base + (s.pages * c.page_size - 1) < s.dma_base) return bad("a segment wraps DMA space");
    next += s.pages;
  }
  if (next != c.pages) return bad("segments cover " + fmt_pages(next) + " of " + fmt_pages(c.pages));
  return {};
}

Result<Area> Area::create(AreaConfig c) {
  if (Status s = validate(c); !s) return std::move(s).error();
  return Area(std::move(c));
}

std::size_t Area::storage_words(const AreaConfig& c) {
  // An order_per_bit create_over refuses (> kAreaMaxOrderPerBit) must not shift by >= 64 here.
  return Bitmap::storage_words(static_cast<std::size_t>(c.order_per_bit < 64 ? c.pages >> c.order_per_bit : 0));
}

Result<Area> Area::create_over(AreaConfig c, AreaStorage storage, bool init) {
  if (Status s = validate(c); !s) return std::move(s).error();
  if (storage.bitmap == nullptr || storage.counters == nullptr)
    return make_error(Errc::invalid_argument, "area '" + c.name + "': no storage for its state");
  Area a(std::move(c), storage);
  if (init) {
    a.bitmap_.clear_all();
    *a.counters_ = AreaCounters{};
  }
  return a;
}

Result<Area> Area::with_segments(std::vector<Segment> segments) const {
  AreaConfig c = cfg_;
  c.segments = std::move(segments);
  if (c.segments.empty()) return make_error(Errc::invalid_argument, "area '" + c.name + "': no segments");
  if (Status s = validate(c); !s) return std::move(s).error();
  if (external()) {
    Area a(*this);  // the same storage: bitmap and counters
    a.cfg_ = std::move(c);
    a.lowest_dma_ = lowest_of(a.cfg_.segments);
    return a;
  }
  if (counters_->live != 0)
    return make_error(Errc::busy, "area '" + c.name + "': " + std::to_string(counters_->live) +
                                      " live allocation(s): its DMA addresses cannot move under them");
  Area a(std::move(c));
  a.own_counters_.alloc_pages_success = counters_->alloc_pages_success;
  a.own_counters_.alloc_pages_fail = counters_->alloc_pages_fail;
  a.own_counters_.release_pages_success = counters_->release_pages_success;
  return a;
}

std::size_t Area::segment_of_page(std::uint64_t page) const noexcept {
  auto it = std::upper_bound(cfg_.segments.begin(), cfg_.segments.end(), page,
                             [](std::uint64_t p, const Segment& s) { return p < s.first_page; });
  return static_cast<std::size_t>(std::prev(it) - cfg_.segments.begin());
}

std::uint64_t Area::dma_of_page(std::uint64_t page) const noexcept {
  const Segment& s = cfg_.segments[segment_of_page(page)];
  return s.dma_base + (page - s.first_page) * cfg_.page_size;
}

// Inlined into alloc (its hot path), not only called.
[[gnu::always_inline]] inline void Area::take(std::uint64_t b, std::uint64_t bits, std::uint64_t first_page, std::uint64_t count) {
  bitmap_.set_run(static_cast<std::size_t>(b), static_cast<std::size_t>(bits));
  if (count != (bits << q_) && !external()) odd_.emplace(first_page, count);
  ++counters_->live;
  counters_->used_pages += bits << q_;
}

// The segment loop of search(): cma_alloc's bitmap search, no counting, no
// marking.
[[gnu::always_inline]] inline bool Area::first_fit(std::uint64_t count, unsigned align_order, Block* out) {
  const unsigned q = q_;
  const std::uint64_t granule = cfg_.page_size << q;
  const unsigned granule_shift = static_cast<unsigned>(std::countr_zero(granule));  // a power of two
  const std::uint64_t bits = (count + (std::uint64_t{1} << q) - 1) >> q;
  const std::uint64_t mask = align_order > q ? (std::uint64_t{1} << (align_order - q)) - 1 : 0;

  // First fit over the segments in area order. An area of hugepages that are
  // not physically adjacent has one segment per hugepage: a segment with no
  // clear bit is skipped by jumping to the segment of the next clear bit (the
  // bitmap's summary finds it), not by a search in each full segment.
  const std::vector<Segment>& segs = cfg_.segments;
  for (std::size_t si = 0; si < segs.size(); ++si) {
    const Segment& s = segs[si];
    const std::uint64_t sb = s.first_page >> q;
    const std::uint64_t se = sb + (s.pages >> q);
    const std::size_t next_free = bitmap_.next_clear(static_cast<std::size_t>(sb), bitmap_.size());
    if (next_free == static_cast<std::size_t>(-1)) break;  // nothing free from here on
    if (next_free >= se) {  // this segment is full: go to the one holding next_free
      si = segment_of_page(static_cast<std::uint64_t>(next_free) << q) - 1;
      continue;
    }
    const std::uint64_t offset = ((s.dma_base >> granule_shift) - sb) & mask;
    const auto found = bitmap_.find_clear_run(static_cast<std::size_t>(bits), static_cast<std::size_t>(mask),
                                              static_cast<std::size_t>(offset),
                                              std::max(static_cast<std::size_t>(sb), next_free),
                                              static_cast<std::size_t>(se));
    if (!found) continue;
    const std::uint64_t first_page = static_cast<std::uint64_t>(*found) << q;
    const std::uint64_t dma = s.dma_base + (first_page - s.first_page) * cfg_.page_size;
    *out = Block{first_page, count, dma, cfg_.cpu_base + first_page * cfg_.page_size};
    return true;
  }
  return false;
}

// alloc() is find() then commit(); it is written as one pass (kCommit) so
// that the hot path marks the run it has just found without commit()'s
// re-checks of a block that came from elsewhere.
template <bool kCommit>
[[gnu::always_inline]] inline Result<Block> Area::search(std::uint64_t count, unsigned align_order,
                                                         std::uint64_t dma_limit, Block* above) {
  // Two requests return before cma_alloc's accounting in the kernel
  // (__cma_alloc: `if (!count)` and `if (bitmap_count > bitmap_maxno)`), so
  // neither is counted in alloc_pages_fail: no pages, and more bitmap bits
  // than the whole area has (cma_bitmap_pages_to_bits, without ALIGN's
  // overflow for a huge count).
  if (count == 0) return make_error(Errc::invalid_argument, "area '" + cfg_.name + "': 0 pages");
  const unsigned opb = cfg_.order_per_bit;
  if (bits_of(count, opb) > (cfg_.pages >> opb))
    return make_error(Errc::no_memory, cfg_.name + ": " + fmt_pages(count) +
                                           " is more than the whole area (" +
                                           fmt_pages(cfg_.pages) + ")");
  align_order = std::min(align_order, cfg_.max_align_order);
  // A count that is not a whole number of the current bits needs finer ones
  // (never finer than order_per_bit: below it, sizes round up, R6; an
  // external area's bits are order_per_bit already).
  if ((count & ((std::uint64_t{1} << q_) - 1)) != 0)
    refine(std::max(cfg_.order_per_bit, static_cast<unsigned>(std::countr_zero(count))));

  Block b;
  if (!first_fit(count, align_order, &b)) {
    counters_->alloc_pages_fail += count;
    if (lowest_dma_ > dma_limit) return make_error(Errc::unreachable, cfg_.name + ": above the DMA mask");
    return make_error(Errc::no_memory, cfg_.name + ": no free run of " + fmt_pages(count) + " aligned to " +
                                           std::to_string(cfg_.page_size << align_order) + " bytes");
  }
  // The mask is looked at after the search, as dma-direct looks at what
  // cma_alloc returned (dma_coherent_ok): a run above it is taken, found
  // unreachable and released at once, both counted.
  if (b.dma_addr > dma_limit || count * cfg_.page_size - 1 > dma_limit - b.dma_addr) {
    if constexpr (kCommit) count_taken_and_released(count);
    else if (above != nullptr) *above = b;
    return make_error(Errc::unreachable, cfg_.name + ": its first free run of " + fmt_pages(count) +
                                             " is above the DMA mask (taken, checked and released, as "
                                             "dma-direct does)");
  }
  if constexpr (kCommit) {
    take(b.first_page >> q_, bits_of(count, q_), b.first_page, count);
    counters_->alloc_pages_success += count;
  }
  return b;
}

Result<Block> Area::alloc(std::uint64_t count, unsigned align_order, std::uint64_t dma_limit) {
  return search<true>(count, align_order, dma_limit, nullptr);
}

Result<Block> Area::find(std::uint64_t count, unsigned align_order, std::uint64_t dma_limit, Block* above) {
  return search<false>(count, align_order, dma_limit, above);
}

void Area::commit(const Block& blk) {
  const unsigned q = q_;
  const std::uint64_t b = blk.first_page >> q, bits = bits_of(blk.pages, q);
  // A block find() returned passes; anything else would write out of place.
  const bool fits = blk.pages != 0 && blk.first_page < cfg_.pages &&
                    (blk.first_page & ((std::uint64_t{1} << q) - 1)) == 0 && bits <= bitmap_.size() - b;
  NUMACMA_CORE_REQUIRE(fits && bitmap_.range_is_clear(static_cast<std::size_t>(b), static_cast<std::size_t>(bits)));
  if (!fits) return;
  take(b, bits, blk.first_page, blk.pages);
  counters_->alloc_pages_success += blk.pages;
}

Status Area::release(std::uint64_t first_page, std::uint64_t count) {
  const unsigned q = q_;
  const std::uint64_t per_bit = std::uint64_t{1} << q;
  const std::uint64_t b = first_page >> q;
  if (first_page % per_bit != 0 || first_page >= cfg_.pages || !bitmap_.test_mark(static_cast<std::size_t>(b)))
    return make_error(Errc::bad_free, "area '" + cfg_.name + "': no live allocation starts at page " +
                                          std::to_string(first_page) +
                                          " (double free or foreign address)");
  const std::uint64_t bits = bits_of(count, q);
  if (external()) {
    // No exact page counts here (their keeper checks them): the run must be
    // exactly the bits count rounds up to (0 bits, or more than the area,
    // never is).
    if (!bitmap_.is_marked_run(static_cast<std::size_t>(b), static_cast<std::size_t>(bits)))
      return make_error(Errc::bad_free, "area '" + cfg_.name + "': size mismatch at page " +
                                            std::to_string(first_page) + ": the allocation there is a run of " +
                                            std::to_string(run_bits(b)) + " bits of " + fmt_pages(per_bit) +
                                            ", freed " + fmt_pages(count));
    bitmap_.clear_run(static_cast<std::size_t>(b), static_cast<std::size_t>(bits));
    --counters_->live;
    counters_->used_pages -= bits << q;
    counters_->release_pages_success += count;
    return {};
  }
  // The allocation's page count: recorded in odd_ when not whole bits, else
  // its run of bits. The common case checks exactly the words the `bits` bits
  // cover and the bit after them (bits and marks side by side: one pair).
  std::uint64_t allocated = 0;
  auto odd = odd_.end();
  if (!odd_.empty()) odd = odd_.find(first_page);
  if (odd != odd_.end()) allocated = odd->second;
  else if (count == (bits << q) && bits <= bitmap_.size() &&
           bitmap_.is_marked_run(static_cast<std::size_t>(b), static_cast<std::size_t>(bits)))
    allocated = count;
  else allocated = run_bits(b) << q;
  if (allocated != count)
    return make_error(Errc::bad_free, "area '" + cfg_.name + "': size mismatch at page " +
                                          std::to_string(first_page) + ": allocated " +
                                          fmt_pages(allocated) + ", freed " + fmt_pages(count));
  bitmap_.clear_run(static_cast<std::size_t>(b), static_cast<std::size_t>(bits));
  if (odd != odd_.end()) odd_.erase(odd);
  --counters_->live;
  counters_->used_pages -= bits << q;
  counters_->release_pages_success += count;
  return {};
}

Status Area::restore(std::uint64_t first_page, std::uint64_t count) {
  const unsigned opb = cfg_.order_per_bit;
  const std::uint64_t per_bit = std::uint64_t{1} << opb;
  const auto bad = [&](const std::string& why) {
    return make_error(Errc::corrupt, "area '" + cfg_.name + "': allocation of " + fmt_pages(count) +
                                         " at page " + std::to_string(first_page) + ": " + why);
  };
  if (count == 0) return bad("no pages");
  if (first_page % per_bit != 0) return bad("not on a bitmap bit");
  // In whole order_per_bit bits, compared without an addition: count may be
  // anything a record says (2^64 - 1 must not round to 0 bits).
  if (first_page >= cfg_.pages || bits_of(count, opb) > (cfg_.pages - first_page) >> opb)
    return bad("beyond the area");
  const std::uint64_t span = bits_of(count, opb) << opb;  // <= pages - first_page
  const Segment& s = cfg_.segments[segment_of_page(first_page)];
  if (first_page + span > s.first_page + s.pages) return bad("crosses a segment boundary");
  // The bits must be fine enough for both the start and the length (an
  // external area's are: q_ is order_per_bit).
  const std::uint64_t any = first_page | count;
  if ((any & ((std::uint64_t{1} << q_) - 1)) != 0)
    refine(std::max(opb, static_cast<unsigned>(std::countr_zero(any))));
  const unsigned q = q_;
  const std::uint64_t b = first_page >> q, bits = bits_of(count, q);
  if (!bitmap_.range_is_clear(static_cast<std::size_t>(b), static_cast<std::size_t>(bits)))
    return bad("overlaps another allocation");
  take(b, bits, first_page, count);
  return {};
}

void Area::clear_allocations() {
  if (external()) {
    bitmap_.clear_all();  // in place: the storage is the caller's, its size fixed
  } else {
    q_ = initial_q(cfg_);
    bitmap_ = Bitmap(static_cast<std::size_t>(cfg_.pages >> q_),
                     std::min(cfg_.max_align_order > q_ ? cfg_.max_align_order - q_ : 0u, 40u));
    odd_.clear();
  }
  counters_->live = 0;
  counters_->used_pages = 0;
}

void Area::refine(unsigned q) {
  if (q >= q_) return;
  NUMACMA_CORE_REQUIRE(!external());
  if (external()) return;  // never reached: q_ is order_per_bit, the finest
  bitmap_.expand(q_ - q);
  q_ = q;
}

std::string Area::dump_bitmap() const {
  if (q_ == cfg_.order_per_bit) return bitmap_.dump();
  // The dump is of order_per_bit bits, as if the bitmap had never been coarser.
  const unsigned d = q_ - cfg_.order_per_bit;
  Bitmap fine(static_cast<std::size_t>(cfg_.pages >> cfg_.order_per_bit));
  for (std::size_t w = 0; w < bitmap_.word_count(); ++w)
    for (std::uint64_t m = bitmap_.word(w); m != 0; m &= m - 1) {
      const std::size_t b = w * 64 + static_cast<std::size_t>(std::countr_zero(m));
      fine.set_range(b << d, std::size_t{1} << d);
    }
  return fine.dump();
}

AreaStats Area::stats() const {
  AreaStats s;
  s.name = cfg_.name;
  s.node = cfg_.node;
  s.base_dma = cfg_.segments.front().dma_base;
  s.pages = cfg_.pages;
  s.order_per_bit = cfg_.order_per_bit;
  s.used = counters_->used_pages;
  const unsigned q = q_;
  std::uint64_t best = 0;
  for (const Segment& seg : cfg_.segments)
    best = std::max<std::uint64_t>(best, bitmap_.largest_clear_run(seg.first_page >> q,
                                                                   (seg.first_page + seg.pages) >> q));
  s.maxchunk = best << q;
  const AreaCounters c = *counters_;
  s.alloc_pages_success = c.alloc_pages_success;
  s.alloc_pages_fail = c.alloc_pages_fail;
  s.release_pages_success = c.release_pages_success;
  s.segments = cfg_.segments.size();
  return s;
}

bool Area::invariant(std::string* why) const {
  auto fail = [&](const std::string& w) {
    if (why != nullptr) *why = "area '" + cfg_.name + "': " + w;
    return false;
  };
  const unsigned q = q_;
  if (std::string w; !bitmap_.consistent(&w)) return fail(w);
  const AreaCounters ctr = *counters_;
  // The live allocations as the marks and odd_ (owned areas) describe them,
  // checked one by one as the marks are walked: nothing is kept per
  // allocation, so that an adopted state with a mark on every bit costs no
  // more memory than its bitmap.
  constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  Bitmap expect(bitmap_.size());
  std::uint64_t used = 0, live = 0;
  for (std::size_t b = bitmap_.next_mark(0, bitmap_.size()); b != kNone;
       b = bitmap_.next_mark(b + 1, bitmap_.size())) {
    if (!bitmap_.test(b)) return fail("an allocation start on a free bit");
    const std::uint64_t first = static_cast<std::uint64_t>(b) << q;
    const std::uint64_t run = run_bits(b);
    auto odd = odd_.find(first);
    const std::uint64_t count = odd != odd_.end() ? odd->second : run << q;
    if (odd != odd_.end() && ((count + (std::uint64_t{1} << q) - 1) >> q) != run)
      return fail("recorded size differs from the run at page " + std::to_string(first));
    const std::uint64_t bits = (count + (std::uint64_t{1} << q) - 1) >> q;
    if (b + bits > expect.size()) return fail("allocation beyond the area");
    if (!expect.range_is_clear(b, static_cast<std::size_t>(bits)))
      return fail("two live allocations overlap at page " + std::to_string(first));
    // No allocation spans two segments.
    const Segment& seg = cfg_.segments[segment_of_page(first)];
    if (first + count > seg.first_page + seg.pages) return fail("an allocation spans two segments");
    expect.set_range(b, static_cast<std::size_t>(bits));
    used += bits << q;
    ++live;
  }
  if (live != ctr.live) return fail("live count differs from the allocation starts");
  for (const auto& [first, count] : odd_)
    if (!bitmap_.test_mark(static_cast<std::size_t>(first >> q))) return fail("a size recorded for no allocation");
  for (std::size_t w = 0; w < bitmap_.word_count(); ++w)
    if (expect.word(w) != bitmap_.word(w)) return fail("bitmap differs from the live allocations");
  if (used != ctr.used_pages) return fail("used counter differs from the bitmap");
  if ((bitmap_.count_set() << q) != ctr.used_pages) return fail("popcount differs from used");
  if (ctr.alloc_pages_success < ctr.release_pages_success) return fail("more pages released than allocated");
  return true;
}

}  // namespace numacma::core
