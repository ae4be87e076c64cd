// src/pool/pool_impl.hpp — the Pool's insides (private to the library).
//
//   PoolImpl
//   ├── topology, cpus       data, parsed once (the node of a CPU: A3/A7's numa_mem_id())
//   ├── backing              memory of a private pool's areas; A3/A7 pages; zeroing
//   ├── areas  (AreaTable)   the areas and their indexes (areas.hpp)
//   ├── pages  (PageShelves) the ordinary-page buffers, per node (shelves.hpp)
//   ├── counters             A9, in the heap or in the state file (counters.hpp)
//   ├── vfio                 vfio mode: the IOMMU container (every area mapped at
//   │                        creation; page blocks mapped on alloc, unmapped on free)
//   └── attachment           attached pools: the keeper's connection and the
//                            mappings of the reservation (src/shared/attach.cpp)
//
// Pool::create and Pool::attach build the same PoolImpl (builder.cpp): they
// differ only in where each area's bitmap, counters and lock word live and in
// the records an attached area keeps (areas.hpp).
//
// Locking: alloc/free take exactly one area lock at a time (never two), or a
// shelf's lock. There is no pool-wide lock on the allocation path. The area
// table is immutable once built, so reading it needs no lock. A private
// pool's area lock waits as long as it takes; an attached pool's waits at most
// lock_timeout_ms and then fails with busy, naming the holder.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backing/backing.hpp"
#include "config/params.hpp"
#include "config/zones.hpp"
#include "core/area.hpp"
#include "core/limits.hpp"
#include "numacma/numacma.hpp"
#include "pool/areas.hpp"
#include "pool/counters.hpp"
#include "pool/shelves.hpp"
#include "topology/topology.hpp"
#include "pool/iova_space.hpp"
#include "vfio/container.hpp"

namespace numacma::detail {

using core::kCmaAlignmentOrder;  // the limits: core/limits.hpp
using core::kMaxRequestBytes;
using core::kPageBytes;
inline constexpr int kUnknownArea = -1;           // PoolImpl::free's area_hint
inline constexpr int kPagesBuffer = -2;

/** The lock owner id of a private pool's areas (any id but 0 would do). */
inline constexpr std::uint32_t kPrivateOwner = 1;

/** What an attached pool keeps beside its areas (src/shared/attach.cpp). */
struct Attachment {
  virtual ~Attachment() = default;
  /** True in a child forked after the attach: the attachment is the
   *  parent's, so the child neither allocates nor frees through it. */
  virtual bool forked() const noexcept = 0;
  /** Asks the keeper to give back the buffers of processes that are gone
   *  and to repair locks whose owner died; true when it answered (so that a
   *  retry may find what the processes gone before held). */
  virtual bool reap() noexcept = 0;
  /** "pid 123 (nvme-drv)": the holder with lock-owner or record id `id`. */
  virtual std::string describe(std::uint32_t id) const = 0;
  /** Gives this attachment's buffers back (the pool goes). */
  virtual void detach() noexcept = 0;
};

/** What one successful allocation produced, before it becomes a DmaBuffer. */
struct RawBuffer {
  void* cpu = nullptr;
  std::uint64_t dma = 0;
  int node = kNoNode;
  int area = -1;  ///< -1: pages
  bool iova = false;
  bool contiguous = true;
  bool fresh = false;  ///< pages the OS mapped just now: zero already
  Served served = Served::pages;
};

struct PoolImpl : std::enable_shared_from_this<PoolImpl> {
  PoolOptions opts;
  topo::Topology topology;
  std::unique_ptr<backing::Backing> backing;
  AreaTable areas;
  PageShelves pages;
  NodeCounters counters;
  std::atomic<std::uint64_t> bad_frees{0};
  bool iova_mode = false;
  std::unique_ptr<vfio::Container> vfio;  ///< vfio mode: DMA addresses are its IOVAs
  /** vfio mode (over `vfio`) or an external IOMMU: where every DMA address
   *  comes from (iova_space.hpp); nullptr otherwise. Set before the first
   *  allocation, never changed after. */
  std::unique_ptr<IovaSpace> iova_space;
  std::vector<ReservationNote> notes;

  /** Attached pools (Pool::attach): the reservation's name, its side, the
   *  id this attachment's records and locks carry, how long a lock waits. */
  std::string shared_name;
  std::unique_ptr<Attachment> attachment;
  std::uint32_t holder = kPrivateOwner;
  std::int64_t lock_timeout_ms = -1;

