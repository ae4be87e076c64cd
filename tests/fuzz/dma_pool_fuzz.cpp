// Fuzz: bytes -> a DmaPool's shape and a sequence of allocs, frees by handle
// and by address, and bad frees (inside a block, a block a DmaBlock holds, a
// wrong DMA address, twice, to another pool, an address never allocated), checked after every step
// against a model of the live blocks: a bad free is always refused and
// counted, a good one always taken, no two live blocks overlap, and the
// pool's block counts add up. At the end everything goes back to the areas.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "numacma/numacma.hpp"

namespace {

numacma::Pool& pool() {
  static numacma::Pool p = [] {
    numacma::PoolOptions o;
    o.params = "cma=64M";
    o.backing = "sim";
    o.sysfs_root = "/sys";
    auto r = numacma::Pool::create(o);
    if (!r) std::abort();
    return std::move(*r);
  }();
  return p;
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  using namespace numacma;
  const std::size_t obj = 1 + (data[0] | (data[1] & 0x1f) << 8);  // 1 .. 8192
  const std::size_t align = std::size_t{1} << (data[2] % 11);
  const std::size_t block = (std::max<std::size_t>(obj, 16) + align - 1) / align * align;
  std::size_t boundary = 0;
  if (data[1] & 0x80) boundary = std::size_t{1} << (13 + (data[1] >> 5 & 3));  // 8K .. 64K
  const Device dev = Device::on_node(0, "fuzz");
  auto dp = DmaPool::create(pool(), dev, "f", obj, align, boundary);
  if (boundary != 0 && boundary < block) {
    check(!dp.ok());
    return 0;
  }
  check(dp.ok());
  auto other = DmaPool::create(pool(), dev, "g", 64, 64, 0);
  check(other.ok());
  auto foreign = other->alloc();
  check(foreign.ok());

  std::map<std::uintptr_t, DmaBlock> live;  // by CPU address
  std::uint64_t bad = 0;
  for (std::size_t i = 3; i + 1 < size; i += 2) {
    const std::uint8_t op = data[i], arg = data[i + 1];
    if (live.empty() || op % 5 == 0 || op % 5 == 1) {
      auto b = (op & 0x20) ? dp->zalloc() : dp->alloc();
      check(b.ok());
      const auto c = reinterpret_cast<std::uintptr_t>(b->cpu());
      check(c % align == 0 && b->dma_addr() % align == 0);
      if (boundary != 0) check(b->dma_addr() / boundary == (b->dma_addr() + block - 1) / boundary);
      auto next = live.lower_bound(c);
      check(next == live.end() || c + block <= next->first);
      check(next == live.begin() || std::prev(next)->first + block <= c);
      std::memset(b->cpu(), arg, block);
      live.emplace(c, std::move(*b));
      continue;
    }
    auto it = live.begin();
    std::advance(it, static_cast<long>(arg % live.size()));
    const std::uintptr_t c = it->first;
    const std::uint64_t d = it->second.dma_addr();
    switch (op % 5) {
      case 2:  // by handle
        check(it->second.release().ok());
        live.erase(it);
        break;
      case 3: {  // by address, then the same again: a double free
        it->second.detach();
        live.erase(it);
        check(dp->free(reinterpret_cast<void*>(c), d).ok());
        if (op & 0x40) {
          check(!dp->free(reinterpret_cast<void*>(c), d).ok());
          ++bad;
        }
        break;
      }
      default: {  // a bad free: each refused, the block stays live
        const std::uint64_t delta = 1 + (op >> 3) % 64;
        switch ((op >> 3) % 4) {
          // inside the block, or (delta % block == 0) the block itself, which
          // its DmaBlock holds: refused either way, the handle still owns it
          case 0: check(!dp->free(reinterpret_cast<void*>(c + delta % block), d + delta % block).ok());
                  break;
          case 1: check(!dp->free(reinterpret_cast<void*>(c), d + delta).ok()); break;
          case 2: check(!dp->free(foreign->cpu(), foreign->dma_addr()).ok()); break;
          default: check(!dp->free(reinterpret_cast<void*>(0x1000 * (1 + delta)), 0).ok()); break;
        }
        ++bad;
        break;
      }
    }
  }
  const auto st = dp->stats();
  check(st.blocks_live == live.size());
  check(st.bad_frees == bad);
  check(st.blocks_live + st.blocks_cached + st.blocks_free == st.pages * st.blocks_per_page);
  for (auto& [c, b] : live) {  // the bytes written at alloc are intact
    const auto* p = static_cast<const std::uint8_t*>(b.cpu());
    for (std::size_t k = 1; k < block; ++k) check(p[k] == p[0]);
  }
  live.clear();
  check(dp->destroy().ok());
  check(foreign->release().ok());
  check(other->destroy().ok());
  for (const auto& a : pool().stats().areas) check(a.used == 0);
  return 0;
}
