// src/dmapool/dma_pool.cpp — numacma::DmaPool: the kernel's dma_pool with a
// per-thread cache.
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
// A cache belongs to one thread: its owner reads and writes it without a
// lock. Only destroy (no concurrent use, by contract) and a thread's exit
// (the pool lock held) empty a cache of another thread.
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
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "dmapool/layout.hpp"
#include "dmapool/page_index.hpp"
#include "numacma/dma_pool.hpp"
#include "numacma/numacma.hpp"
#include "pool/pool_impl.hpp"

namespace numacma {
namespace detail {

struct DmaPoolCore;

namespace {

constexpr std::size_t kDepotMax = 8;            // full magazines kept for the caches,
constexpr std::size_t kDepotBytes = 512u << 10;  // and no more blocks' bytes than this (at least 2)
constexpr std::size_t kMaxEmpty = 2;  // more wholly free pages than this: shrink
constexpr std::size_t kMinEmpty = 1;  // ... down to this many
constexpr std::size_t kLine = 64;

std::uint32_t cache_capacity(std::size_t block) {
  if (block <= 1024) return 256;
  return static_cast<std::uint32_t>(std::clamp<std::size_t>((256u << 10) / block, 16, 256));
}

}  // namespace

struct DmaPage {
  DmaPoolCore* core = nullptr;      ///< the pool it belongs to (fixed)
  std::atomic<std::uint8_t>* state = nullptr;  ///< [block]: free | cached | live
  DmaBuffer buf;
  std::atomic<std::uintptr_t> cpu{0};
  std::atomic<std::uint64_t> dma{0};
  std::size_t state_bytes = 0;
  std::vector<std::uint32_t> free;  ///< free block indices, the lowest on top
  std::uint32_t held = 0;           ///< blocks out of `free` (cached or live)
  enum class List : std::uint8_t { none, partial, empty } list = List::none;
  std::size_t pos = 0;              ///< index in its list
  std::uint64_t seq = 0;            ///< allocation order (stats)

  DmaPage(DmaPoolCore* c, std::size_t blocks) : core(c) {
    state_bytes = (blocks + kLine - 1) / kLine * kLine;  // its own cache lines
    state = static_cast<std::atomic<std::uint8_t>*>(
        ::operator new(state_bytes, std::align_val_t{kLine}));
    for (std::size_t i = 0; i < state_bytes; ++i) new (&state[i]) std::atomic<std::uint8_t>(kDmaBlockFree);
    free.reserve(blocks);
  }
  ~DmaPage() { ::operator delete(state, std::align_val_t{kLine}); }
  DmaPage(const DmaPage&) = delete;
  DmaPage& operator=(const DmaPage&) = delete;
};

/** A DmaThreadCache and the slots it points into. */
struct ThreadCache : DmaThreadCache {
  explicit ThreadCache(std::uint32_t capacity) : slots(new DmaCacheSlot[capacity]) {
    e = slots.get();
    cap.store(capacity, std::memory_order_relaxed);
  }
  std::unique_ptr<DmaCacheSlot[]> slots;
};

namespace {

std::atomic<std::uint64_t> g_next_uid{1};

/** Per thread: the caches it owns, by pool; emptied into their pools when
 *  the thread exits. The fast slot below is the last pool used. */
struct TlsRegistry {
  struct Slot {
    std::uint64_t uid;
    ThreadCache* cache;
    std::weak_ptr<DmaPoolCore> core;
  };
  std::vector<Slot> slots;
  ~TlsRegistry();
};

thread_local TlsRegistry tls_registry;
__thread bool tls_exiting __attribute__((tls_model("initial-exec"))) = false;

}  // namespace

// Plain (__thread) thread-locals: no guard, no wrapper, no __tls_get_addr.
__thread DmaTlsSlot dma_tls[kDmaTlsSlots] __attribute__((tls_model("initial-exec")));

/** Where a block is: its page record and index (-1: none). */
struct Located {
  DmaPage* page = nullptr;
  std::int32_t block = -1;
};

struct DmaPoolCore : DmaPoolHead {
  // ---- read-only after create ----
  std::shared_ptr<PoolImpl> pool;
  Device dev;
  std::string name;
  dmapool::Layout layout;
  std::uint32_t cache_cap = 0, batch = 0;
  std::size_t depot_max = 0;  ///< magazines (kDepotMax, kDepotBytes)
  std::weak_ptr<DmaPoolCore> weak_self;
  dmapool::PageIndex<DmaPage> index;

