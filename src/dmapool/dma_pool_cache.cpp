// src/dmapool/dma_pool_cache.cpp — DmaPool's per-thread caches: the thread's
// slots (dma_tls) and registry of its caches, a cache made on a thread's
// first use of a pool, emptied into its pool when the thread exits
// (dma_pool.cpp's comment tells the whole design).
//
// A cache belongs to one thread: its owner reads and writes it without a
// lock. Only destroy (no concurrent use, by contract) and a thread's exit
// (the pool lock held) empty a cache of another thread.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "dmapool/dma_pool_core.hpp"

namespace numacma {
namespace detail {

namespace {

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

void DmaPoolCore::retire(ThreadCache* c) {
  std::vector<DmaBuffer> out;
  std::lock_guard lk(mu);
  auto it = std::find_if(caches.begin(), caches.end(),
                         [c](const std::unique_ptr<ThreadCache>& x) { return x.get() == c; });
  if (it == caches.end()) return;
  flush_locked(**it, (*it)->n.load(std::memory_order_relaxed), out);
  caches.erase(it);
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

}  // namespace detail
}  // namespace numacma
