// src/pool/pool_impl.hpp — the Pool's insides (private to the library).
//
//   PoolImpl
//   ├── topology            (data, parsed once at create)
//   ├── backing             (turns plan entries into memory; A7 pages)
//   ├── areas[]             fixed after create; each AreaSlot = core::Area + its own mutex
//   │     index tables: pernuma_[node], numa_[node], default_, device_[name]
//   │     by_cpu_[]         areas sorted by CPU address, for F1's "whichever contains it"
//   ├── shelves[node + 1]   page blocks (A3/A7) of each node, each with its own mutex
//   ├── counters            per requesting node (A9), atomics: no lock on the hot path
//   ├── cpu_mem_node_[cpu]  the node whose pages a CPU's no-node (-1) request gets
//                           (A3, A7: the kernel's numa_mem_id())
//   └── vfio                (vfio mode) the IOMMU container: every area mapped at
//                           creation; page blocks mapped on alloc, unmapped on free
//
// Locking: alloc/free take exactly one area lock at a time (never two), or the
// pages lock. There is no pool-wide lock on the allocation path. The area
// table itself is immutable after create(), so reading it needs no lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <tsl/robin_map.h>

#include "backing/backing.hpp"
#include "config/params.hpp"
#include "core/area.hpp"
#include "numacma/numacma.hpp"
#include "topology/topology.hpp"
#include "vfio/container.hpp"

namespace numacma::detail {

inline constexpr std::uint64_t kPageSize = 4096;  // P on x86-64 and 4K-page arm64
inline constexpr unsigned kCmaAlignment = 8;      // CONFIG_CMA_ALIGNMENT
inline constexpr int kUnknownArea = -1;           // PoolImpl::free's area_hint
inline constexpr int kPagesBuffer = -2;

/** An area that other processes share (Pool::attach, src/shared): its
 *  allocations are made under the area's process-shared lock, on `mirror`
 *  (the slot's core::Area, kept equal to the shared records), and recorded
 *  for every process to see. */
struct SharedAreaOps {
  virtual ~SharedAreaOps() = default;
  virtual Result<core::Block> alloc(core::Area& mirror, std::uint64_t count, unsigned align_order,
                                    std::uint64_t limit) = 0;
  virtual Status release(core::Area& mirror, std::uint64_t first_page, std::uint64_t count) = 0;
  /** The area's stats, counters of every process together. */
  virtual Result<core::AreaStats> stats(core::Area& mirror) = 0;
  virtual Result<std::string> dump_bitmap(core::Area& mirror) = 0;
};

/** The pool-wide side of an attached pool. */
struct SharedPoolOps {
  virtual ~SharedPoolOps() = default;
  /** Gives back the buffers of processes that died; true when any came back. */
  virtual bool reap_dead() noexcept = 0;
  /** Gives back this process's buffers and its holder slot (the pool goes). */
  virtual void detach() noexcept = 0;
  /** True in a child forked after the attach: the holder slot is the parent's,
   *  so the child neither allocates nor frees through it. */
  virtual bool forked() const noexcept = 0;
};

struct AreaSlot {
  AreaSlot(core::Area a, config::AreaKind k, backing::Reservation r)
      : area(std::move(a)), kind(k), res(std::move(r)) {}
  core::Area area;
  config::AreaKind kind;
  backing::Reservation res;
  mutable std::mutex mu;
  /** Set in an attached pool: alloc/release go through it (mu is unused). */
  std::unique_ptr<SharedAreaOps> shared;
  bool iova() const noexcept { return res.addr_kind == backing::AddrKind::iova; }
};

/** Hash of a page's CPU address for the live table: the low 12 bits are
 *  zero and neighbouring pages are common, so the page number is mixed
 *  (Fibonacci hashing) before robin_map takes its low bits. */
struct PageAddrHash {
  std::size_t operator()(std::uintptr_t cpu) const noexcept {
    const std::uint64_t x = (static_cast<std::uint64_t>(cpu) >> 12) * 0x9e3779b97f4a7c15ULL;
    return static_cast<std::size_t>(x ^ (x >> 32));
  }
};

/** The ordinary-page blocks (A3, A7) of one node, with their own lock: no
 *  pool-wide lock on the page path. A block lives in the shelf of its own node.
 *
 *    slots    every block the shelf holds, live or cached (a vacant slot is
 *             reused; blocks are never moved while they are held)
 *    live     CPU address -> slot of each live block (F2 checks), an
 *             open-addressing table: a free looks up one short array
 *    cached   slots of single pages kept after free for the node's next A3
 *             request (LIFO), so the OS is asked again only when it is empty;
 *             at most kMax
 *    vacant   slots that hold nothing
 */
struct PageShelf {
  static constexpr std::size_t kMax = 4096;  // 16 MiB of 4 KiB pages per node
  mutable std::mutex mu;
  std::vector<backing::PagesBlock> slots;
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

/** A9's outcomes, in the order of NodeCounters' fields (and of the shared
 *  pools' per-node counters, shared/layout.hpp NodeCtr). */
enum Bucket { kLocal = 0, kOtherNode = 1, kDefault = 2, kPages = 3, kFailed = 4 };

struct NodeCounters {
  std::atomic<std::uint64_t> local{0}, other_node{0}, default_area{0}, pages{0}, failed{0};
  std::atomic<std::uint64_t>& at(Bucket b) noexcept {
    return b == kLocal ? local : b == kOtherNode ? other_node : b == kDefault ? default_area : b == kPages ? pages : failed;
  }
};

/** What one successful allocation produced, before it becomes a DmaBuffer. */
struct RawBuffer {
  void* cpu = nullptr;
  std::uint64_t dma = 0;
  int node = kNoNode;
  int area = -1;  ///< -1: pages
  bool iova = false;
  bool contiguous = true;
  Served served = Served::pages;
};

struct PoolImpl : std::enable_shared_from_this<PoolImpl> {
  PoolOptions opts;
  topo::Topology topology;
  std::unique_ptr<backing::Backing> backing;
  std::vector<std::unique_ptr<AreaSlot>> areas;
  std::vector<int> pernuma_, numa_;  // by node id; -1 = none
  int default_ = -1;
  std::unordered_map<std::string, int> device_;
  std::vector<int> by_cpu_;  // area indices sorted by cpu_base
  bool iova_mode = false;
  std::unique_ptr<vfio::Container> vfio;  ///< vfio mode: DMA addresses are its IOVAs
  std::vector<ReservationNote> notes;
  /** Attached pools (Pool::attach): the reservation's name and its shared side. */
  std::string shared_name;
  std::unique_ptr<SharedPoolOps> shared_pool;
  /** Attached pools count A9 machine-wide, in the state file: 5 words (a
   *  Bucket each) per node id + 1 (slot 0: no node); stats() reads them. */
  std::uint64_t* shared_counts = nullptr;
  std::size_t shared_count_slots = 0;

