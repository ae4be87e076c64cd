// Fuzz: bytes -> alloc/free operations on an Area, checked after every step
// against the naive model (decisions and counters) and Area::invariant(). Any
// divergence aborts.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "../unit/core_model.hpp"
#include "core/area.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  using namespace numacma;
  core::AreaConfig c;
  c.name = "f";
  c.order_per_bit = data[0] % 3;
  const std::uint64_t seg1 = (1 + data[1] % 40) << c.order_per_bit;
  const std::uint64_t seg2 = (1 + data[2] % 40) << c.order_per_bit;
  c.segments = {{0, seg1, 0x3000ULL << c.order_per_bit}, {seg1, seg2, 0x400000}};
  c.pages = seg1 + seg2;
  auto a = core::Area::create(c);
  if (!a.ok()) std::abort();
  testing::NaiveArea model(c);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> live;
  for (std::size_t i = 3; i + 1 < size; i += 2) {
    const std::uint8_t op = data[i], arg = data[i + 1];
    if ((op & 3) != 0 || live.empty()) {
      const std::uint64_t count = 1 + arg % 24;
      const unsigned align = (op >> 2) % 10;
      const std::uint64_t limit = (op & 0x80) ? 0x400000 + 8 * 4096 - 1 : UINT64_MAX;
      auto got = a->alloc(count, align, limit);
      auto want = model.alloc(count, align, limit);
      if (got.ok() != want.has_value()) std::abort();
      if (got.ok()) {
        if (got->first_page != *want) std::abort();
        live.emplace_back(got->first_page, count);
      }
    } else {
      const std::size_t k = arg % live.size();
      if (!a->release(live[k].first, live[k].second).ok()) std::abort();
      model.release(live[k].first, live[k].second);
      live.erase(live.begin() + static_cast<long>(k));
    }
    if (!a->invariant(nullptr)) std::abort();
    // The kernel's counters: a request larger than the area is in neither.
    const auto st = a->stats();
    if (st.alloc_pages_success != model.alloc_pages_success) std::abort();
    if (st.alloc_pages_fail != model.alloc_pages_fail) std::abort();
  }
  return 0;
}
