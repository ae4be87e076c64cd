// numacma/numacma.hpp — per-NUMA contiguous DMA memory for user-space drivers.
//
//   Pool::create("cma=64M cma_pernuma=16M")
//     areas:  reserved (node 0) | pernuma0 | pernuma1 | ...  | device areas
//   pool.alloc_coherent(dev on node N, size)
//     device area (exclusive) | size <= P -> pages on N
//     -> pernuma<N> -> numa<N> -> [policy=nearest: other nodes' areas by distance]
//     -> reserved -> pages on N        (docs/semantics.md A1-A9)
//   buffer destroyed / pool.free_coherent -> back to the area that owns it (F1)
//
// Errors are values (Result<T>, numacma/result.hpp); nothing here throws on
// the allocation path. Thread-safe: one lock per area, no global lock on
// alloc/free.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "numacma/result.hpp"

namespace numacma {

inline constexpr int kNoNode = -1;

enum class Policy { kernel, nearest };
/** Whose placement rules the plan and the sim backing follow (docs/semantics.md R5):
 *  where the default area goes, and the sim's physical layout. host: the
 *  architecture numacma was built for. */
enum class Arch { host, x86_64, arm64 };
/** Whose per-NUMA CMA rules the plan follows (docs/semantics.md, "Kernel
 *  profiles"): Linux 6.12 (the default, what the kernel oracle checks:
 *  "pernuma<N>" and "numa<N>", two areas a node may both have) or mainline
 *  7.2 (one "numa<N>" per node, numa_cma= winning over cma_pernuma=). */
enum class Kernel { v6_12, v7_2 };
/** Which kernel interface a vfio-mode pool maps through (docs/vfio.md):
 *  iommufd (/dev/iommu and the devices' cdevs, /dev/vfio/devices/vfioN;
 *  Linux 6.2/6.6 and later) or the type1 container (/dev/vfio/vfio and the
 *  groups). automatic: iommufd when /dev/iommu opens and the first device
 *  has a cdev, else type1.
 *  noiommu: VFIO's no-IOMMU mode (vfio's enable_unsafe_noiommu_mode, groups
 *  /dev/vfio/noiommu-N), for devices no IOMMU translates for. UNSAFE: the
 *  device can read and write all of memory. Never chosen automatically. The
 *  pool is in phys mode (DMA handles are physical addresses: hugetlb areas
 *  read as root; dma_mode iova is refused), maps nothing, and says "noiommu"
 *  in Pool::dma_mode() and VfioReport (unsafe = true). Needs CAP_SYS_RAWIO. */
enum class Iommu { automatic, iommufd, type1, noiommu };
/** phys: buffers carry physical addresses (hugetlb, sim); iova: multi-page
 *  buffers may carry IOVAs (anon areas, page fallback); auto: iova when any
 *  area is IOVA-only, else phys. A pool given VFIO devices (PoolOptions::vfio)
 *  is in "vfio" mode whatever this says: every DMA address is an IOVA that
 *  numacma mapped into the devices' IOMMU container (docs/vfio.md). */
enum class DmaMode { automatic, phys, iova };

/** What a pool's DMA addresses are, and so whether a device can use them
 *  (docs/backings.md, "Can a device use these addresses?"):
 *   - physical:     real physical addresses (hugetlb areas whose pagemap this
 *                   process can read, in phys mode): what a device uses with
 *                   the IOMMU off or in passthrough. Device-usable.
 *   - iova_vfio:    IOVAs that numacma mapped into the pool's VFIO container
 *                   (vfio mode): what the container's devices use. Device-usable.
 *   - virtual_only: IOVA = the virtual address (anon areas, or hugetlb with
 *                   pagemap hidden; iova mode without VFIO): valid only where
 *                   the caller itself maps them so into an IOMMU. Not device-usable.
 *   - simulated:    the sim backing's made-up addresses. Never device-usable.
 *   - iova_external: IOVAs that numacma chose and mapped through an IOMMU
 *                   another framework owns (Pool::use_external_iommu: DPDK's
 *                   VFIO container, numacma/dpdk.h). Device-usable. */
enum class AddressKind { physical, iova_vfio, virtual_only, simulated, iova_external };
/** "physical", "iova_vfio", "virtual_only", "simulated", "iova_external". */
const char* address_kind_name(AddressKind k) noexcept;
/** physical, iova_vfio and iova_external: a device could DMA to such addresses. */
inline constexpr bool device_usable(AddressKind k) noexcept {
  return k == AddressKind::physical || k == AddressKind::iova_vfio ||
         k == AddressKind::iova_external;
}

/** An IOMMU that another framework owns: its container, its devices (DPDK's
 *  VFIO container with the ports DPDK probed). The pool chooses every IOVA
 *  itself, lowest first within `usable` and below each device's mask, as in
 *  vfio mode, and asks map()/unmap() to make the framework's devices reach
 *  it (Pool::use_external_iommu). map and unmap are called with the pool's
 *  own locks held: they must not call back into the pool. */
class ExternalIommu {
 public:
  virtual ~ExternalIommu() = default;
  /** Makes [iova, iova + bytes) reach [va, va + bytes) for the devices. */
  virtual Status map(std::uintptr_t va, std::uint64_t iova, std::uint64_t bytes) = 0;
  /** Undoes exactly one map(). */
  virtual Status unmap(std::uintptr_t va, std::uint64_t iova, std::uint64_t bytes) = 0;
};

struct ExternalIommuSpec {
  std::shared_ptr<ExternalIommu> iommu;
  /** Inclusive [first, last] ranges the pool may hand out as IOVAs (the
   *  framework's own IOVAs and the IOMMU's reserved regions left out);
   *  below 1 MiB is never used. */
  std::vector<std::pair<std::uint64_t, std::uint64_t>> usable;
  /** Inclusive ranges never to hand out, whatever `usable` says. */
  std::vector<std::pair<std::uint64_t, std::uint64_t>> reserved;
  /** Who owns the IOMMU ("dpdk"): in notes, reports and messages. */
  std::string owner;
};

/** A PCI device that the pool drives through VFIO, and the coherent DMA mask
 *  its driver declares (as dma_set_mask_and_coherent does in the kernel). */
struct VfioDeviceSpec {
  std::string bdf;                                ///< "0000:05:00.0" (or "05:00.0"), bound to vfio-pci
  std::uint64_t dma_mask = ~std::uint64_t{0};     ///< e.g. (1 << 48) - 1; never 0
};

struct DeviceAreaSpec {
  std::string device;     ///< the device's name; becomes the area's name
  int node = kNoNode;     ///< kNoNode: the default area's node
  std::uint64_t bytes = 0;
};

struct PoolOptions {
  std::string params;               ///< "cma=64M cma_pernuma=16M numa_cma=1:8M"
  std::string backing = "auto";     ///< auto | hugetlb | anon | sim
  Policy policy = Policy::kernel;
  DmaMode dma_mode = DmaMode::automatic;
  Arch arch = Arch::host;
  Kernel kernel = Kernel::v6_12;
  /** Kernel 7.2's CONFIG_CMA_SIZE_PERNUMA: with neither cma_pernuma= nor
   *  numa_cma= given and more than one node online, every online node gets a
   *  "numa<N>" area of the default area's size. invalid_argument with 6.12. */
  bool cma_size_pernuma = false;
  /** Where the topology is read. "/sys" is this machine; any other tree is a
   *  fixture (tests/data/...): backing "auto" then means "sim", and a real
   *  backing (hugetlb, anon) is invalid_argument (backing::backing_for_root). */
  std::string sysfs_root = "/sys";
  unsigned order_per_bit = 0;       ///< R6
  /** hugetlb and auto backings: compact each node (sysfs nodeN/compact) before
   *  taking its hugepages; a node that cannot be compacted is a note. */
  bool compact = false;
  std::vector<DeviceAreaSpec> device_areas;  ///< dev->cma_area, exclusive (A2)
  unsigned sim_fail_nth_reservation = 0;     ///< sim backing only: error-path tests
  /** VFIO devices sharing one type1 container: non-empty puts the pool in
   *  vfio mode. Every area is mapped into the container once, at creation,
   *  at an IOVA below every listed device's mask; page-fallback buffers are
   *  mapped when allocated and unmapped when freed. */
  std::vector<VfioDeviceSpec> vfio;
  std::string vfio_dev_root = "/dev/vfio";   ///< where vfio, the groups and devices/ are; iommu is its sibling
  Iommu iommu = Iommu::automatic;            ///< vfio mode: iommufd or the type1 container
  /** Buffers are zeroed, as the kernel's dma_alloc_coherent zeroes them.
   *  false: not zeroed (for a caller that overwrites every byte anyway); an
   *  attached pool zeroes whatever this says, so that no process ever reads
   *  what another wrote. */
  bool zero = true;
  /** Creation fails unless a device could use the pool's DMA addresses
   *  (device_usable(Pool::address_kind())): vfio mode, or physical addresses.
   *  A sim pool is invalid_argument; one whose areas would carry virtual
   *  addresses (anon, hugetlb with pagemap hidden) is unsupported, the
   *  message saying which areas and what to do. */
  bool require_device_usable = false;
};

/** How Pool::attach talks to a reservation. */
struct AttachOptions {
  /** How long an area's lock (and an answer of the pool's keeper) is waited
   *  for before the call fails with busy, naming who holds it; -1: the
   *  default, $NUMACMA_TIMEOUT_MS or 2000 ms. */
  int timeout_ms = -1;
};

class Pool;

/** A DMA master: name, NUMA node, coherent DMA mask, optional own area. */
struct Device {
  std::string name;
  int node = kNoNode;
  std::uint64_t coherent_dma_mask = ~std::uint64_t{0};
  std::string area;   ///< name of its own area ("" = none); set by the pool