  /** A9: one outcome for a request from `node`. */
  void count(int node, Bucket b) noexcept {
    if (shared_counts != nullptr) {
      const std::size_t i = static_cast<std::size_t>(node + 1) < shared_count_slots ? static_cast<std::size_t>(node + 1) : 0;
      std::atomic_ref<std::uint64_t>(shared_counts[i * 5 + b]).fetch_add(1, std::memory_order_relaxed);
      return;
    }
    counters_for(node).at(b).fetch_add(1, std::memory_order_relaxed);
  }

  std::vector<NodeCounters> counters;  // [node + 1]; slot 0 = kNoNode
  std::vector<PageShelf> shelves;      // [node + 1]; slot 0 = kNoNode
  std::atomic<std::uint64_t> bad_frees{0};

  /** CPU id -> the node with memory nearest to it, as the kernel's
   *  numa_mem_id(): the CPU's own node, or for a memoryless node the nearest
   *  node with memory; -1 for a CPU the topology does not list. */
  std::vector<int> cpu_mem_node_;
  /** The node for a CPU that is unknown (-1, or not in the topology): CPU 0's,
   *  else the first node with memory. */
  int unknown_cpu_node_ = kNoNode;

  ~PoolImpl();

  /** Fills cpu_mem_node_ and unknown_cpu_node_ from the topology (create). */
  void map_cpus();
  /** Sizes the per-node tables (pernuma_, numa_, counters, shelves) from the
   *  topology (create, attach). */
  void size_node_tables();
  /** Adds an area, indexed by its kind, node and name (create, attach). */
  AreaSlot& add_area(std::unique_ptr<AreaSlot> slot);
  /** Sorts by_cpu_ once every area is added. */
  void index_by_cpu();
  /** True when the topology lists the CPU. */
  bool knows_cpu(int cpu) const noexcept {
    return cpu >= 0 && static_cast<std::size_t>(cpu) < cpu_mem_node_.size() &&
           cpu_mem_node_[static_cast<std::size_t>(cpu)] != kNoNode;
  }
  /** The node a no-node device's pages come from when `cpu` asks (A3, A7). */
  int node_of_cpu(int cpu) const noexcept {
    return knows_cpu(cpu) ? cpu_mem_node_[static_cast<std::size_t>(cpu)] : unknown_cpu_node_;
  }

