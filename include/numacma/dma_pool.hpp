// numacma/dma_pool.hpp — the kernel's dma_pool (mm/dmapool.c), NUMA-aware:
// small fixed-size coherent blocks (PRP lists, descriptors, completion
// records) carved from pages that Pool::alloc_coherent gave for the pool's
// device, so from the device's node and area by the same rules (A1-A9).
//
//   DmaPool::create(pool, dev, "prp", 512, 64, 4096)
//     block size  = max(size, 16) rounded up to align
//     page bytes  = max(block size, 4096)   (one alloc_coherent per page)
//     blocks never cross `boundary` (0: the page), align as asked
//   alloc()/zalloc() -> DmaBlock {cpu, dma}; destroyed or free() -> back
//
// Beyond the kernel: each thread keeps a cache of free blocks, so the
// common alloc/free takes no lock and writes no cache line that another
// thread writes; a block may be freed by any thread. Pages that become
// wholly free go back to their area once the pool already keeps two such
// pages (it then keeps one): grow on demand, shrink with hysteresis.
// Misuse is an error, never corruption: a block freed twice or to the wrong
// pool is refused and counted (bad_frees).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "numacma/result.hpp"

namespace numacma {

class Pool;
struct Device;
class DmaPool;

namespace detail {
struct DmaPoolCore;

// The per-thread fast path, inline so that the common alloc/free costs what
// a cache push/pop costs (src/dmapool/dma_pool_core.hpp holds these records; read dma_pool.cpp's
// comment first). Not API.
// A block's state byte: free (in the shared lists), cached (in a thread's
// cache, or held by a DmaBlock), live (held by address: detached, or from
// the C API). Only frees by address change live -> cached, by CAS.
inline constexpr std::uint8_t kDmaBlockFree = 0, kDmaBlockCached = 1, kDmaBlockLive = 2;
/** What the inline paths read of a pool: its uid, never reused. */
struct DmaPoolHead {
  std::uint64_t uid = 0;
};
/** A free block in a thread's cache: where it is, and its state byte
 *  (free | cached | live) in its page's record. */
struct DmaCacheSlot {
  void* cpu;
  std::uint64_t dma;
  std::atomic<std::uint8_t>* state;
};
/** One thread's cache of one pool's free blocks: its owner pushes and pops
 *  without a lock; n is atomic only so that stats() may read it. */
struct alignas(64) DmaThreadCache {
  DmaCacheSlot* e = nullptr;
  std::atomic<std::uint32_t> n{0};
  std::atomic<std::uint32_t> cap{0};  ///< 0: closed (the pool was destroyed)
};
/** A thread's caches, direct-mapped by pool uid; uid 0 = none. */
struct DmaTlsSlot {
  std::uint64_t uid;
  DmaThreadCache* cache;
};
inline constexpr unsigned kDmaTlsSlots = 8;
extern __thread DmaTlsSlot dma_tls[kDmaTlsSlots] __attribute__((tls_model("initial-exec")));
}  // namespace detail

/** One block of a DmaPool. Move-only; freed to its pool when destroyed.
 *  The pool must outlive its blocks' use; a block still live when its
 *  DmaPool is destroyed can still be freed (the pool's pages wait for it). */
class DmaBlock {
 public:
  DmaBlock() = default;
  DmaBlock(DmaBlock&& o) noexcept
      : cpu_(o.cpu_), dma_(o.dma_), state_(o.state_), pool_(o.pool_) {
    o.clear();
  }
  DmaBlock& operator=(DmaBlock&& o) noexcept {
    if (this != &o) {
      if (cpu_ != nullptr) (void)release();
      cpu_ = o.cpu_;
      dma_ = o.dma_;
      state_ = o.state_;
      pool_ = o.pool_;
      o.clear();
    }
    return *this;
  }
  DmaBlock(const DmaBlock&) = delete;
  DmaBlock& operator=(const DmaBlock&) = delete;
  ~DmaBlock() {
    if (cpu_ != nullptr) (void)release();
  }