  /** CPU id -> the node with memory nearest to it, as the kernel's
   *  numa_mem_id(): the CPU's own node, or for a memoryless node the nearest
   *  node with memory; -1 for a CPU the topology does not list. */
  std::vector<int> cpu_mem_node_;
  /** The node for a CPU that is unknown (-1, or not in the topology): CPU 0's,
   *  else the first node with memory. */
  int unknown_cpu_node_ = kNoNode;
  /** The memory layout (config::physical_layout) and the zones of the
   *  options' architecture over it: where dma-direct looks for a page
   *  buffer (A7, A8), set with the topology. */
  std::vector<config::PhysRange> layout;
  config::Zones zones;
  /** Per node id: the node ZONE_DMA and ZONE_DMA32 pages for it come from
   *  (config::zone_node; -1: none has such memory), and where the node's own
   *  pages of a request in ZONE_DMA, ZONE_DMA32, ZONE_NORMAL begin
   *  (config::zone_floor). */
  struct NodeZones {
    std::array<int, 2> node{kNoNode, kNoNode};
    std::array<std::uint64_t, 3> floor{0, 0, 0};
  };
  std::vector<NodeZones> node_zones_;
  /** Where pages for `node` in `zone` come from: the zone's node for the low
   *  zones, the node itself for ZONE_NORMAL (a full or memoryless node is
   *  not left for another there: semantics.md, known differences). */
  int node_for_zone(int node, config::Zone zone) const noexcept {
    if (zone == config::Zone::normal || node < 0 || static_cast<std::size_t>(node) >= node_zones_.size()) return node;
    return node_zones_[static_cast<std::size_t>(node)].node[zone == config::Zone::dma ? 0 : 1];
  }
  /** config::zone_floor of `node` (0 for a node the table lacks). */
  std::uint64_t zone_floor(int node, config::Zone zone) const noexcept {
    if (node < 0 || static_cast<std::size_t>(node) >= node_zones_.size()) return 0;
    return node_zones_[static_cast<std::size_t>(node)].floor[static_cast<std::size_t>(zone)];
  }

  ~PoolImpl();

  // ---- building (builder.cpp): both Pool::create and Pool::attach ----
  /** The topology, the CPUs' nodes, the per-node tables (areas' indexes,
   *  shelves; counters of its own unless over() follows). */
  void set_topology(topo::Topology t);
  /** Adds an area; its index. */
  AreaSlot& add_area(std::unique_ptr<AreaSlot> slot) { return areas.add(std::move(slot)); }
  /** Once every area is in: the CPU index, and the DMA mode of the options. */
  void finish();

  /** Per node id: online (topology.is_online, looked up once). */
  std::vector<char> online_;
  /** backing->takes_zones(), asked once (finish()). */
  bool takes_zones_ = false;
  bool node_online(int node) const noexcept {
    return node >= 0 && static_cast<std::size_t>(node) < online_.size() && online_[static_cast<std::size_t>(node)] != 0;
  }

  /** True when the topology lists the CPU. */
  bool knows_cpu(int cpu) const noexcept {
    return cpu >= 0 && static_cast<std::size_t>(cpu) < cpu_mem_node_.size() &&
           cpu_mem_node_[static_cast<std::size_t>(cpu)] != kNoNode;
  }
  /** The node a no-node device's pages come from when `cpu` asks (A3, A7). */
  int node_of_cpu(int cpu) const noexcept {
    return knows_cpu(cpu) ? cpu_mem_node_[static_cast<std::size_t>(cpu)] : unknown_cpu_node_;
  }

  // ---- allocation (alloc.cpp) ----
  /** dma_alloc_coherent. cpu: the calling CPU (-1: unknown), which matters
   *  only to a device with no node: its pages come from that CPU's node. The
   *  memory is zeroed unless the options say not to. */
  Result<RawBuffer> alloc(const Device& dev, std::size_t bytes, int cpu, bool handle = false);
  /** alloc() wrapped in a DmaBuffer of this pool, which owns it (Pool::alloc_coherent, replay).
   *  self: the pool's own shared_ptr when the caller has one (saves shared_from_this). */
  Result<DmaBuffer> alloc_buffer(const Device& dev, std::size_t bytes, int cpu,
                                 const std::shared_ptr<PoolImpl>* self = nullptr);
  /** A3's common case in one step: a request that the rules send straight to
   *  the pages of a node (one page, no device area, a private pool, not vfio
   *  mode) served from the page that node's shelf kept last, as alloc() with
   *  handle = true would serve it: the same page, the same counters, zeroed.
   *  false, having changed nothing, when that is not the case (alloc() then
   *  decides, errors included). */
  bool kept_page(const Device& dev, std::size_t bytes, int cpu, RawBuffer& out) noexcept;
  /** area_hint: the owning area (a DmaBuffer's own record), kUnknownArea (an
   *  address from the caller: F1 looks for the area that contains it, and a
   *  buffer a DmaBuffer owns is refused) or kPagesBuffer (a DmaBuffer's
   *  record that it came from pages); node_hint: the node of a pages buffer,
   *  looked at first (kNoNode: unknown). */
  Status free(std::size_t bytes, void* cpu, std::uint64_t dma, int area_hint, int node_hint);
  /** A DmaBuffer gives up its buffer without freeing it (DmaBuffer::detach). */
  void forget_handle(int area, void* cpu, int node) noexcept;
  Stats stats() const;
  /** Pool::address_kind(): vfio mode, the sim backing, iova mode, phys mode. */
  AddressKind address_kind() const noexcept;
  /** vfio mode in VFIO's no-IOMMU mode: a container, no IOVA space, physical addresses. */
  bool noiommu() const noexcept;
  /** A device could use this area's DMA addresses (AreaReport::device_usable). */
  bool area_device_usable(const AreaSlot& slot) const noexcept;
  /** An area's lock, waiting at most lock_timeout_ms; false when it could not be had. */
  bool lock_area(const AreaSlot& slot) const noexcept;
  void unlock_area(const AreaSlot& slot) const noexcept;
  /** busy: area's lock held by its owner for longer than the timeout. */
  Error lock_error(const AreaSlot& slot) const;
  /** An attached pool used in a child forked after the attach. */
  Error forked_error() const;

