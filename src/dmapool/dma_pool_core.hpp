// src/dmapool/dma_pool_core.hpp — the records of numacma::DmaPool (the pool's
// core, its pages, the per-thread caches), shared by its translation units:
//   dma_pool.cpp            alloc and free (read its comment first), the
//                           shared lists and the depot
//   dma_pool_cache.cpp      the per-thread caches: a thread's registry, its
//                           exit, flushing a cache
//   dma_pool_pages.cpp      pages: a new one from the Pool, giving them back
//   dma_pool_lifecycle.cpp  DmaPool: create, move, shrink, stats, destroy
// Internal: not installed, not API.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
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

inline constexpr std::size_t kMaxEmpty = 2;  // more wholly free pages than this: shrink
inline constexpr std::size_t kMinEmpty = 1;  // ... down to this many
inline constexpr std::size_t kLine = 64;

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

}  // namespace detail
}  // namespace numacma