  void* cpu() const noexcept { return cpu_; }
  std::uint64_t dma_addr() const noexcept { return dma_; }
  explicit operator bool() const noexcept { return cpu_ != nullptr; }

  /** Frees now; afterwards the handle is empty. */
  Status release() {
    if (cpu_ == nullptr) return {};
    const std::uint64_t uid = pool_->uid;
    const detail::DmaTlsSlot& t = detail::dma_tls[uid & (detail::kDmaTlsSlots - 1)];
    if (t.uid == uid) {
      detail::DmaThreadCache* c = t.cache;
      const std::uint32_t n = c->n.load(std::memory_order_relaxed);
      // The handle is the block's one owner and its state byte says
      // "cached" all along (a free by address refuses it): nothing to
      // check or write but the cache.
      if (n < c->cap.load(std::memory_order_relaxed)) {
        c->e[n] = detail::DmaCacheSlot{cpu_, dma_, state_};
        c->n.store(n + 1, std::memory_order_relaxed);
        clear();
        return {};
      }
    }
    return release_slow();
  }
  /** Empties the handle WITHOUT freeing: the caller frees with
   *  DmaPool::free(cpu, dma) (as a C driver would). From now on the block
   *  is held by address: exactly one free by address is taken. */
  void detach() noexcept {
    if (cpu_ != nullptr) state_->store(detail::kDmaBlockLive, std::memory_order_relaxed);
    clear();
  }

 private:
  friend class DmaPool;
  friend struct detail::DmaPoolCore;
  DmaBlock(const detail::DmaCacheSlot& s, detail::DmaPoolHead* pool) noexcept
      : cpu_(s.cpu), dma_(s.dma), state_(s.state), pool_(pool) {}
  Status release_slow();
  /** Empty: cpu_ null (state_ and pool_ are read only while cpu_ is set). */
  void clear() noexcept {
    cpu_ = nullptr;
    dma_ = 0;
  }
  void* cpu_ = nullptr;
  std::uint64_t dma_ = 0;
  std::atomic<std::uint8_t>* state_ = nullptr;  ///< the block's state byte
  detail::DmaPoolHead* pool_ = nullptr;         ///< its pool (alive while the block is)
};

/** One page of a DmaPool: an alloc_coherent buffer of page_bytes. */
struct DmaPoolPage {
  std::string area;        ///< its area's name, "pages" for ordinary pages
  int node = -1;           ///< the node its memory is on
  void* cpu = nullptr;
  std::uint64_t dma = 0;
  std::uint64_t blocks_free = 0;  ///< in the shared lists (not in a cache)
};

/** What a DmaPool holds (the kernel's /sys/.../pools line, and more). */
struct DmaPoolStats {
  std::string name;
  std::string device;
  int node = -1;                     ///< the device's node
  std::size_t block_size = 0;        ///< size rounded up to the alignment
  std::size_t align = 0;
  std::size_t boundary = 0;
  std::size_t page_bytes = 0;        ///< bytes of one alloc_coherent page
  std::size_t blocks_per_page = 0;
  std::uint64_t pages = 0;           ///< pages held now
  std::uint64_t blocks_live = 0;     ///< allocated to callers now
  std::uint64_t blocks_cached = 0;   ///< free, in some thread's cache
  std::uint64_t blocks_free = 0;     ///< free, in the shared lists
  std::uint64_t pages_grown = 0;     ///< alloc_coherent calls that succeeded
  std::uint64_t pages_returned = 0;  ///< pages given back to their areas
  std::uint64_t alloc_failures = 0;  ///< alloc()s that found no memory
  std::uint64_t bad_frees = 0;       ///< double frees, wrong pool, bad address
  std::uint64_t threads = 0;         ///< per-thread caches alive
  /** The pages held now, in the order they were allocated. */
  std::vector<DmaPoolPage> page_list;
};

class DmaPool {
 public:
  /** dma_pool_create(name, dev, size, align, boundary). align 0 means 1;
   *  boundary 0 means the page. Errors (invalid_argument): size 0 or above
   *  INT_MAX, align not a power of two, boundary not a power of two or
   *  smaller than the block. The pool keeps `pool`'s insides alive. */
  static Result<DmaPool> create(Pool& pool, const Device& dev, std::string_view name,
                                std::size_t size, std::size_t align = 0,
                                std::size_t boundary = 0);

