// Fuzz: bytes -> a shared area's storage as another process might have left
// it (or a hostile one written it), then operations on an external
// core::Area over it, with now and then a word of the storage changed behind
// its back. Never a crash, a sanitizer report or a write outside the storage
// (guard words around it). Once the state is known good again (created with
// init, or cleared with clear_allocations and the kernel's counters reset by
// their owner), and until the next scribble, every decision of an area of
// up to 8192 bits is checked against the naive model and invariant() must
// hold.
//
//   [0]      order_per_bit (% 3), bit 7: init, bits 2-3: segment scale
//   [1] [2]  the two segments' sizes in bits (0: one segment)
//   [3]      DMA bases (low nibble: first segment's, high: the gap), in whole bits
//   [4]      what the storage holds (see garbage()), [5..7] its PRNG seed
//   [8]      patches (% 16), 3 bytes each: where (16 bits, scaled), what (8 bits)
//   then     operations, 2 bytes each: op, arg
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "../unit/core_model.hpp"
#include "core/area.hpp"

namespace {

using namespace numacma;

constexpr std::size_t kGuard = 4;
constexpr std::uint64_t kGuardWord = 0x510e527fade682d1ULL;

struct Rng {
  std::uint64_t s;
  std::uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

std::uint64_t garbage(Rng& r, unsigned kind) {
  switch (kind % 8) {
    case 0: return 0;
    case 1: return ~std::uint64_t{0};
    case 2: return r.next();
    case 3: return r.next() & r.next() & r.next();
    case 4: return r.next() | r.next();
    case 5: return r.next() % 2 ? ~std::uint64_t{0} : 0;
    case 6: return r.next() % 8 == 0 ? r.next() : 0;
    default: return ~std::uint64_t{0} << (r.next() % 64);
  }
}

std::uint64_t bits_of(std::uint64_t count, unsigned opb) {
  return (count >> opb) + ((count & ((std::uint64_t{1} << opb) - 1)) != 0);
}

/** Would a restore of (page, count) be accepted by a correct area the model describes? */
bool restore_fits(const testing::NaiveArea& m, std::uint64_t page, std::uint64_t count) {
  const unsigned opb = m.cfg.order_per_bit;
  if (count == 0 || page % (std::uint64_t{1} << opb) != 0 || page >= m.cfg.pages) return false;
  const std::uint64_t bits = bits_of(count, opb);
  if (bits > (m.cfg.pages - page) >> opb) return false;
  for (const core::Segment& s : m.cfg.segments)
    if (page >= s.first_page && page < s.first_page + s.pages && page + (bits << opb) > s.first_page + s.pages)
      return false;
  for (std::uint64_t k = 0; k < bits; ++k)
    if (m.used[(page >> opb) + k]) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 9) return 0;
  core::AreaConfig c;
  c.name = "fz";
  c.order_per_bit = data[0] % 3;
  const bool init = (data[0] & 0x80) != 0;
  // Segments of up to 16, 256, 4096 or 261120 bits: the last, two of them,
  // give the summary tree three levels.
  const std::uint64_t scales[] = {1, 16, 256, 16384};
  const std::uint64_t scale = scales[(data[0] >> 2) & 3];
  const unsigned opb = c.order_per_bit;
  const std::uint64_t granule = std::uint64_t{4096} << opb;
  const std::uint64_t seg1 = (1 + data[1] * scale / 16) << opb;
  const std::uint64_t seg2 = data[2] == 0 ? 0 : (data[2] * scale / 16 + 1) << opb;
  const std::uint64_t dma1 = (data[3] & 15) * granule;
  c.segments = {{0, seg1, dma1}};
  if (seg2 != 0) c.segments.push_back({seg1, seg2, dma1 + seg1 * 4096 + (data[3] >> 4) * granule});
  c.pages = seg1 + seg2;
  const std::size_t words = core::Area::storage_words(c);

  // Storage, counters, guards around both.
  std::vector<std::uint64_t> buf(words + 5 + 3 * kGuard);
  Rng rng{(std::uint64_t{data[5]} << 16 | std::uint64_t{data[6]} << 8 | data[7]) * 0x9e3779b97f4a7c15ULL + 1};
  for (auto& w : buf) w = garbage(rng, data[4]);
  const auto slot = [&](std::size_t i) -> std::uint64_t& { return buf[kGuard + i + (i >= words ? kGuard : 0)]; };
  const std::size_t nwords = static_cast<std::size_t>(((c.pages >> opb) + 63) / 64);
  std::size_t at = 9;
  for (unsigned p = 0; p < data[8] % 16u && at + 3 <= size; ++p, at += 3) {
    const std::size_t where = ((std::size_t{data[at]} << 8 | data[at + 1]) * (words + 5)) >> 16;
    const std::uint64_t values[] = {0, ~std::uint64_t{0}, 1, std::uint64_t{1} << 63, nwords, nwords + 1,
                                    c.pages >> opb, std::uint64_t{1} << 58, rng.next(),
                                    0x0101010101010101ULL * data[at + 2]};
    slot(where) = values[data[at + 2] % std::size(values)];
  }
  for (std::size_t i = 0; i < kGuard; ++i)
    buf[i] = buf[kGuard + words + i] = buf[buf.size() - 1 - i] = kGuardWord;
  const auto intact = [&] {
    for (std::size_t i = 0; i < kGuard; ++i)
      if (buf[i] != kGuardWord || buf[kGuard + words + i] != kGuardWord || buf[buf.size() - 1 - i] != kGuardWord)
        return false;
    return true;
  };
  core::AreaStorage storage{buf.data() + kGuard, reinterpret_cast<core::AreaCounters*>(&slot(words))};
  auto created = core::Area::create_over(c, storage, init);
  if (!created.ok()) std::abort();
  core::Area a = std::move(created).value();