 private:
  /** alloc() once; count_failure: count a failure in the node's counters;
   *  handle: a DmaBuffer will own it (marked under the lock that allocates it). */
  Result<RawBuffer> alloc_once(const Device& dev, std::size_t bytes, int cpu, bool count_failure, bool handle);
  Result<RawBuffer> from_area(int idx, std::uint64_t count, std::uint64_t limit, Served served, bool handle);
  /** A3/A7 as dma-direct does it: pages for `node` (never kNoNode where a
   *  node has memory: a no-node device's request comes with its CPU's node)
   *  in the zone the device's mask asks for, and, while they come back above
   *  the mask, in the lower zones (config/zones.hpp). */
  Result<RawBuffer> page_fallback(const Device& dev, int node, std::uint64_t bytes, bool handle);
  /** Pages on `node` below `below` (the end of a zone), reachable by the
   *  device's mask; a kept single page (A3) only from [from, below). */
  Result<RawBuffer> from_pages(const Device& dev, int node, std::uint64_t bytes, bool handle,
                               std::uint64_t from, std::uint64_t below);
  /** Zeroes a new buffer (the kernel's dma_alloc_coherent always does). */
  void zero(const RawBuffer& r, std::uint64_t bytes) noexcept;
  Status reject_free(std::string msg);
  Status free_area(int idx, std::uint64_t count, std::uintptr_t cpu, std::uint64_t dma, bool by_handle);
  Status free_pages(std::size_t bytes, std::uintptr_t cpu, std::uint64_t dma, int node_hint, bool by_handle);
  /** Gives a page block back to the OS, unmapping it from the container first
   *  (vfio mode). A block the IOMMU still maps is never freed. */
  Status release_block(const backing::PagesBlock& b);
  /** Fills cpu_mem_node_ and unknown_cpu_node_ from the topology. */
  void map_cpus();
};

/** Unit tests only: every pool created afterwards talks to this fake VFIO
 *  kernel instead of the real one (nullptr: back to the real one). */
void set_vfio_kernel_for_testing(std::shared_ptr<vfio::Kernel> kernel);
std::shared_ptr<vfio::Kernel> vfio_kernel_for_testing();

/** vfio mode (src/pool/vfio.cpp): opens the container, attaches the devices of
 *  the options; the areas are mapped by map_area_iova as they are reserved. */
Status open_vfio(PoolImpl& impl);
/** VFIO's no-IOMMU mode: every area has physical addresses, else why not. */
Status check_noiommu_areas(const PoolImpl& impl);
/** Maps a reserved area into the container and makes its segments the one
 *  IOVA-contiguous segment it is in the devices' eyes. */
Status map_area_iova(PoolImpl& impl, const std::string& name, backing::Reservation& r);
/** Maps a page block for a device (limit: its DMA mask): dma_addr = the IOVA. */
Status map_pages_iova(PoolImpl& impl, backing::PagesBlock& b, std::uint64_t limit);

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

/** The placement rules' architecture of the options (Arch::host: this machine's). */
inline config::Arch config_arch(Arch a) noexcept {
  return a == Arch::host ? config::host_arch() : a == Arch::arm64 ? config::Arch::arm64 : config::Arch::x86_64;
}

/** "64 KiB", "2 MiB", "4097 B". */
std::string fmt_bytes(std::uint64_t bytes);
/** "0x1f000". */
std::string fmt_hex(std::uint64_t v);
/** Pages of `bytes` (rounded up), without overflow. */
inline std::uint64_t pages_of(std::uint64_t bytes) noexcept {
  return bytes / kPageBytes + (bytes % kPageBytes != 0 ? 1 : 0);
}

}  // namespace numacma::detail