  /** Reads <sysfs_root>/bus/pci/devices/<bdf>/numa_node via the pool's topology.
   *  bdf is "DDDD:BB:DD.F" or lspci's short "BB:DD.F" (domain 0000). The
   *  name is the long BDF; a device area declared under that name is attached. */
  static Result<Device> from_pci(std::string_view bdf, const Pool& pool);
  /** A VFIO device of the pool (PoolOptions::vfio or Pool::vfio_attach):
   *  node from its BDF's numa_node, mask as its driver declared it. */
  static Result<Device> from_vfio(std::string_view bdf, const Pool& pool);
  /** A device by hand (node may be kNoNode). */
  static Device on_node(int node, std::string name = "dev",
                        std::uint64_t coherent_dma_mask = ~std::uint64_t{0});
};

namespace detail {
struct PoolImpl;
PoolImpl* impl_of(const Pool& pool) noexcept;
}  // namespace detail

/** Where a buffer came from, relative to the requesting device (A9). */
enum class Served {
  local,         ///< the device's own area, or pernuma<N> / numa<N> of its node
  other_node,    ///< another node's per-node area (policy=nearest)
  default_area,  ///< the default area `reserved`
  pages,         ///< ordinary pages (A3 single page, or A7 fallback)
};
const char* served_name(Served s) noexcept;

/** Move-only RAII handle of one coherent buffer; freed to its owning area
 *  on destruction (or by Pool::free_coherent / release()). */
class DmaBuffer {
 public:
  DmaBuffer() = default;
  DmaBuffer(DmaBuffer&& o) noexcept
      : pool_(std::move(o.pool_)),
        cpu_(std::exchange(o.cpu_, nullptr)),
        dma_(o.dma_),
        size_(o.size_),
        node_(o.node_),
        area_(o.area_),
        iova_(o.iova_),
        contiguous_(o.contiguous_),
        served_(o.served_) {}
  DmaBuffer& operator=(DmaBuffer&& o) noexcept {
    if (this != &o) {
      if (cpu_ != nullptr) (void)release();
      pool_ = std::move(o.pool_);
      cpu_ = std::exchange(o.cpu_, nullptr);
      dma_ = o.dma_;
      size_ = o.size_;
      node_ = o.node_;
      area_ = o.area_;
      iova_ = o.iova_;
      contiguous_ = o.contiguous_;
      served_ = o.served_;
    }
    return *this;
  }
  DmaBuffer(const DmaBuffer&) = delete;
  DmaBuffer& operator=(const DmaBuffer&) = delete;
  ~DmaBuffer() {
    if (cpu_ != nullptr) (void)release();
  }

