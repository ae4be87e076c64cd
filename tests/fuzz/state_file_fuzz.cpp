// Fuzz: a reserved pool's state damaged by a hostile process, then everything
// the library does with it. A valid pool (two areas, one of them hugetlb-like
// with several segments, order_per_bit 1, three holders with live buffers) is
// built in memory; the input is read as (offset, xor byte) pairs applied to
// its state file, a few more bytes as operations. Then, on the damaged state:
//   attach   a new core::Area over each area's shared bitmap, allocations and
//            frees through the records (as an attached process makes them)
//   reap     the keeper's decisions: a holder gone, reap, verify, release's check
//   status   read_status on a copy
// and the layout, damaged the same way, is validated. Nothing may crash, read
// or write out of bounds (ASan) or hang; the layout must refuse any damage.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/records.hpp"
#include "shared/keeper_core.hpp"
#include "shared/layout.hpp"
#include "shared/status.hpp"
#include "sync/word_lock.hpp"

namespace {

using namespace numacma;

shared::PoolSpec spec() {
  shared::PoolSpec s;
  s.name = "fuzz";
  s.params = "cma=8M cma_pernuma=4M";
  s.backing = "sim";
  s.sysfs_root = "/nonexistent";
  s.node_slots = 3;
  s.holder_capacity = 8;
  s.order_per_bit = 1;
  shared::AreaSpec a;
  a.name = "reserved";
  a.kind_name = "anon";
  a.node = 0;
  a.pages = 2048;
  a.mapped_bytes = 2048 * 4096;
  a.iova = true;
  a.segments = {{0, 2048, 1ULL << 40}};
  s.areas.push_back(a);
  shared::AreaSpec h;
  h.name = "pernuma1";
  h.kind_name = "hugetlb-2M";
  h.node = 1;
  h.kind = 1;
  h.pages = 1024;
  h.mapped_bytes = 1024 * 4096;
  h.huge_page_bytes = 2 << 20;
  h.hpmap = {1, 0};
  h.segments = {{0, 512, 0x40000000}, {512, 512, 0x80000000}};
  s.areas.push_back(h);
  return s;
}

struct Fixture {
  std::vector<unsigned char> layout_img;
  shared::Layout layout;
  std::vector<unsigned char> state;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    Result<std::vector<unsigned char>> img = shared::make_layout(spec());
    if (!img) std::abort();
    Result<shared::Layout> l = shared::Layout::from(img->data(), img->size());
    if (!l) std::abort();
    std::vector<unsigned char> state(l->hdr().state_bytes, 0);
    Result<shared::KeeperCore> k = shared::KeeperCore::create(*l, state.data());
    if (!k) std::abort();
    for (int h = 0; h < 3; ++h)
      if (!k->admit(100 + h, 0, "fuzz", 0)) std::abort();
    // Live buffers of holders 1 and 2 in both areas, as attached processes make them.
    for (std::uint32_t i = 0; i < 2; ++i) {
      shared::AreaParts p = shared::area_parts(*l, state.data(), i);
      Result<core::Area> a = shared::area_over(*l, p, i, 0x10000000, false);
      if (!a) std::abort();
      for (std::uint64_t n : {4u, 16u, 3u, 2u, 64u}) {
        Result<core::Block> b = a->find(n, 2, UINT64_MAX);
        if (!b) std::abort();
        core::record_alloc(p.rec, *a, *b, 1 + static_cast<std::uint32_t>(n % 2));
      }
    }
    return Fixture{*img, std::move(*l), std::move(state)};
  }();
  return f;
}

void exercise(const shared::Layout& l, std::vector<unsigned char>& state, const std::uint8_t* ops, std::size_t n) {
  // Attached processes: allocations and frees on the shared bitmaps.
  for (std::uint32_t i = 0; i < l.areas(); ++i) {
    shared::AreaParts p = shared::area_parts(l, state.data(), i);
    Result<core::Area> a = shared::area_over(l, p, i, 0x10000000, false);
    if (!a) continue;
    if (!sync::lock(&p.st->lock, 3, 0, false)) continue;  // a forged owner: busy
    if (p.st->rs.journal.pending != 0) core::repair(p.rec, *a);
    for (std::size_t k = 0; k < n; ++k) {
      const std::uint64_t count = 1 + ops[k] % 40;
      if (ops[k] & 0x80) {
        const std::uint64_t first = (static_cast<std::uint64_t>(ops[k]) * 37) % p.rec.count << p.rec.opb;
        std::uint32_t owner = 0;
        if (core::check_release(p.rec, first, count, 3, &owner)) core::record_release(p.rec, *a, first, count, false);
      } else if (Result<core::Block> b = a->find(count, ops[k] % 9, UINT64_MAX)) {
        core::record_alloc(p.rec, *a, *b, 3);
      }
    }
    (void)a->stats();
    sync::unlock(&p.st->lock, false);
  }
  // The keeper.
  Result<shared::KeeperCore> k = shared::KeeperCore::create(l, state.data());
  if (!k) return;
  for (int h = 0; h < 3; ++h) (void)k->admit(100 + h, 0, "again", 0);
  (void)k->holders_with_buffers();
  (void)k->gone(0, true, 0);
  (void)k->reap(0);
  (void)k->verify(0);
  (void)k->gone(2, false, 0);
  (void)k->holders_with_buffers();
  // Status, on a copy.
  (void)shared::read_status("fuzz", l, state);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Fixture& f = fixture();
  const std::size_t nops = size > 0 ? data[0] % 16 : 0;
  if (size < 1 + nops) return 0;
  const std::uint8_t* ops = data + 1;
  const std::uint8_t* dmg = data + 1 + nops;
  const std::size_t ndmg = size - 1 - nops;

  std::vector<unsigned char> state = f.state;
  for (std::size_t i = 0; i + 3 <= ndmg; i += 3) {
    const std::size_t off = (static_cast<std::size_t>(dmg[i]) << 8 | dmg[i + 1]) * 7919 % state.size();
    state[off] ^= dmg[i + 2] == 0 ? 0xff : dmg[i + 2];
  }
  exercise(f.layout, state, ops, nops);

  // The layout damaged the same way: refused, never read out of bounds.
  std::vector<unsigned char> img = f.layout_img;
  bool changed = false;
  for (std::size_t i = 0; i + 3 <= ndmg; i += 3) {
    const std::size_t off = (static_cast<std::size_t>(dmg[i]) << 8 | dmg[i + 1]) % img.size();
    img[off] ^= dmg[i + 2] == 0 ? 0xff : dmg[i + 2];
    changed = true;
  }
  if (changed && img != f.layout_img && shared::validate_layout(img.data(), img.size()).ok()) std::abort();
  // Truncated and raw inputs.
  (void)shared::validate_layout(img.data(), img.size() / 2);
  (void)shared::validate_layout(data, size);
  return 0;
}