  // ---- shared, under mu ----
  alignas(kLine) mutable std::mutex mu;
  std::vector<std::unique_ptr<DmaPage>> records;
  std::vector<DmaPage*> spare;             ///< records that hold no page now
  std::vector<DmaPage*> partial, empty;
  std::vector<std::unique_ptr<ThreadCache>> caches;
  std::vector<std::vector<DmaCacheSlot>> depot;  ///< full magazines of `batch` cached blocks
  std::vector<std::vector<DmaCacheSlot>> empty_mags;  ///< capacity kept for reuse
  std::uint64_t pages = 0, seq = 0, grown = 0, returned = 0;
  std::shared_ptr<DmaPoolCore> self;       ///< destroyed while busy: alive for its blocks
  alignas(kLine) std::atomic<std::uint64_t> bad_frees{0}, alloc_failures{0};
  std::atomic<bool> orphaned{false};

  ~DmaPoolCore() {
    // Pages with live blocks (a busy destroy whose blocks were never freed,
    // or a DmaPool dropped with blocks detached) stay with their buffers:
    // the DmaBuffers free them to their areas here, as nothing can use them.
    records.clear();
  }

  ThreadCache* cache() {
    const DmaTlsSlot& t = dma_tls[uid & (kDmaTlsSlots - 1)];
    if (t.uid == uid) return static_cast<ThreadCache*>(t.cache);
    return cache_slow();
  }
  ThreadCache* cache_slow();
  /** The page and block of a CPU address of this pool (lock-free). */
  Located locate(std::uintptr_t a) const noexcept {
    DmaPage* p = index.find(a);
    if (p == nullptr) return {};
    return {p, layout.block_at(a - p->cpu.load(std::memory_order_relaxed))};
  }
  Result<DmaBlock> alloc();
  Status free(void* cpu, std::uint64_t dma);
  /** The free of a block whose page and index are known. handle: the
   *  caller is the block's DmaBlock, its one owner (a handle empties itself
   *  when it frees, so it cannot free twice). */
  Status put(DmaPage* p, std::uint32_t b, std::uintptr_t cpu, std::uint64_t dma, bool handle);
  Status bad_free(std::string msg) {
    bad_frees.fetch_add(1, std::memory_order_relaxed);
    return make_error(Errc::bad_free, "dma_pool " + name + ": " + std::move(msg));
  }