  void* cpu() const noexcept { return cpu_; }
  std::uint64_t dma_addr() const noexcept { return dma_; }
  std::size_t size() const noexcept { return size_; }
  int node() const noexcept { return node_; }
  /** "reserved", "pernuma<N>", "numa<N>", a device's name, or "pages". */
  const std::string& area_name() const noexcept;
  /** True when dma_addr() is an IOVA, not a physical address. */
  bool iova() const noexcept { return iova_; }
  /** True when [dma_addr, dma_addr + size) is contiguous for the device:
   *  physically (phys mode), or in the IOMMU's IOVA space (vfio mode). */
  bool contiguous() const noexcept { return contiguous_; }
  explicit operator bool() const noexcept { return cpu_ != nullptr; }
  Served served() const noexcept { return served_; }
  /** True when the buffer did not come from where the rules look first:
   *  anything but `local`, except a single page from pages (A3's normal path). */
  bool fallback() const noexcept {
    return !(served_ == Served::local || (served_ == Served::pages && size_ <= 4096));
  }
  /** Pages (of 4 KiB) the buffer occupies. */
  std::size_t pages() const noexcept { return (size_ + 4095) / 4096; }
  /** True when a device could DMA to [dma_addr, dma_addr + size): an IOVA
   *  of the pool's VFIO container, or a contiguous run of real physical
   *  addresses. False for a sim pool's, a virtual address (IOVA = VA), a
   *  buffer that is not contiguous, and an empty handle. */
  bool device_usable() const noexcept;

