// src/core/records.cpp — see records.hpp.
#include "core/records.hpp"

#include <atomic>

namespace numacma::core {

namespace {

void (*g_hook)(int) = nullptr;

void hook(int point) {
  if (g_hook != nullptr) g_hook(point);
}

// A word another process may read, or that must survive a kill whole, is
// written with one atomic store. A killed process's stores are not lost (the
// CPU drains what it retired), and the keeper that repairs after it sees them
// all: it takes the lock over after the process is gone. What the order of an
// update's steps needs is only that the compiler keeps them in program order:
// a compiler fence, no CPU fence.
inline void store(std::uint64_t& w, std::uint64_t v) noexcept {
  std::atomic_ref<std::uint64_t>(w).store(v, std::memory_order_relaxed);
}
inline std::uint64_t load(std::uint64_t& w) noexcept {
  return std::atomic_ref<std::uint64_t>(w).load(std::memory_order_relaxed);
}
inline void step() noexcept { std::atomic_signal_fence(std::memory_order_seq_cst); }

std::uint64_t span_bits(std::uint64_t pages, unsigned opb) noexcept {
  return (pages >> opb) + ((pages & ((std::uint64_t{1} << opb) - 1)) != 0 ? 1 : 0);
}

/** A release's journal, record and Area update (REQUIRES: the record names
 *  this buffer). false when the Area knows no such allocation: the record
 *  was forged or damaged, so it is dropped and nothing is counted released
 *  (the caller rebuilds the Area from the records). */
bool release_one(const Records& v, Area& area, std::uint64_t first_page, std::uint64_t count,
                 bool reaped) noexcept {
  RecordState& st = *v.st;
  Journal& j = st.journal;
  AreaCounters& ctr = area.counters();
  const std::uint64_t bit = first_page >> v.opb;
  const std::uint64_t released_before = ctr.release_pages_success;
  j.op = 2u;
  j.bit = bit;
  j.rec = 0;
  j.alloc_pages_success = ctr.alloc_pages_success;
  j.release_pages_success = released_before + count;
  j.reaped_pages = st.reaped_pages + (reaped ? count : 0);
  step();
  j.pending = 1;
  step();
  hook(1);
  if (!area.release(first_page, count).ok()) {
    ctr.release_pages_success = released_before;
    store(v.words[bit], 0);
    ++st.dropped_records;
    step();
    j.pending = 0;
    return false;
  }
  store(v.words[bit], 0);
  step();
  hook(2);
  ctr.release_pages_success = j.release_pages_success;
  st.reaped_pages = j.reaped_pages;
  hook(3);
  step();
  j.pending = 0;
  return true;
}

}  // namespace

void set_update_hook_for_testing(void (*h)(int)) { g_hook = h; }

void record_alloc(const Records& v, Area& area, const Block& b, std::uint32_t holder) noexcept {
  RecordState& st = *v.st;
  Journal& j = st.journal;
  const std::uint64_t bit = b.first_page >> v.opb;
  const std::uint64_t word = rec_word({static_cast<std::uint32_t>(b.pages), holder});
  j.op = 1u;
  j.bit = bit;
  j.rec = word;
  j.alloc_pages_success = area.counters().alloc_pages_success + b.pages;
  j.release_pages_success = area.counters().release_pages_success;
  j.reaped_pages = st.reaped_pages;
  step();
  j.pending = 1;
  step();
  hook(1);
  store(v.words[bit], word);
  step();
  hook(2);
  area.commit(b);
  area.counters().alloc_pages_success = j.alloc_pages_success;
  hook(3);
  step();
  j.pending = 0;
}

void record_taken_and_released(const Records& v, Area& area, std::uint64_t pages) noexcept {
  RecordState& st = *v.st;
  Journal& j = st.journal;
  j.op = 3u;
  j.bit = v.count;  // no record: repair writes none
  j.rec = 0;
  j.alloc_pages_success = area.counters().alloc_pages_success + pages;
  j.release_pages_success = area.counters().release_pages_success + pages;
  j.reaped_pages = st.reaped_pages;
  step();
  j.pending = 1;
  step();
  hook(1);
  area.counters().alloc_pages_success = j.alloc_pages_success;
  hook(2);
  area.counters().release_pages_success = j.release_pages_success;
  hook(3);
  step();
  j.pending = 0;
}

Status check_release(const Records& v, std::uint64_t first_page, std::uint64_t count, std::uint32_t holder,
                     std::uint32_t* owner) noexcept {
  const std::uint64_t bit = first_page >> v.opb;
  // Built only on an error path.
  const auto where = [&] { return "page " + std::to_string(first_page); };
  if ((bit << v.opb) != first_page || bit >= v.count)
    return make_error(Errc::bad_free, where() + ": no live buffer starts there (double free or foreign address)");
  const Rec r = rec_of(load(v.words[bit]));
  if (r.holder == 0)
    return make_error(Errc::bad_free, where() + ": no live buffer starts there (double free or foreign address)");
  if (r.holder != holder) {
    if (owner != nullptr) *owner = r.holder;
    return make_error(Errc::bad_free, where() + ": the buffer is held by another attachment; only its holder frees it");
  }
  if (r.pages != count)
    return make_error(Errc::bad_free, where() + ": size mismatch: allocated " + std::to_string(r.pages) +
                                          " pages, freed " + std::to_string(count));
  return {};
}

void record_release(const Records& v, Area& area, std::uint64_t first_page, std::uint64_t count,
                    bool reaped) noexcept {
  if (!release_one(v, area, first_page, count, reaped)) rebuild(v, area);
}

std::uint64_t records_of(const Records& v, std::uint32_t holder) noexcept {
  if (holder == 0) return 0;  // 0 marks no buffer
  std::uint64_t n = 0;
  for (std::uint64_t b = 0; b < v.count; ++b) n += rec_of(load(v.words[b])).holder == holder ? 1 : 0;
  return n;
}

void rebuild(const Records& v, Area& area) noexcept {
  area.clear_allocations();
  for (std::uint64_t b = 0; b < v.count; ++b) {
    const Rec r = rec_of(load(v.words[b]));
    if (r.holder == 0) continue;
    const bool fits = r.holder <= v.holders && r.pages != 0 && area.restore(b << v.opb, r.pages).ok();
    if (!fits) {
      store(v.words[b], 0);
      ++v.st->dropped_records;
    }
  }
}

void repair(const Records& v, Area& area) noexcept {
  RecordState& st = *v.st;
  Journal& j = st.journal;
  if (j.pending != 0) {  // complete the update the dead owner began
    if (j.bit < v.count) store(v.words[j.bit], j.rec);
    area.counters().alloc_pages_success = j.alloc_pages_success;
    area.counters().release_pages_success = j.release_pages_success;
    st.reaped_pages = j.reaped_pages;
    ++st.recoveries;
  }
  rebuild(v, area);
  step();
  j.pending = 0;
}

Released release_holder(const Records& v, Area& area, std::uint32_t holder) noexcept {
  Released out;
  bool agree = true;
  for (std::uint64_t b = 0; b < v.count; ++b) {
    const Rec r = rec_of(load(v.words[b]));
    if (r.holder != holder || holder == 0) continue;
    if (release_one(v, area, b << v.opb, r.pages, true)) {
      ++out.buffers;
      out.pages += r.pages;
    } else {
      agree = false;
    }
  }
  if (!agree) rebuild(v, area);
  return out;
}

Status verify(const Records& v, const Area& area, const std::vector<bool>& attached) {
  const RecordState& st = *v.st;
  const auto bad = [&](const std::string& why) {
    return make_error(Errc::corrupt, "area " + area.name() + ": " + why);
  };
  if (st.journal.pending != 0) return bad("an update is pending");
  std::vector<bool> taken(v.count, false);
  std::uint64_t used = 0, live = 0, held = 0;
  for (std::uint64_t b = 0; b < v.count; ++b) {
    const Rec r = rec_of(v.words[b]);
    if (r.holder == 0) continue;
    held += r.pages;
    const std::uint64_t n = span_bits(r.pages, v.opb);
    if (r.pages == 0 || n > v.count - b) return bad("record " + std::to_string(b) + " runs past the area");
    if (r.holder > attached.size() || !attached[r.holder - 1])
      return bad("record " + std::to_string(b) + " names holder slot " + std::to_string(r.holder) +
                 ", which is not attached");
    for (std::uint64_t k = b; k < b + n; ++k) {
      if (taken[k]) return bad("record " + std::to_string(b) + " overlaps another");
      taken[k] = true;
    }
    used += n << v.opb;
    ++live;
  }
  const AreaStats s = area.stats();
  if (s.used != used) return bad("used pages " + std::to_string(s.used) + ", records say " + std::to_string(used));
  if (area.live_allocations() != live)
    return bad("live buffers " + std::to_string(area.live_allocations()) + ", records say " + std::to_string(live));
  if (std::string why; !area.invariant(&why)) return bad("bitmap: " + why);
  Bitmap expect(static_cast<std::size_t>(v.count));
  for (std::uint64_t b = 0; b < v.count; ++b)
    if (taken[b]) expect.set_range(static_cast<std::size_t>(b), 1);
  if (expect.dump() != area.dump_bitmap()) return bad("the bitmap differs from the records");
  if (s.alloc_pages_success - s.release_pages_success != held)
    return bad("counters: " + std::to_string(s.alloc_pages_success) + " pages allocated, " +
               std::to_string(s.release_pages_success) + " released, but " + std::to_string(held) + " held");
  return {};
}

}  // namespace numacma::core
