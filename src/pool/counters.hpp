// src/pool/counters.hpp — A9's counters of a pool: for each requesting node
// (and for devices with no node), how many requests were served locally, by
// another node's area, by the default area, by pages, or failed. Five words
// per node id + 1 (slot 0: no node), in the heap for a private pool or in the
// state file for an attached one (shared/layout.hpp NodeCtr): there in
// stripes, each process counting into its own stripe (no line passed between
// processes that allocate at once), every read summing them. Atomic adds: no
// lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

namespace numacma::detail {

/** A9's outcomes, in the order of the words (and of NodeCtr's fields). */
enum Bucket { kLocal = 0, kOtherNode = 1, kDefault = 2, kPages = 3, kFailed = 4 };
inline constexpr std::size_t kBuckets = 5;

class NodeCounters {
 public:
  /** Counters of its own, for node ids 0 .. max_node. */
  void own(int max_node) {
    own_.assign((static_cast<std::size_t>(max_node < 0 ? 0 : max_node) + 2) * kBuckets, 0);
    words_ = own_.data();
    slots_ = own_.size() / kBuckets;
    stripes_ = 1;
    stride_ = 0;
    mine_ = words_;
  }
  /** Counters in memory the pool does not own: `stripes` stripes of slots * 5
   *  words, `stride` words apart; this process adds into stripe `mine`. */
  void over(std::uint64_t* words, std::size_t slots, std::size_t stripes, std::size_t stride, std::size_t mine) {
    own_.clear();
    words_ = words;
    slots_ = slots;
    stripes_ = stripes == 0 ? 1 : stripes;
    stride_ = stride;
    mine_ = words + (mine % stripes_) * stride;
  }
  /** One outcome for a request from `node` (an unknown id counts as no node). */
  void add(int node, Bucket b) noexcept {
    std::atomic_ref<std::uint64_t>(mine_[slot_of(node) * kBuckets + b]).fetch_add(1, std::memory_order_relaxed);
  }
  /** The sum over the stripes. */
  std::uint64_t get(std::size_t slot, Bucket b) const noexcept {
    std::uint64_t sum = 0;
    for (std::size_t s = 0; s < stripes_; ++s)
      sum += std::atomic_ref<std::uint64_t>(words_[s * stride_ + slot * kBuckets + b]).load(std::memory_order_relaxed);
    return sum;
  }
  std::size_t slots() const noexcept { return slots_; }

 private:
  std::size_t slot_of(int node) const noexcept {
    if (node < -1) return 0;
    const auto i = static_cast<std::size_t>(static_cast<long long>(node) + 1);
    return i < slots_ ? i : 0;
  }
  std::vector<std::uint64_t> own_;
  std::uint64_t* words_ = nullptr;
  std::size_t slots_ = 0;
  std::size_t stripes_ = 1;
  std::size_t stride_ = 0;
  std::uint64_t* mine_ = nullptr;  ///< this process's stripe
};

}  // namespace numacma::detail
