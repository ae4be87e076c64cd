// src/dmapool/dma_pool.cpp — numacma::DmaPool: the kernel's dma_pool with a
// per-thread cache.
// This file: alloc and free (the slow paths of the inline ones), the shared
// lists and the depot. The records: dma_pool_core.hpp; the rest of it:
// dma_pool_cache.cpp (per-thread caches), dma_pool_pages.cpp (pages in and
// out), dma_pool_lifecycle.cpp (create, shrink, stats, destroy).
//
//   DmaPoolCore
//   ├── layout              block offsets of a page (layout.hpp), fixed
//   ├── index               CPU address -> page record, lock-free reads
//   ├── records[]           page records, never freed before the core
//   │     buf               the alloc_coherent buffer (the "page")
//   │     state[block]      free (shared lists) | cached (a thread's cache, or
//   │                       held by a DmaBlock) | live (held by address)
//   │     free[]            the page's free blocks (pool lock)
//   ├── partial[], empty[]  pages with some / all blocks free (pool lock)
//   └── caches[]            one ThreadCache per thread that used the pool
//
//   alloc: pop the thread's cache (refill: a batch from the shared lists, a
//          new page when they are empty) -> a DmaBlock; detach() -> live
//   free by DmaBlock: push the thread's cache (its one owner: no check)
//   free by address: index lookup -> the block at exactly that offset, DMA
//          address checked -> CAS live -> cached (a second free, or a free
//          of a block a DmaBlock holds, fails here: counted, refused) ->
//          push the thread's cache
//   a full cache: its oldest batch goes to the depot as one magazine (a
//          copy under the lock, whatever the batch); an empty one takes a
//          magazine from the depot before it takes blocks from pages. So a
//          thread that frees what another allocates costs each a lock per
//          batch, not per block.
//   more than depot_max magazines: the oldest one's blocks go back to their
//          pages; more than kMaxEmpty wholly free pages -> give pages back to
//          their areas until kMinEmpty are left
//
// A cache belongs to one thread (dma_pool_cache.cpp tells who may touch it).
//
// The fast paths (DmaPool::alloc, DmaBlock::release) are inline in
// numacma/dma_pool.hpp: the thread's slot dma_tls[uid % 8] names its cache
// of the pool with that uid (uids are never reused, so a stale slot never
// matches); pop / push there, or come here (*_slow) for everything else:
// an empty or full cache, another pool in the slot, a destroyed pool (its
// caches' cap is 0), a bad free.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "dmapool/dma_pool_core.hpp"