  /** Frees now; afterwards the handle is empty. */
  Status release();
  /** Empties the handle WITHOUT freeing: the caller now owns the buffer and
   *  frees it with Pool::free_coherent (as a C driver would). */
  void detach() noexcept;

 private:
  friend class Pool;
  friend struct detail::PoolImpl;
  std::shared_ptr<detail::PoolImpl> pool_;
  void* cpu_ = nullptr;
  std::uint64_t dma_ = 0;
  std::size_t size_ = 0;
  int node_ = kNoNode;
  int area_ = -1;   ///< index of the owning area, -1 = pages
  bool iova_ = false;
  bool contiguous_ = true;
  Served served_ = Served::pages;
};

struct AreaReport {
  std::string name;
  std::string kind;       ///< default | pernuma | numa | device
  int node = kNoNode;
  std::string backing;    ///< hugetlb-2M | anon | sim ...
  bool iova = false;
  std::uint64_t base_dma = 0;
  std::uint64_t pages = 0;
  unsigned order_per_bit = 0;
  std::uint64_t used = 0;
  std::uint64_t maxchunk = 0;
  std::uint64_t alloc_pages_success = 0;
  std::uint64_t alloc_pages_fail = 0;
  std::uint64_t release_pages_success = 0;
  std::uint64_t segments = 0;
  std::uint64_t longest_segment = 0;  ///< pages of the longest physically contiguous segment
  std::string note;
  /** A device could use the area's DMA addresses: mapped in the pool's VFIO
   *  container or an external IOMMU, or real physical addresses (not sim,
   *  not IOVA = VA). */
  bool device_usable = false;
  /** The counters Linux 6.15 added to /sys/kernel/mm/cma/<name>/ (7365ff2c8eef;
   *  6.12 has neither): the area's size and what is free of it, in pages. */
  std::uint64_t total_pages() const noexcept { return pages; }
  std::uint64_t available_pages() const noexcept { return pages - used; }
};

/** A9: per requesting node (kNoNode counted too). */
struct NodeReport {
  int node = kNoNode;
  std::uint64_t local = 0;          ///< served by pernuma<N>/numa<N> or a device area
  std::uint64_t other_node = 0;     ///< served by another node's area (policy=nearest)
  std::uint64_t default_area = 0;   ///< served by reserved
  std::uint64_t pages = 0;          ///< served by ordinary pages (A3, A7)
  std::uint64_t failed = 0;
};

struct Stats {
  std::vector<AreaReport> areas;
  std::vector<NodeReport> nodes;
  std::uint64_t pages_live = 0;        ///< page-fallback buffers alive
  std::uint64_t bad_frees = 0;         ///< F2 detections
  AddressKind address_kind = AddressKind::simulated;  ///< as Pool::address_kind()
  bool device_usable = false;          ///< device_usable(address_kind)
};

/** One IOVA mapping of the pool's VFIO container. */
struct VfioMapping {
  std::string what;          ///< the area's name, or "pages" for a page-fallback buffer
  std::uint64_t iova = 0;
  std::uint64_t bytes = 0;
  std::uint64_t map_ns = 0;  ///< time VFIO_IOMMU_MAP_DMA / IOMMU_IOAS_MAP took (pinning included)
};

struct VfioDeviceReport {
  std::string bdf;
  int iommu_group = -1;
  int node = kNoNode;
  std::uint64_t dma_mask = 0;
};

/** The VFIO container of a pool in vfio mode. */
struct VfioReport {
  bool enabled = false;      ///< false: the pool has no VFIO devices
  std::string iommu;         ///< "iommufd", "type1" or "noiommu": the interface the pool maps through
  /** VFIO's no-IOMMU mode (Iommu::noiommu): no IOMMU isolates the devices,
   *  which can read and write all of memory; the DMA addresses are physical. */
  bool unsafe = false;
  /** Usable IOVA ranges [first, last] (VFIO_IOMMU_GET_INFO's IOVA_RANGE
   *  capability, less the groups' reserved regions such as the MSI window). */
  std::vector<std::pair<std::uint64_t, std::uint64_t>> iova_ranges;
  std::uint64_t iova_pgsizes = 0;  ///< the IOMMU's page sizes (bitmap)
  /** Mappings the container still accepts (DMA_AVAIL capability), read now;
   *  -1 when the kernel does not report it. */
  std::int64_t dma_avail = -1;
  std::vector<VfioDeviceReport> devices;
  std::vector<VfioMapping> mappings;   ///< areas first, then live page buffers
};

/** A VFIO device of a pool: its register BARs and PCI config space, through
 *  the device fd that the pool's container holds. A cheap handle; valid as
 *  long as the pool (it keeps the pool's insides alive). */
class VfioDevice {
 public:
  const std::string& bdf() const noexcept { return bdf_; }
  /** The allocation Device (node, declared DMA mask). */
  Result<Device> device() const;
  /** Size of a BAR region (0..5); not_found when the BAR is absent. */
  Result<std::uint64_t> bar_size(unsigned bar) const;
  /** 32/64-bit register access to a BAR (mmap when the region allows it,
   *  else pread/pwrite on the device fd). Offsets must be aligned. Ordered
   *  as the kernel's writel/readl: a write comes after every earlier store
   *  to DMA memory (a doorbell after the queue entry), and a read completes
   *  before later loads from DMA memory. */
  Result<std::uint32_t> read32(unsigned bar, std::uint64_t offset) const;
  Status write32(unsigned bar, std::uint64_t offset, std::uint32_t value) const;
  Result<std::uint64_t> read64(unsigned bar, std::uint64_t offset) const;
  Status write64(unsigned bar, std::uint64_t offset, std::uint64_t value) const;
  /** PCI configuration space. */
  Status config_read(std::uint32_t offset, void* out, std::size_t len) const;
  Status config_write(std::uint32_t offset, const void* in, std::size_t len) const;
  /** Sets memory-space and bus-master in the PCI command register. */
  Status enable_bus_master() const;
  /** Clears bus-master (the device can no longer DMA; memory space stays on). */
  Status disable_bus_master() const;

