// src/pool/areas.hpp — a pool's areas and how each is found (private to the
// library). One shape whether the pool is private or attached to a
// reservation; only where an area's state lives differs:
//
//                     private pool (Pool::create)   attached pool (Pool::attach)
//   core::Area        bitmap and counters in the    bitmap and counters in the
//                     heap (coarse bits, R6)        state file (core::Area::create_over)
//   lock word         AreaSlot::own_lock            the state file's AreaState::lock
//   records           none                          the state file's (core/records.hpp):
//                                                   who holds each buffer, the journal
//   handle marks      this process's own: which live allocations a DmaBuffer owns
//
//   AreaTable   the slots (fixed after the pool is built) and their indexes:
//               pernuma<N>, numa<N>, reserved, device areas by name, and by CPU
//               address (F1's "whichever contains it")
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "backing/backing.hpp"
#include "config/params.hpp"
#include "core/area.hpp"
#include "core/records.hpp"

namespace numacma::detail {

/** One bit per bitmap bit of an area: set while a DmaBuffer of this process
 *  owns the allocation that starts there, so that a free by address (a C
 *  caller's, or Pool::free_coherent's) cannot take it from under its handle.
 *  REQUIRES: the area's lock, for every call (the marks change with the
 *  allocations they mark). */
class HandleMarks {
 public:
  void resize(std::uint64_t bits) { words_.assign(static_cast<std::size_t>((bits + 63) / 64), 0); }
  void set(std::uint64_t bit) noexcept {
    if (bit / 64 < words_.size()) words_[bit / 64] |= std::uint64_t{1} << (bit % 64);
  }
  void clear(std::uint64_t bit) noexcept {
    if (bit / 64 < words_.size()) words_[bit / 64] &= ~(std::uint64_t{1} << (bit % 64));
  }
  bool test(std::uint64_t bit) const noexcept {
    return bit / 64 < words_.size() && ((words_[bit / 64] >> (bit % 64)) & 1) != 0;
  }

 private:
  std::vector<std::uint64_t> words_;
};

struct AreaSlot {
  AreaSlot(core::Area a, config::AreaKind k, backing::Reservation r);
  AreaSlot(const AreaSlot&) = delete;
  AreaSlot& operator=(const AreaSlot&) = delete;

  core::Area area;
  config::AreaKind kind;
  backing::Reservation res;
  std::uint32_t own_lock = 0;
  /** The lock (sync/word_lock.hpp): &own_lock, or the word in the state file. */
  std::uint32_t* lock = &own_lock;
  bool shared = false;  ///< the lock and the memory are mapped by other processes too
  std::optional<core::Records> records;  ///< attached pools: who holds what
  HandleMarks handles;

  bool iova() const noexcept { return res.addr_kind == backing::AddrKind::iova; }
  /** The bit of a page (its allocation's first) in handles and records. */
  std::uint64_t bit_of(std::uint64_t page) const noexcept { return page >> area.config().order_per_bit; }
};

class AreaTable {
 public:
  /** Sizes the per-node indexes for node ids 0 .. max_node. */
  void size_nodes(int max_node);
  /** Adds a slot, indexed by its kind, node and name. */
  AreaSlot& add(std::unique_ptr<AreaSlot> slot);
  /** Sorts the CPU-address index once every slot is added. */
  void index_by_cpu();

  std::size_t size() const noexcept { return slots_.size(); }
  AreaSlot& at(int idx) const noexcept { return *slots_[static_cast<std::size_t>(idx)]; }
  /** -1 when there is none. */
  int pernuma(int node) const noexcept { return node_slot(pernuma_, node); }
  int numa(int node) const noexcept { return node_slot(numa_, node); }
  int default_area() const noexcept { return default_; }
  int device(const std::string& name) const;
  /** The slot whose memory contains a CPU address, -1 when none. */
  int by_cpu(std::uintptr_t cpu) const noexcept;
  const std::unordered_map<std::string, int>& devices() const noexcept { return device_; }
  const std::vector<std::unique_ptr<AreaSlot>>& slots() const noexcept { return slots_; }

 private:
  static int node_slot(const std::vector<int>& v, int n) noexcept {
    return n >= 0 && static_cast<std::size_t>(n) < v.size() ? v[static_cast<std::size_t>(n)] : -1;
  }
  std::vector<std::unique_ptr<AreaSlot>> slots_;
  std::vector<int> pernuma_, numa_;  // by node id; -1 = none
  int default_ = -1;
  std::unordered_map<std::string, int> device_;
  std::vector<int> by_cpu_;  // slot indices sorted by cpu_base
};

}  // namespace numacma::detail