namespace numacma {
namespace detail {

void DmaPoolCore::list_remove(DmaPage* p) {
  if (p->list == DmaPage::List::none) return;
  std::vector<DmaPage*>& v = p->list == DmaPage::List::partial ? partial : empty;
  v[p->pos] = v.back();
  v[p->pos]->pos = p->pos;
  v.pop_back();
  p->list = DmaPage::List::none;
}

void DmaPoolCore::list_put(DmaPage* p) {
  const DmaPage::List want = p->free.empty() ? DmaPage::List::none
                             : p->held == 0  ? DmaPage::List::empty
                                             : DmaPage::List::partial;
  if (want == p->list) return;
  list_remove(p);
  if (want == DmaPage::List::none) return;
  std::vector<DmaPage*>& v = want == DmaPage::List::partial ? partial : empty;
  p->list = want;
  p->pos = v.size();
  v.push_back(p);
}

DmaCacheSlot DmaPoolCore::take_block(DmaPage* p) {
  const std::uint32_t b = p->free.back();
  p->free.pop_back();
  ++p->held;
  p->state[b].store(kDmaBlockCached, std::memory_order_relaxed);
  list_put(p);
  const std::uint32_t off = layout.offsets[b];
  return {reinterpret_cast<void*>(p->cpu.load(std::memory_order_relaxed) + off),
          p->dma.load(std::memory_order_relaxed) + off, &p->state[b]};
}

void DmaPoolCore::give_block(DmaPage* p, std::uint32_t b, std::vector<DmaBuffer>& out) {
  p->state[b].store(kDmaBlockFree, std::memory_order_relaxed);
  p->free.push_back(b);
  --p->held;
  list_put(p);
  if (orphaned.load(std::memory_order_relaxed) && p->held == 0) release_page(p, out);
}

void DmaPoolCore::give_magazine(std::vector<DmaCacheSlot>& m, std::vector<DmaBuffer>& out) {
  for (const DmaCacheSlot& e : m) give_slot(e, out);
  m.clear();
  empty_mags.push_back(std::move(m));
}

void DmaPoolCore::to_depot_locked(ThreadCache& c, std::vector<DmaBuffer>& out) {
  const std::uint32_t n = c.n.load(std::memory_order_relaxed);
  const std::uint32_t count = std::min(batch, n);
  std::vector<DmaCacheSlot> m;
  if (!empty_mags.empty()) {
    m = std::move(empty_mags.back());
    empty_mags.pop_back();
  }
  m.assign(c.e, c.e + count);
  std::memmove(c.e, c.e + count, (n - count) * sizeof(DmaCacheSlot));
  c.n.store(n - count, std::memory_order_relaxed);
  depot.push_back(std::move(m));
  if (depot.size() > depot_max) {
    give_magazine(depot.front(), out);
    depot.erase(depot.begin());
    if (empty.size() > kMaxEmpty) shrink_locked(kMinEmpty, out);
  }
}

void DmaPoolCore::drain_depot_locked(std::vector<DmaBuffer>& out) {
  for (auto& m : depot) give_magazine(m, out);
  depot.clear();
}

Result<DmaCacheSlot> DmaPoolCore::refill(ThreadCache* c) {
  std::unique_lock lk(mu);
  if (!depot.empty()) {  // a magazine another thread (or this one) gave back
    std::vector<DmaCacheSlot> m = std::move(depot.back());
    depot.pop_back();
    const DmaCacheSlot first = m.back();
    m.pop_back();
    if (c != nullptr) {
      std::uint32_t n = c->n.load(std::memory_order_relaxed);
      for (const DmaCacheSlot& e : m) c->e[n++] = e;  // n was 0: batch - 1 fit
      c->n.store(n, std::memory_order_relaxed);
      m.clear();
    } else {
      std::vector<DmaBuffer> out;
      give_magazine(m, out);  // no cache to hold the rest (a thread exiting)
      lk.unlock();
      return first;
    }
    empty_mags.push_back(std::move(m));
    return first;
  }
  while (partial.empty() && empty.empty()) {
    if (Status s = add_page(lk); !s) {
      alloc_failures.fetch_add(1, std::memory_order_relaxed);
      return std::move(s).error();
    }
  }
  auto next = [&]() -> DmaCacheSlot {
    return take_block(!partial.empty() ? partial.back() : empty.back());
  };
  const DmaCacheSlot first = next();
  if (c != nullptr) {
    std::uint32_t n = c->n.load(std::memory_order_relaxed);
    while (n < batch && !(partial.empty() && empty.empty())) c->e[n++] = next();
    c->n.store(n, std::memory_order_relaxed);
  }
  return first;
}

Result<DmaBlock> DmaPoolCore::alloc() {
  ThreadCache* c = cache();
  DmaCacheSlot e;
  std::uint32_t n;
  if (c != nullptr && (n = c->n.load(std::memory_order_relaxed)) > 0) {
    e = c->e[n - 1];
    c->n.store(n - 1, std::memory_order_relaxed);
  } else {
    Result<DmaCacheSlot> r = refill(c);
    if (!r) return std::move(r).error();
    e = *r;
  }
  return DmaBlock(e, this);  // "cached" while a handle holds it (dma_pool.hpp)
}

Status DmaPoolCore::free(void* cpu, std::uint64_t dma) {
  const auto a = reinterpret_cast<std::uintptr_t>(cpu);
  DmaPage* p = index.find(a);
  if (p == nullptr)
    return bad_free("free of " + fmt_hex(a) +
                    ": not a block of this pool (another pool's, or never allocated)");
  const std::uint64_t off = a - p->cpu.load(std::memory_order_relaxed);
  const std::int32_t b = layout.block_at(off);
  if (b < 0)
    return bad_free("free of " + fmt_hex(a) + ": not the start of a block (offset " +
                    std::to_string(off) + " in its page)");
  const std::uint64_t want = p->dma.load(std::memory_order_relaxed) + off;
  if (dma != want)
    return bad_free("free of " + fmt_hex(a) + " with dma " + fmt_hex(dma) + ": its block's dma is " +
                    fmt_hex(want));
  return put(p, static_cast<std::uint32_t>(b), a, dma, false);
}

Status DmaPoolCore::put(DmaPage* p, std::uint32_t ub, std::uintptr_t a, std::uint64_t dma,
                        bool handle) {
  // A block held by address is "live"; it becomes "cached" exactly once: a
  // free by address (the C API, a detached block) may race with another free
  // of the same block, so compare-and-swap: one wins, the other is refused.
  // A block held by a DmaBlock is "cached" already (its one owner, which
  // empties itself when it frees): a free by address of it is refused too.
  std::uint8_t expect = kDmaBlockLive;
  if (!handle && !p->state[ub].compare_exchange_strong(expect, kDmaBlockCached,
                                                       std::memory_order_acq_rel,
                                                       std::memory_order_relaxed))
    return bad_free("free of the block at " + fmt_hex(a) + " (dma " + fmt_hex(dma) +
                    "): it is not allocated (a double free, or a block that a DmaBlock holds)");
  if (orphaned.load(std::memory_order_relaxed)) {
    // Destroyed while busy: straight back, its page freed when it empties,
    // the core when the last page goes.
    std::vector<DmaBuffer> out;
    std::shared_ptr<DmaPoolCore> last;
    {
      std::lock_guard lk(mu);
      give_block(p, ub, out);
      if (pages == 0) last = std::move(self);
    }
    return {};  // `last` (possibly this core, nothing of it used after), then `out`, go here
  }
  ThreadCache* c = cache();
  if (c == nullptr) {
    std::vector<DmaBuffer> out;
    std::lock_guard lk(mu);
    give_block(p, ub, out);
    return {};
  }
  std::uint32_t n = c->n.load(std::memory_order_relaxed);
  if (n == cache_cap) {
    std::vector<DmaBuffer> out;
    {
      std::lock_guard lk(mu);
      to_depot_locked(*c, out);
    }
    n = c->n.load(std::memory_order_relaxed);
  }
  c->e[n] = DmaCacheSlot{reinterpret_cast<void*>(a), dma, &p->state[ub]};
  c->n.store(n + 1, std::memory_order_relaxed);
  return {};
}

}  // namespace detail

// ---- DmaBlock ----------------------------------------------------------------

Status DmaBlock::release_slow() {
  const auto cpu = reinterpret_cast<std::uintptr_t>(cpu_);
  const std::uint64_t dma = dma_;
  const auto* state = state_;
  auto* core = static_cast<detail::DmaPoolCore*>(pool_);
  clear();
  const detail::Located l = core->locate(cpu);
  // A live handle's block is always found: its pool and page live while it does.
  if (l.block < 0 || &l.page->state[l.block] != state)
    return core->bad_free("a DmaBlock whose page is gone (" + detail::fmt_hex(cpu) + ")");
  return core->put(l.page, static_cast<std::uint32_t>(l.block), cpu, dma, true);
}

// ---- DmaPool -----------------------------------------------------------------

Result<DmaBlock> DmaPool::alloc_slow() {
  if (!core_) return make_error(Errc::invalid_argument, "dma_pool: alloc on an empty DmaPool");
  return core_->alloc();
}

DmaBlock DmaPool::try_alloc_slow(Error* why) {
  Result<DmaBlock> r = alloc_slow();
  if (r) return std::move(*r);
  if (why != nullptr) *why = std::move(r).error();
  return DmaBlock();
}

Status DmaPool::free(void* cpu, std::uint64_t dma) {
  if (!core_) return make_error(Errc::bad_free, "dma_pool: free to an empty DmaPool");
  if (cpu == nullptr) return core_->bad_free("free of a NULL block");
  return core_->free(cpu, dma);
}

}  // namespace numacma
