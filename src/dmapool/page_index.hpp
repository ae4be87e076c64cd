// src/dmapool/page_index.hpp — CPU address -> the dma_pool page that holds
// it, read without a lock.
//
//   key = address >> 12 (36 bits of a 48-bit address space)
//   root[key >> 24] -> mid[(key >> 12) & 4095] -> leaf[key & 4095] -> T*
//
// Writers (a page added or removed) hold the pool's lock; readers (every
// free) take none: each level is an array of atomic pointers, a node once
// published is never freed before the index, and an entry is published with
// release and read with acquire. A reader that races with a removal sees
// the page or nothing; the pool never frees a page record while the index
// lives, so a stale pointer still points at a record (the pool re-checks it).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>

namespace numacma::dmapool {

template <class T>
class PageIndex {
 public:
  static constexpr unsigned kGranule = 12;              // 4 KiB
  static constexpr unsigned kBits = 12;                 // per level
  static constexpr std::uint64_t kFan = 1u << kBits;
  static constexpr unsigned kKeyBits = 3 * kBits;       // 36: addresses below 2^48

  PageIndex() = default;
  PageIndex(const PageIndex&) = delete;
  PageIndex& operator=(const PageIndex&) = delete;
  ~PageIndex() {
    for (auto& m : root_) {
      Mid* mid = m.load(std::memory_order_relaxed);
      if (mid == nullptr) continue;
      for (auto& l : mid->e) delete l.load(std::memory_order_relaxed);
      delete mid;
    }
  }

  /** True when the index can hold [addr, addr + bytes). */
  static bool covers(std::uintptr_t addr, std::uint64_t bytes) noexcept {
    const std::uint64_t last = (static_cast<std::uint64_t>(addr) + bytes - 1) >> kGranule;
    return bytes > 0 && (last >> kKeyBits) == 0 && addr + bytes > addr;
  }

  /** Maps every 4 KiB granule of [addr, addr + bytes) to v (nullptr clears).
   *  REQUIRES: the writers' lock; covers(addr, bytes). */
  void set(std::uintptr_t addr, std::uint64_t bytes, T* v) {
    const std::uint64_t first = static_cast<std::uint64_t>(addr) >> kGranule;
    const std::uint64_t last = (static_cast<std::uint64_t>(addr) + bytes - 1) >> kGranule;
    for (std::uint64_t k = first; k <= last; ++k) leaf_for(k)->e[k & (kFan - 1)].store(v, std::memory_order_release);
  }

  /** The record of the granule holding addr, or nullptr. Lock-free. */
  T* find(std::uintptr_t addr) const noexcept {
    const std::uint64_t k = static_cast<std::uint64_t>(addr) >> kGranule;
    if ((k >> kKeyBits) != 0) return nullptr;
    const Mid* mid = root_[k >> (2 * kBits)].load(std::memory_order_acquire);
    if (mid == nullptr) return nullptr;
    const Leaf* leaf = mid->e[(k >> kBits) & (kFan - 1)].load(std::memory_order_acquire);
    if (leaf == nullptr) return nullptr;
    return leaf->e[k & (kFan - 1)].load(std::memory_order_acquire);
  }

 private:
  struct Leaf {
    std::array<std::atomic<T*>, kFan> e{};
  };
  struct Mid {
    std::array<std::atomic<Leaf*>, kFan> e{};
  };

  Leaf* leaf_for(std::uint64_t k) {
    std::atomic<Mid*>& ms = root_[k >> (2 * kBits)];
    Mid* mid = ms.load(std::memory_order_relaxed);
    if (mid == nullptr) {
      mid = new Mid();
      ms.store(mid, std::memory_order_release);
    }
    std::atomic<Leaf*>& ls = mid->e[(k >> kBits) & (kFan - 1)];
    Leaf* leaf = ls.load(std::memory_order_relaxed);
    if (leaf == nullptr) {
      leaf = new Leaf();
      ls.store(leaf, std::memory_order_release);
    }
    return leaf;
  }

  std::array<std::atomic<Mid*>, kFan> root_{};
};

}  // namespace numacma::dmapool
