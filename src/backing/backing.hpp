// src/backing/backing.hpp — turning a planned area into memory.
//
//   plan entry (node N, bytes) --reserve()--> Reservation
//       cpu_base ........................................ cpu_base + bytes
//       [ segment 0: phys/IOVA contiguous ][ segment 1 ][ ... ]
//   A7 fallback (node N, bytes) --alloc_pages()--> PagesBlock
//
// Kinds:
//  - hugetlb: 2 MiB (or 1 GiB) pages of a hugetlbfs memfd, mbind strict to
//    the node, populated and mlocked; physical addresses from
//    /proc/self/pagemap; the pages mapped in ascending physical order
//    (hugetlb_file.hpp) and the span split wherever two hugepages are not
//    physically adjacent; placement verified with move_pages (a page on
//    another node is an error, never silent). addr_kind = physical.
//    BackingOptions::compact compacts the node first.
//  - anon: 4 KiB pages, mbind strict + populate + mlock, placement verified.
//    Physically contiguous only per page, so the span is ONE IOVA segment
//    whose DMA addresses are the virtual addresses (IOVA = VA) and
//    addr_kind = iova: a multi-page buffer's DMA address is valid only in
//    IOVA mode. The reservation's note says so.
//  - sim: plain memory (MAP_NORESERVE, untouched until used) with a
//    simulated node and DMA-address layout taken from the topology; can be
//    told to fail the Nth reservation (error-path tests). addr_kind = physical.
//  - auto: per reservation, hugetlb when the node has enough free hugepages
//    of a size, else anon; the reservation's kind and note say which and why.
//
// Thread safety: reserve/release run at pool creation/destruction only;
// alloc_pages/free_pages may be called concurrently (implementations lock).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/area.hpp"
#include "numacma/result.hpp"
#include "topology/topology.hpp"

namespace numacma::backing {

enum class AddrKind { physical, iova };
const char* addr_kind_name(AddrKind k) noexcept;

struct Reservation {
  std::string kind;            ///< "hugetlb-2M", "hugetlb-1G", "anon", "sim"
  int node = -1;
  std::uintptr_t cpu_base = 0;
  std::uint64_t bytes = 0;     ///< what was asked for (a multiple of 4 KiB)
  std::uint64_t mapped_bytes = 0;  ///< what is mapped (rounded to the backing page)
  AddrKind addr_kind = AddrKind::physical;
  /** In base pages (4 KiB) of [cpu_base, cpu_base + bytes), partitioning it. */
  std::vector<core::Segment> segments;
  std::string note;            ///< human-readable: why this kind, caveats
};

struct PagesBlock {
  std::string_view kind;       ///< "pages-4K", "pages-2M", "sim-pages" (a literal: a block is moved about on the page path)
  int node = -1;
  std::uintptr_t cpu = 0;
  std::uint64_t bytes = 0;     ///< asked for, rounded up to 4 KiB
  std::uint64_t mapped_bytes = 0;
  std::uint64_t dma_addr = 0;
  bool contiguous = false;     ///< dma_addr .. dma_addr + bytes is physically contiguous
  AddrKind addr_kind = AddrKind::physical;
  bool fresh = true;           ///< mapped for this block just now: reads as zeros
};

struct SimOptions {
  /** 1-based: the Nth call to reserve() fails with Errc::no_memory (0: never). */
  unsigned fail_nth_reservation = 0;
  /** alloc_pages fails after this many bytes per node are live (0: the
   *  node's MemTotal from the topology). */
  std::uint64_t pages_limit_per_node = 0;
};

/** Choices for the backings over real memory (hugetlb, auto). */
struct BackingOptions {
  /** Before taking a node's hugepages, write "1" to <sysfs root>/devices/system/node/
   *  nodeN/compact. Failing to is a note on the reservation, not an error. */
  bool compact = false;
};

class Backing {
 public:
  virtual ~Backing() = default;
  virtual std::string name() const = 0;

  /** Reserve `bytes` (a multiple of 4 KiB, > 0) on `node`. */
  virtual Result<Reservation> reserve(int node, std::uint64_t bytes) = 0;
  /** The same where the plan put the area (config::PlannedArea::phys_base):
   *  the sim backing gives it exactly that physical (DMA) address; real
   *  backings take what the OS gives and ignore it. */
  virtual Result<Reservation> reserve_at(int node, std::uint64_t bytes, std::uint64_t /*phys_base*/) {
    return reserve(node, bytes);
  }
  virtual void release(const Reservation& r) noexcept = 0;