 private:
  friend class Pool;
  std::shared_ptr<detail::PoolImpl> pool_;
  std::string bdf_;
  int index_ = -1;
};

/** A line of the reservation report (R3, R4: what could not be placed). */
struct ReservationNote {
  std::string area;
  int node = kNoNode;
  std::string message;
};

class Pool {
 public:
  static Result<Pool> create(const PoolOptions& options);
  /** Attaches to the areas reserved under NAME (numacma reserve, numacma::reserve;
   *  numacma/shared.hpp): the pool's keeper hands over its memory, and this
   *  pool allocates from it with the same rules, on the same bitmaps,
   *  concurrently with every other attached process. Buffers still held when
   *  the Pool goes (or the process dies) are given back; the reservation
   *  stays. not_found when there is no such reservation (or its keeper is not
   *  running), permission when its keeper does not admit this user, busy when
   *  the keeper does not answer in time, corrupt when what it hands over
   *  does not validate. */
  static Result<Pool> attach(std::string_view name, const AttachOptions& options = {});

  Pool(Pool&&) noexcept;
  Pool& operator=(Pool&&) noexcept;
  ~Pool();

  /** dma_alloc_coherent(dev, bytes). */
  Result<DmaBuffer> alloc_coherent(const Device& dev, std::size_t bytes);
  /** dma_free_coherent: size and addresses must match a live buffer (F2). */
  Status free_coherent(const Device& dev, std::size_t bytes, void* cpu, std::uint64_t dma_addr);
  Status free_coherent(DmaBuffer&& buf);