  // REQUIRES: mu held for the rest.
  void list_remove(DmaPage* p);
  void list_put(DmaPage* p);
  DmaCacheSlot take_block(DmaPage* p);
  void give_block(DmaPage* p, std::uint32_t b, std::vector<DmaBuffer>& out);
  void release_page(DmaPage* p, std::vector<DmaBuffer>& out);
  void shrink_locked(std::size_t keep, std::vector<DmaBuffer>& out);
  void flush_locked(ThreadCache& c, std::uint32_t count, std::vector<DmaBuffer>& out);
  /** The cache's oldest `batch` blocks into the depot as one magazine. */
  void to_depot_locked(ThreadCache& c, std::vector<DmaBuffer>& out);
  /** Every magazine's blocks back to their pages (destroy, shrink). */
  void drain_depot_locked(std::vector<DmaBuffer>& out);
  void give_magazine(std::vector<DmaCacheSlot>& m, std::vector<DmaBuffer>& out);
  /** A cached block back to its page's free list (its page found by address). */
  void give_slot(const DmaCacheSlot& e, std::vector<DmaBuffer>& out) {
    const Located l = locate(reinterpret_cast<std::uintptr_t>(e.cpu));
    give_block(l.page, static_cast<std::uint32_t>(l.block), out);
  }
  Result<DmaCacheSlot> refill(ThreadCache* c);
  Status add_page(std::unique_lock<std::mutex>& lk);
  void retire(ThreadCache* c);
  std::uint64_t held_blocks() const {
    std::uint64_t h = 0;
    for (const auto& r : records)
      if (r->buf) h += r->held;
    return h;
  }
};

namespace {

TlsRegistry::~TlsRegistry() {
  tls_exiting = true;
  for (DmaTlsSlot& t : dma_tls) t = DmaTlsSlot{0, nullptr};
  for (Slot& s : slots)
    if (std::shared_ptr<DmaPoolCore> core = s.core.lock()) core->retire(s.cache);
}

}  // namespace

ThreadCache* DmaPoolCore::cache_slow() {
  if (tls_exiting) return nullptr;  // a thread-exit destructor frees a block: no cache
  TlsRegistry& reg = tls_registry;
  ThreadCache* found = nullptr;
  for (const auto& s : reg.slots)
    if (s.uid == uid) found = s.cache;
  if (found == nullptr) {
    std::erase_if(reg.slots, [](const TlsRegistry::Slot& s) { return s.core.expired(); });
    auto c = std::make_unique<ThreadCache>(cache_cap);
    found = c.get();
    {
      std::lock_guard lk(mu);
      if (orphaned.load(std::memory_order_relaxed)) c->cap.store(0, std::memory_order_relaxed);
      caches.push_back(std::move(c));
    }
    reg.slots.push_back({uid, found, weak_self});
  }
  dma_tls[uid & (kDmaTlsSlots - 1)] = DmaTlsSlot{uid, found};
  return found;
}

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

void DmaPoolCore::release_page(DmaPage* p, std::vector<DmaBuffer>& out) {
  list_remove(p);
  index.set(p->cpu.load(std::memory_order_relaxed), layout.page_bytes, nullptr);
  out.push_back(std::move(p->buf));
  p->buf = DmaBuffer();
  p->free.clear();
  p->held = 0;
  spare.push_back(p);
  --pages;
  ++returned;
}

void DmaPoolCore::shrink_locked(std::size_t keep, std::vector<DmaBuffer>& out) {
  while (empty.size() > keep) release_page(empty.back(), out);
}

void DmaPoolCore::flush_locked(ThreadCache& c, std::uint32_t count, std::vector<DmaBuffer>& out) {
  const std::uint32_t n = c.n.load(std::memory_order_relaxed);
  count = std::min(count, n);
  // The oldest entries (bottom of the stack) go back; the hot ones stay.
  for (std::uint32_t i = 0; i < count; ++i) give_slot(c.e[i], out);
  std::memmove(c.e, c.e + count, (n - count) * sizeof(DmaCacheSlot));
  c.n.store(n - count, std::memory_order_relaxed);
  if (empty.size() > kMaxEmpty) shrink_locked(kMinEmpty, out);
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

Status DmaPoolCore::add_page(std::unique_lock<std::mutex>& lk) {
  lk.unlock();
  const int cpu = dev.node == kNoNode ? pool->backing->calling_cpu() : -1;
  Result<DmaBuffer> r = pool->alloc_buffer(dev, layout.page_bytes, cpu);
  if (!r) {
    lk.lock();
    Error e = std::move(r).error();
    e.message = "dma_pool " + name + ": no page for a block: " + e.message;
    return e;
  }
  DmaBuffer buf = std::move(*r);
  const auto c = reinterpret_cast<std::uintptr_t>(buf.cpu());
  const std::uint64_t d = buf.dma_addr();
  std::string why;
  if (layout.page_bytes > core::kPageBytes && !buf.contiguous()) {
    why = "is not contiguous for the device";
  } else if (c % layout.align != 0 || d % layout.align != 0) {
    why = "is not aligned to " + fmt_bytes(layout.align) + " (the pool's align)";
  } else if (!layout.page_fits(d)) {
    why = "crosses the pool's " + fmt_bytes(layout.boundary_asked) + " boundary";
  } else if (!dmapool::PageIndex<DmaPage>::covers(c, layout.page_bytes)) {
    why = "lies above the 48-bit CPU addresses the pool indexes";
  }
  lk.lock();
  if (!why.empty()) {
    lk.unlock();
    buf = DmaBuffer();  // back to its area, outside the lock
    lk.lock();
    return make_error(Errc::unsupported, "dma_pool " + name + ": the page alloc_coherent gave (" +
                                             fmt_bytes(layout.page_bytes) + " at dma " + fmt_hex(d) +
                                             ") " + why);
  }
  DmaPage* p;
  if (!spare.empty()) {
    p = spare.back();
    spare.pop_back();
  } else {
    records.push_back(std::make_unique<DmaPage>(this, layout.blocks()));
    p = records.back().get();
  }
  p->buf = std::move(buf);
  p->cpu.store(c, std::memory_order_relaxed);
  p->dma.store(d, std::memory_order_relaxed);
  p->free.clear();
  for (std::size_t i = layout.blocks(); i-- > 0;) {
    p->state[i].store(kDmaBlockFree, std::memory_order_relaxed);
    p->free.push_back(static_cast<std::uint32_t>(i));
  }
  p->held = 0;
  p->seq = seq++;
  ++pages;
  ++grown;
  list_put(p);
  index.set(c, layout.page_bytes, p);  // published last (release)
  return {};
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

void DmaPoolCore::retire(ThreadCache* c) {
  std::vector<DmaBuffer> out;
  std::lock_guard lk(mu);
  auto it = std::find_if(caches.begin(), caches.end(),
                         [c](const std::unique_ptr<ThreadCache>& x) { return x.get() == c; });
  if (it == caches.end()) return;
  flush_locked(**it, (*it)->n.load(std::memory_order_relaxed), out);
  caches.erase(it);
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

DmaPool::DmaPool(std::shared_ptr<detail::DmaPoolCore> core)
    : core_(std::move(core)), uid_(core_->uid), head_(core_.get()), block_size_(core_->layout.block) {}
DmaPool::DmaPool(DmaPool&& o) noexcept
    : core_(std::move(o.core_)),
      uid_(std::exchange(o.uid_, ~std::uint64_t{0})),
      head_(std::exchange(o.head_, nullptr)),
      block_size_(o.block_size_) {}
DmaPool& DmaPool::operator=(DmaPool&& o) noexcept {
  if (this != &o) {
    (void)destroy();
    core_ = std::move(o.core_);
    uid_ = std::exchange(o.uid_, ~std::uint64_t{0});
    head_ = std::exchange(o.head_, nullptr);
    block_size_ = o.block_size_;
  }
  return *this;
}
DmaPool::~DmaPool() { (void)destroy(); }

Result<DmaPool> DmaPool::create(Pool& pool, const Device& dev, std::string_view name,
                                std::size_t size, std::size_t align, std::size_t boundary) {
  detail::PoolImpl* impl = detail::impl_of(pool);
  if (impl == nullptr) return make_error(Errc::invalid_argument, "dma_pool: the Pool is empty");
  Result<dmapool::Layout> l =
      dmapool::make_layout(size, align, boundary, core::kPageBytes, "dma_pool " + std::string(name));
  if (!l) return std::move(l).error();
  auto core = std::make_shared<detail::DmaPoolCore>();
  core->pool = impl->shared_from_this();
  core->dev = dev;
  core->name = std::string(name);
  core->layout = std::move(*l);
  core->uid = detail::g_next_uid.fetch_add(1, std::memory_order_relaxed);
  core->cache_cap = detail::cache_capacity(core->layout.block);
  core->batch = core->cache_cap / 2;
  core->depot_max = std::clamp<std::size_t>(
      detail::kDepotBytes / (std::size_t{core->batch} * core->layout.block), 2, detail::kDepotMax);
  core->weak_self = core;
  return DmaPool(std::move(core));
}

Result<DmaBlock> DmaPool::alloc_slow() {
  if (!core_) return make_error(Errc::invalid_argument, "dma_pool: alloc on an empty DmaPool");
  return core_->alloc();
}

Status DmaPool::free(void* cpu, std::uint64_t dma) {
  if (!core_) return make_error(Errc::bad_free, "dma_pool: free to an empty DmaPool");
  if (cpu == nullptr) return core_->bad_free("free of a NULL block");
  return core_->free(cpu, dma);
}

void DmaPool::shrink() {
  if (!core_) return;
  std::vector<DmaBuffer> out;
  std::lock_guard lk(core_->mu);
  core_->drain_depot_locked(out);
  core_->shrink_locked(0, out);
}

DmaPoolStats DmaPool::stats() const {
  DmaPoolStats s;
  if (!core_) return s;
  const detail::DmaPoolCore& c = *core_;
  s.name = c.name;
  s.device = c.dev.name;
  s.node = c.dev.node;
  s.block_size = c.layout.block;
  s.align = c.layout.align;
  s.boundary = c.layout.boundary;
  s.page_bytes = c.layout.page_bytes;
  s.blocks_per_page = c.layout.blocks();
  s.bad_frees = c.bad_frees.load(std::memory_order_relaxed);
  s.alloc_failures = c.alloc_failures.load(std::memory_order_relaxed);
  std::lock_guard lk(c.mu);
  s.pages = c.pages;
  s.pages_grown = c.grown;
  s.pages_returned = c.returned;
  s.threads = c.caches.size();
  std::vector<const detail::DmaPage*> held;
  std::uint64_t in_use = 0;
  for (const auto& r : c.records) {
    if (!r->buf) continue;
    held.push_back(r.get());
    in_use += r->held;
    s.blocks_free += r->free.size();
  }
  for (const auto& tc : c.caches) s.blocks_cached += tc->n.load(std::memory_order_relaxed);
  for (const auto& m : c.depot) s.blocks_cached += m.size();
  s.blocks_live = in_use - std::min(in_use, s.blocks_cached);
  std::sort(held.begin(), held.end(),
            [](const detail::DmaPage* a, const detail::DmaPage* b) { return a->seq < b->seq; });
  for (const detail::DmaPage* p : held)
    s.page_list.push_back({p->buf.area_name(), p->buf.node(), p->buf.cpu(), p->buf.dma_addr(),
                           p->free.size()});
  return s;
}

const std::string& DmaPool::name() const noexcept {
  static const std::string none;
  return core_ ? core_->name : none;
}

Status DmaPool::destroy() {
  if (!core_) return {};
  std::shared_ptr<detail::DmaPoolCore> core = std::move(core_);
  uid_ = ~std::uint64_t{0};
  head_ = nullptr;
  std::vector<DmaBuffer> out;
  std::uint64_t live = 0, busy_pages = 0;
  {
    std::lock_guard lk(core->mu);
    // Every cache back to the shared lists (no thread uses the pool now, by
    // contract); the cache objects stay, their threads' registries name them.
    for (auto& tc : core->caches) core->flush_locked(*tc, tc->n.load(std::memory_order_relaxed), out);
    core->drain_depot_locked(out);
    core->shrink_locked(0, out);
    live = core->held_blocks();
    if (live == 0) return {};
    busy_pages = core->pages;
    core->orphaned.store(true, std::memory_order_relaxed);
    // Closed caches: a block freed from now on takes the slow path, which
    // hands it straight back (and its page when it is the page's last).
    for (auto& tc : core->caches) tc->cap.store(0, std::memory_order_relaxed);
    core->self = core;
  }
  return make_error(Errc::busy, "dma_pool " + core->name + " destroyed busy: " +
                                    std::to_string(live) + " block(s) still allocated; their " +
                                    std::to_string(busy_pages) +
                                    " page(s) go back to their areas when the last is freed");
}

}  // namespace numacma