  DmaPool() = default;
  DmaPool(DmaPool&&) noexcept;
  DmaPool& operator=(DmaPool&&) noexcept;
  DmaPool(const DmaPool&) = delete;
  DmaPool& operator=(const DmaPool&) = delete;
  /** destroy(), its outcome dropped. */
  ~DmaPool();

  /** dma_pool_alloc: a block, aligned as asked, not crossing the boundary.
   *  no_memory (or the page allocation's own error) when no page can be had. */
  Result<DmaBlock> alloc() {
    const detail::DmaTlsSlot& t = detail::dma_tls[uid_ & (detail::kDmaTlsSlots - 1)];
    if (t.uid == uid_) {
      detail::DmaThreadCache* c = t.cache;
      const std::uint32_t n = c->n.load(std::memory_order_relaxed);
      if (n > 0) {
        const detail::DmaCacheSlot& s = c->e[n - 1];
        c->n.store(n - 1, std::memory_order_relaxed);
        return DmaBlock(s, head_);  // its state stays "cached": a handle holds it
      }
    }
    return alloc_slow();
  }
  /** alloc() without the Result around the block, for the hot loop: the
   *  same block alloc() would give, or an empty DmaBlock (false) when alloc()
   *  would fail, its error then in *why when why is not null. */
  DmaBlock try_alloc(Error* why = nullptr) {
    const detail::DmaTlsSlot& t = detail::dma_tls[uid_ & (detail::kDmaTlsSlots - 1)];
    if (t.uid == uid_) {
      detail::DmaThreadCache* c = t.cache;
      const std::uint32_t n = c->n.load(std::memory_order_relaxed);
      if (n > 0) {
        const detail::DmaCacheSlot& s = c->e[n - 1];
        c->n.store(n - 1, std::memory_order_relaxed);
        return DmaBlock(s, head_);  // its state stays "cached": a handle holds it
      }
    }
    return try_alloc_slow(why);
  }
  /** dma_pool_zalloc: alloc() with the block's bytes zeroed. */
  Result<DmaBlock> zalloc() {
    Result<DmaBlock> b = alloc();
    if (b) std::memset(b->cpu(), 0, block_size_);
    return b;
  }
  /** dma_pool_free(cpu, dma): bad_free, counted, when (cpu, dma) is not a
   *  live block of this pool (double free, another pool's block, a pointer
   *  inside a block, a DMA address that does not match). */
  Status free(void* cpu, std::uint64_t dma);
  /** Returns every wholly free page to its area now (the kernel never does). */
  void shrink();
  DmaPoolStats stats() const;
  const std::string& name() const noexcept;

  /** dma_pool_destroy. Must not run while another thread uses the pool.
   *  With live blocks: busy, naming the count (the kernel's "busy" warning);
   *  the pages those blocks sit on stay reserved until the last of them is
   *  freed through its DmaBlock, then go back to their areas. Every other
   *  page goes back now. The handle is empty afterwards either way. */
  Status destroy();
  explicit operator bool() const noexcept { return core_ != nullptr; }

 private:
  explicit DmaPool(std::shared_ptr<detail::DmaPoolCore> core);
  Result<DmaBlock> alloc_slow();
  DmaBlock try_alloc_slow(Error* why);
  std::shared_ptr<detail::DmaPoolCore> core_;
  std::uint64_t uid_ = ~std::uint64_t{0};  ///< the core's uid; never a slot's
  detail::DmaPoolHead* head_ = nullptr;    ///< the core
  std::size_t block_size_ = 0;
};

}  // namespace numacma