  // The model, while the state is known good, for areas it can follow at
  // fuzzing speed (its first fit tries every bit: a 500,000-bit area took
  // over 10 s an input); larger areas are fuzzed for robustness only.
  const bool modelled = (c.pages >> opb) <= 8192;
  bool trusted = init && modelled;
  testing::NaiveArea model(c);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> live;
  const auto reset_known_good = [&] {
    a.clear_allocations();
    storage.counters->alloc_pages_success = storage.counters->alloc_pages_fail = 0;
    storage.counters->release_pages_success = 0;
    model = testing::NaiveArea(c);
    live.clear();
    trusted = modelled;
  };

  for (std::size_t i = at; i + 1 < size; i += 2) {
    const std::uint8_t op = data[i], arg = data[i + 1];
    switch (op % 8) {
      case 0: case 1: case 2: {
        const std::uint64_t count = (op & 0x40) ? std::uint64_t{arg} << 8 : 1 + arg % 40;
        const unsigned align = (op >> 3) % 10;
        const std::uint64_t limit = (op & 0x80) ? dma1 + (1 + arg % 16) * granule - 1 : UINT64_MAX;
        core::Block above;
        Result<core::Block> got = (op & 0x20) ? a.find(count, align, limit, &above) : a.alloc(count, align, limit);
        if ((op & 0x20) && got.ok()) a.commit(*got);
        if ((op & 0x20) && !got.ok() && above.pages != 0) a.count_taken_and_released(above.pages);  // as the pool
        if (trusted) {
          const auto want = model.alloc(count, align, limit);
          if (got.ok() != want.has_value()) std::abort();
          if (want) {
            if (got->first_page != *want || got->dma_addr != a.dma_of_page(*want)) std::abort();
            live.emplace_back(*want, count);
          }
        }
        break;
      }
      case 3:  // release a live one (the caller's record), or anything
        if (trusted && !live.empty()) {
          const std::size_t k = arg % live.size();
          if (!a.release(live[k].first, live[k].second).ok()) std::abort();
          model.release(live[k].first, live[k].second);
          live.erase(live.begin() + static_cast<long>(k));
        } else if (a.release(arg, op >> 3).ok() && trusted) {
          std::abort();  // nothing is live
        }
        break;
      case 4: {  // release with a hostile page and count
        const std::uint64_t page = (op & 0x80) ? UINT64_MAX - arg : std::uint64_t{arg} << opb;
        const std::uint64_t count = (op & 0x40) ? UINT64_MAX - arg : std::uint64_t{arg} * (op >> 3);
        const bool ok = a.release(page, count).ok();
        if (trusted) {
          auto it = std::find_if(live.begin(), live.end(), [&](auto& l) { return l.first == page; });
          const bool should = it != live.end() && count != 0 && bits_of(count, opb) == bits_of(it->second, opb);
          if (ok != should) std::abort();
          if (ok) {
            // Accepted on the run's bits: the area counted `count` released
            // pages where the caller, who keeps exact counts and checks
            // them, would have passed its own. Count as it would have.
            storage.counters->release_pages_success += it->second - count;  // mod 2^64
            model.release(it->first, it->second);
            live.erase(it);
          }
        }
        break;
      }
      case 5: {  // restore from a record: hostile counts
        const std::uint64_t page = std::uint64_t{arg} << ((op >> 3) % 4);
        const std::uint64_t counts[] = {arg, UINT64_MAX - arg, (std::uint64_t{1} << 32) - 1 - arg,
                                        std::uint64_t{1} << (arg % 64)};
        const std::uint64_t count = counts[(op >> 5) % 4];
        const bool should = trusted && restore_fits(model, page, count);
        const bool ok = a.restore(page, count).ok();
        if (trusted) {
          if (ok != should) std::abort();
          if (ok) {  // as alloc would have left it, not counted
            for (std::uint64_t k = 0; k < bits_of(count, opb); ++k) model.used[(page >> opb) + k] = true;
            model.live[page] = count;
            live.emplace_back(page, count);
            // The record's process counted it when it allocated: its release
            // must not make more pages released than allocated.
            storage.counters->alloc_pages_success += count;
            model.alloc_pages_success += count;
          }
        }
        break;
      }
      case 6:
        if (op & 0x80) {
          reset_known_good();
        } else {  // another process attaches to whatever is there
          auto again = core::Area::create_over(c, storage, false);
          if (!again.ok()) std::abort();
          a = std::move(again).value();
        }
        break;
      default: {  // a writer that ignores the lock
        slot((std::size_t{arg} << 8 | op) % (words + 5)) = garbage(rng, arg);
        trusted = false;
        break;
      }
    }
    if (!intact()) std::abort();
    const auto st = a.stats();
    if (trusted) {
      if (st.alloc_pages_success != model.alloc_pages_success) std::abort();
      if (st.alloc_pages_fail != model.alloc_pages_fail) std::abort();
      if (a.live_allocations() != live.size()) std::abort();
    }
    // The O(area) checks after every step of a small area, every 16th of a large one.
    if (c.pages >> opb <= 4096 || (i - at) % 32 == 0) {
      std::string why;
      if (!a.invariant(&why) && trusted) std::abort();
      (void)a.dump_bitmap();
    }
  }
  // Whatever happened, clearing brings it back.
  reset_known_good();
  std::string why;
  if (!a.invariant(&why) || !intact()) std::abort();
  return 0;
}