  /** dma_alloc_coherent. cpu: the calling CPU (-1: unknown), which matters
   *  only to a device with no node: its pages come from that CPU's node. */
  Result<RawBuffer> alloc(const Device& dev, std::size_t bytes, int cpu);
  /** alloc() wrapped in a DmaBuffer of this pool (Pool::alloc_coherent, replay). */
  Result<DmaBuffer> alloc_buffer(const Device& dev, std::size_t bytes, int cpu);
  /** area_hint: the owning area, kUnknownArea (an address from the caller:
   *  F1 looks for the area that contains it) or kPagesBuffer (a DmaBuffer's
   *  own record that it came from pages); node_hint: the node of a pages
   *  buffer, looked at first (kNoNode: unknown). */
  Status free(std::size_t bytes, void* cpu, std::uint64_t dma, int area_hint, int node_hint);
  Stats stats() const;

 private:
  NodeCounters& counters_for(int node) noexcept;
  /** An attached pool used in a child forked after the attach. */
  Error forked_error() const;
  /** alloc() once; count_failure: count a failure in the node's counters. */
  Result<RawBuffer> alloc_once(const Device& dev, std::size_t bytes, int cpu, bool count_failure);
  Result<RawBuffer> from_area(int idx, std::uint64_t count, std::uint64_t limit, Served served);
  /** A3/A7: pages on `node` (never kNoNode where a node has memory: a
   *  no-node device's request comes with its CPU's node). */
  Result<RawBuffer> from_pages(const Device& dev, int node, std::uint64_t bytes);
  int area_by_cpu(std::uintptr_t cpu) const noexcept;
  PageShelf& shelf_for(int node) noexcept;
  Status reject_free(std::string msg);
  Status free_pages(std::size_t bytes, std::uintptr_t cpu, std::uint64_t dma, int node_hint);
  /** Gives a page block back to the OS, unmapping it from the container first
   *  (vfio mode). A block the IOMMU still maps is never freed. */
  Status release_block(const backing::PagesBlock& b);
};

/** Unit tests only: every pool created afterwards talks to this fake VFIO
 *  kernel instead of the real one (nullptr: back to the real one). */
void set_vfio_kernel_for_testing(std::shared_ptr<vfio::Kernel> kernel);
std::shared_ptr<vfio::Kernel> vfio_kernel_for_testing();

/** vfio mode (src/pool/vfio.cpp): opens the container, attaches the devices of
 *  the options; the areas are mapped by map_area_vfio as they are reserved. */
Status open_vfio(PoolImpl& impl);
/** Maps a reserved area into the container and makes its segments the one
 *  IOVA-contiguous segment it is in the devices' eyes. */
Status map_area_vfio(PoolImpl& impl, const std::string& name, backing::Reservation& r);
/** Maps a page block for a device (limit: its DMA mask): dma_addr = the IOVA. */
Status map_pages_vfio(PoolImpl& impl, backing::PagesBlock& b, std::uint64_t limit);

PoolImpl* impl_of(const Pool& pool) noexcept;

/** An area's line of Stats from its stats and what the pool knows of it
 *  (Pool::stats, numacma::status). longest_segment from its segments. */
AreaReport area_report(const core::Area& area, const core::AreaStats& a, config::AreaKind kind,
                       std::string backing, bool iova, std::string note);

/** R1-R6 for the options on this topology: the areas to reserve, device
 *  areas placed; what cannot be placed becomes a note. invalid_argument for
 *  bad options (params, order_per_bit, device areas). */
Result<config::ReservationPlan> plan_areas(const PoolOptions& options, const topo::Topology& t,
                                           std::vector<ReservationNote>& notes);

/** "64 KiB", "2 MiB", "4097 B". */
std::string fmt_bytes(std::uint64_t bytes);
/** "0x1f000". */
std::string fmt_hex(std::uint64_t v);

}  // namespace numacma::detail
