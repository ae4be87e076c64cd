// src/pool/shelves.hpp — the ordinary-page buffers (A3, A7) of a pool, one
// shelf per node with its own lock: no pool-wide lock on the page path. A
// block lives in the shelf of its own node. These are always the allocating
// process's own pages, in a private pool and in an attached one alike.
//
//   slots    every block the shelf holds, live or cached (a vacant slot is
//            reused; blocks are never moved while they are held)
//   owned    per slot: a DmaBuffer of this process owns it (see HandleMarks)
//   live     CPU address -> slot of each live block (F2 checks), an
//            open-addressing table: a free looks up one short array
//   cached   slots of single pages kept after free for the node's next A3
//            request (LIFO), so the OS is asked again only when it is empty
//   vacant   slots that hold nothing
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include <tsl/robin_map.h>

#include "backing/backing.hpp"

namespace numacma::detail {

/** Hash of a page's CPU address for the live table: the low 12 bits are
 *  zero and neighbouring pages are common, so the page number is mixed
 *  (Fibonacci hashing) before robin_map takes its low bits. */
struct PageAddrHash {
  std::size_t operator()(std::uintptr_t cpu) const noexcept {
    const std::uint64_t x = (static_cast<std::uint64_t>(cpu) >> 12) * 0x9e3779b97f4a7c15ULL;
    return static_cast<std::size_t>(x ^ (x >> 32));
  }
};

/** A shelf's lock: a word (0 free, 1 held, 2 held with waiters) that a
 *  thread takes with one compare-and-swap and gives back with one exchange,
 *  sleeping on it (futex, through std::atomic::wait) only when it is held.
 *  A Lockable: std::lock_guard takes it. */
class ShelfLock {
 public:
  void lock() noexcept {
    std::uint32_t c = 0;
    if (word_.compare_exchange_strong(c, 1, std::memory_order_acquire, std::memory_order_relaxed)) return;
    lock_slow(c);
  }
  void unlock() noexcept {
    if (word_.exchange(0, std::memory_order_release) == 2) word_.notify_one();
  }

 private:
  void lock_slow(std::uint32_t c) noexcept {
    for (int spin = 0; spin < 64 && c == 1; ++spin) {  // a short hold: spin a little first
      c = 0;
      if (word_.compare_exchange_weak(c, 1, std::memory_order_acquire, std::memory_order_relaxed)) return;
    }
    if (c != 2) c = word_.exchange(2, std::memory_order_acquire);
    while (c != 0) {
      word_.wait(2, std::memory_order_relaxed);
      c = word_.exchange(2, std::memory_order_acquire);
    }
  }
  std::atomic<std::uint32_t> word_{0};
};

struct PageShelf {
  static constexpr std::size_t kMax = 4096;  // 16 MiB of 4 KiB pages per node
  mutable ShelfLock mu;
  std::vector<backing::PagesBlock> slots;
  std::vector<char> owned;
  tsl::robin_map<std::uintptr_t, std::uint32_t, PageAddrHash> live;
  std::vector<std::uint32_t> cached;
  std::vector<std::uint32_t> vacant;
  /** vfio mode: blocks freed by their owner whose unmap failed; never given
   *  back to the OS while the IOMMU may map them (freed after the container). */
  std::vector<backing::PagesBlock> stuck;

  /** Puts a block in a vacant (or new) slot. REQUIRES: mu held. */
  std::uint32_t store(backing::PagesBlock&& pb);
  /** Moves the block out of a slot, which becomes vacant. REQUIRES: mu held. */
  backing::PagesBlock take(std::uint32_t slot);
};

class PageShelves {
 public:
  /** One shelf per node id 0 .. max_node, and one for no node (slot 0). */
  void size_nodes(int max_node) { shelves_ = std::vector<PageShelf>(static_cast<std::size_t>(max_node < 0 ? 0 : max_node) + 2); }
  PageShelf& of(int node) noexcept {
    const auto i = static_cast<std::size_t>(static_cast<long long>(node) + 1);
    return i < shelves_.size() ? shelves_[i] : shelves_[0];
  }
  std::vector<PageShelf>& all() noexcept { return shelves_; }
  const std::vector<PageShelf>& all() const noexcept { return shelves_; }

 private:
  std::vector<PageShelf> shelves_;
};

}  // namespace numacma::detail