  Stats stats() const;
  /** The bitmap of one area (Bitmap::dump format); not_found if no such area. */
  Result<std::string> dump_bitmap(std::string_view area) const;
  const std::vector<ReservationNote>& reservation_notes() const noexcept;
  /** "phys", "iova", "vfio", "external" (Pool::use_external_iommu) or
   *  "noiommu" (vfio devices in VFIO's no-IOMMU mode, physical addresses:
   *  unsafe): the DMA mode in force. */
  std::string dma_mode() const;
  /** What the pool's DMA addresses are: iova_vfio in vfio mode, simulated
   *  with the sim backing, virtual_only in iova mode without VFIO, else
   *  physical. A buffer's own answer is DmaBuffer::device_usable() (in iova
   *  mode a buffer from a hugetlb area can still carry physical addresses). */
  AddressKind address_kind() const noexcept;
  /** device_usable(address_kind()). */
  bool device_usable() const noexcept;
  /** The sysfs tree the pool's topology came from: PoolOptions::sysfs_root,
   *  or for an attached pool the one its reservation was made with. */
  const std::string& sysfs_root() const noexcept;

  /** Adds a VFIO device to the pool's container after creation (its group
   *  joins the container, so it reaches every area already mapped; areas
   *  above its mask are skipped for it by A8). invalid_argument when the
   *  pool is not in vfio mode. */
  Status vfio_attach(const VfioDeviceSpec& spec);
  /** Puts the pool's DMA addresses in an IOMMU another framework owns:
   *  every area is mapped once at an IOVA the pool chooses in spec.usable,
   *  page-fallback buffers are mapped as they are allocated and unmapped as
   *  they are freed, and address_kind() becomes iova_external. Call it
   *  before the first allocation, from one thread, once. Errors:
   *  invalid_argument (no iommu, no usable range, a forked child's
   *  attachment), unsupported (a pool in vfio mode, the sim backing), busy
   *  (buffers of this process are live, an area's lock held past the
   *  timeout, or the pool already uses one), and the first map() error
   *  (every area mapped before it is unmapped again). An attached pool moves
   *  in this process only: the shared state stays one (other processes'
   *  buffers stay live, at their own addresses), each area's segment
   *  boundaries stay the reservation's, and numacma::status sees what this
   *  process allocates. */
  Status use_external_iommu(ExternalIommuSpec spec);
  /** The handle of an attached VFIO device; not_found otherwise. */
  Result<VfioDevice> vfio_device(std::string_view bdf) const;
  /** The container: usable IOVA ranges, DMA_AVAIL now, devices, mappings. */
  VfioReport vfio_report() const;
  Policy policy() const noexcept;
  /** Device-area names declared in the options, with their nodes. */
  std::vector<DeviceAreaSpec> device_areas() const;

 private:
  friend struct Device;
  friend detail::PoolImpl* detail::impl_of(const Pool& pool) noexcept;
  explicit Pool(std::shared_ptr<detail::PoolImpl> impl);
  std::shared_ptr<detail::PoolImpl> impl_;
};

/** How vfio_bind treats a device the machine uses (docs/vfio.md). */
struct VfioBindOptions {
  std::string sysfs_root = "/sys";
  std::string proc_root = "/proc";  ///< mountinfo, swaps, routes
  /** Bind although the device is in use: its mounted file systems, swap,
   *  dm/md/LVM volumes and network interfaces lose it now. Never when the
   *  root file system is on it. */
  bool force = false;
};

/** Binds a PCI device to vfio-pci (driver_override + drivers_probe), first
 *  unbinding its driver, whose name is remembered under the run directory
 *  ($NUMACMA_RUN_DIR, default /run/numacma) so that vfio_unbind restores it.
 *  Already bound to vfio-pci: nothing to do. A device in use is refused
 *  (Errc::busy, the message naming each use: a disk of it mounted, used as
 *  swap or held by dm/md/LVM; an interface of it up or with addresses or
 *  routes) before anything is written, unless options.force; the device of
 *  the root file system always. bdf: "DDDD:BB:DD.F" or "BB:DD.F". */
Status vfio_bind(std::string_view bdf, const std::string& sysfs_root = "/sys");
Status vfio_bind(std::string_view bdf, const VfioBindOptions& options);
/** Unbinds a device from vfio-pci, clears driver_override and hands it back
 *  to the driver it had before vfio_bind (or to whatever driver the kernel
 *  picks when none was remembered). */
Status vfio_unbind(std::string_view bdf, const std::string& sysfs_root = "/sys");

}  // namespace numacma

#include "numacma/dma_pool.hpp"  // DmaPool: small blocks from coherent pages