  /**
   * docs/semantics.md A7: ordinary pages bound to `node` (-1: anywhere), taken now.
   * A multi-page request that cannot be physically contiguous fails with
   * Errc::not_contiguous when need_physical, else is returned with
   * contiguous = false and addr_kind = iova. `below`: the pages must lie
   * under this physical address (the end of the zone dma-direct asks for,
   * config/zones.hpp; kAnywhere: any); only a backing that takes_zones()
   * honours it, the others ignore it.
   */
  virtual Result<PagesBlock> alloc_pages(int node, std::uint64_t bytes, bool need_physical,
                                         std::uint64_t below = kAnywhere) = 0;
  virtual void free_pages(const PagesBlock& b) noexcept = 0;
  /** True when alloc_pages can put pages below a physical address (the sim,
   *  which lays out physical memory itself). Pages of the OS bound to a node
   *  (mbind) cannot choose a zone: the real backings answer false, and the
   *  pool does not retry in a lower zone there (docs/semantics.md A7, A8). */
  virtual bool takes_zones() const noexcept { return false; }
  static constexpr std::uint64_t kAnywhere = ~std::uint64_t{0};

  /** Makes a new buffer read as zeros (dma_alloc_coherent's memory is
   *  zeroed): a plain memset, except where pages may be handed back instead
   *  (the sim backing's large ranges: MADV_DONTNEED, or MADV_REMOVE for a
   *  memory file other processes map, `shared`). Never hands back the pages
   *  of a real area: they are pinned for DMA. */
  virtual void zero(void* cpu, std::size_t bytes, bool shared) noexcept;

  /** The CPU the calling thread runs on (os::current_cpu), -1 when unknown:
   *  the pool's stand-in for the kernel's numa_mem_id() when a device has
   *  no node (docs/semantics.md A3, A7). Any backing, real or simulated, answers
   *  with the real CPU; src/backing/cpu.cpp. */
  int calling_cpu() const noexcept;

  /** Memory mapped into a VFIO container is pinned by the IOMMU mapping
   *  itself; mlock would charge RLIMIT_MEMLOCK a second time for it. Call
   *  before the first reserve. */
  void pinned_by_iommu() noexcept { mlock_ = false; }

 protected:
  bool mlock_ = true;
};

/** numacma's allocation unit P is 4 KiB, the kernel's base page on x86-64
 *  and on 4K-page arm64. The backings over real memory (anon, hugetlb, auto)
 *  need the running kernel's page size (`os_page`, sysconf(_SC_PAGESIZE)) to
 *  be that too: on a 16 KiB or 64 KiB page kernel (arm64 CONFIG_ARM64_16K/64K_PAGES)
 *  pagemap, move_pages and mmap work in the larger unit and P-sized buffers
 *  would be wrong. Errc::unsupported saying so; ok for 4096. */
Status check_base_page(std::size_t os_page);

/** True when `sysfs_root` is this machine's sysfs: "/sys", however spelled
 *  ("/sys/", "//sys/."). Any other tree is a fixture (tests/data/...): a
 *  picture of some machine, whose nodes and hugepages are not where real
 *  memory would come from. Pure: compares the text, touches nothing. */
bool is_host_sysfs(std::string_view sysfs_root);

/** The backing a pool over `sysfs_root` gets when `asked` for one: `asked`
 *  itself on this machine's /sys; on a fixture, "auto" means "sim" and sim
 *  stays sim, while a real backing (hugetlb, hugetlb-2M, hugetlb-1G, anon)
 *  is invalid_argument saying why (its memory would be this machine's,
 *  bound to nodes the fixture only describes). Unknown names are returned
 *  as they are, for make_backing to refuse. Pure (src/backing/choose.cpp). */
Result<std::string> backing_for_root(std::string_view asked, std::string_view sysfs_root);

/** kind: "sim", "anon", "hugetlb", "auto". Errc::invalid_argument otherwise;
 *  Errc::unsupported when the host lacks what the kind needs (for the real
 *  kinds: a kernel page size other than 4 KiB, check_base_page). */
Result<std::unique_ptr<Backing>> make_backing(std::string_view kind, const topo::Topology& topology,
                                              const SimOptions& sim = {},
                                              const BackingOptions& opts = {});

}  // namespace numacma::backing
