// numacma/shared.hpp — system-wide areas: reserve once, attach from any process.
//
//   numacma reserve NAME "cma=64M cma_pernuma=16M"     (or numacma::reserve)
//     a keeper process (numacma-keep) holds the pool's memory: sealed memory
//     files with no name in the file system, handed to each process it admits
//     <run dir>/pools/NAME/sock        where the keeper listens
//   Pool::attach("NAME")                 the owner, root, or a member of the
//                                        pool's group: same rules, same bitmaps
//   numacma status NAME / reap NAME / release NAME [--force]
//
// The run directory is $NUMACMA_RUN_DIR, default /run/numacma. See
// docs/shared.md for the trust model, crash recovery and permissions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "numacma/numacma.hpp"

namespace numacma {

struct ReserveOptions {
  std::string params;               ///< "cma=64M cma_pernuma=16M" (R1-R6)
  std::string backing = "auto";     ///< auto | hugetlb | hugetlb-1G | anon | sim
  Policy policy = Policy::kernel;
  Arch arch = Arch::host;
  Kernel kernel = Kernel::v6_12;   ///< whose per-NUMA CMA rules (PoolOptions::kernel)
  bool cma_size_pernuma = false;   ///< 7.2's CONFIG_CMA_SIZE_PERNUMA (PoolOptions::cma_size_pernuma)
  std::string sysfs_root = "/sys";
  unsigned order_per_bit = 0;
  std::vector<DeviceAreaSpec> device_areas;
  /** "": only the reserving user (and root) may attach. A group name or
   *  number: its members may attach too. */
  std::string group;
  /** Write 1 to /sys/devices/system/node/nodeN/compact before taking a
   *  node's hugepages. */
  bool compact = false;
};

/** One buffer (or a run of them) of a shared area: who holds it. */
struct SharedRun {
  std::uint64_t first_page = 0;   ///< in the area, 4 KiB pages
  std::uint64_t pages = 0;
  int holder = -1;                ///< index into PoolStatus::holders
};

struct SharedAreaStatus {
  AreaReport area;                    ///< name, node, pages, used, maxchunk, segments, counters
  std::uint64_t longest_segment = 0;  ///< pages of the longest physically contiguous segment
  std::uint64_t recoveries = 0;       ///< times a lock was found with its owner dead
  std::uint64_t reaped_pages = 0;     ///< pages given back from dead processes
  std::vector<SharedRun> runs;        ///< live buffers, by first page
};

struct HolderStatus {
  int pid = 0;                        ///< as the keeper's PID namespace sees it (0: not visible there)
  std::uint64_t start_time = 0;       ///< kept for compatibility: always 0 (liveness is the keeper's connection)
  std::uint64_t attached_ns = 0;      ///< CLOCK_REALTIME when it attached
  std::string comm;
  bool alive = false;                 ///< attached; false: gone, its buffers not yet given back
  std::uint64_t buffers = 0;
  /** Pages held, per area (area name, pages); areas with none are left out. */
  std::vector<std::pair<std::string, std::uint64_t>> pages;
};

struct SharedNodeStatus {
  NodeReport alloc;                   ///< A9 counters of every attached process together
  /** /sys/devices/system/node/nodeN/numastat (-1 when unreadable). */
  std::int64_t numa_hit = -1, numa_miss = -1, numa_foreign = -1, local_node = -1,
               other_node = -1;
  /** 2 MiB hugepages of the node now (-1 when unreadable). */
  std::int64_t hugepages_total = -1, hugepages_free = -1;
};

struct PoolStatus {
  std::string name;
  std::string dir;                    ///< <run dir>/pools/NAME
  std::string params;
  std::string backing;
  std::string policy;                 ///< kernel | nearest
  /** The sysfs tree the reservation was made over ("/sys", or a fixture):
   *  its topology, and the tree the node facts below are read from. */
  std::string sysfs_root;
  /** Who reserved it, the group whose members may attach, and the mode
   *  that says so in file terms (0600: the owner only; 0660: the group too). */
  std::uint32_t uid = 0, gid = 0, mode = 0;
  std::vector<SharedAreaStatus> areas;
  std::vector<HolderStatus> holders;
  std::vector<SharedNodeStatus> nodes;
  int keeper_pid = 0;                 ///< the keeper, as it sees itself
  std::uint64_t attaches = 0;         ///< attachments it admitted
  std::uint64_t reaped_holders = 0;   ///< processes that went holding buffers, given back
  std::uint64_t last_reap_ns = 0;     ///< how long the last of those give-backs took
};

/** What reap (or an attach) gave back. */
struct ReapReport {
  std::uint64_t dead_holders = 0;
  std::uint64_t buffers = 0;
  std::uint64_t pages = 0;
  std::uint64_t recovered_locks = 0;  ///< locks found with a dead owner and repaired
  std::uint64_t ns = 0;               ///< time it took
};

/** The run directory: $NUMACMA_RUN_DIR or /run/numacma. */
std::string run_dir();

/** Reserves the areas of `options` under NAME ([A-Za-z0-9_.-], 1-48
 *  characters, not starting with '.'). busy when NAME is already reserved.
 *  The notes say what could not be placed (R3, R4), as Pool::create's. */
Result<std::vector<ReservationNote>> reserve(std::string_view name, const ReserveOptions& options);

/** Frees the reservation. busy (naming every live holder) while a live
 *  process holds buffers, unless force. Only its owner or root may. With
 *  force a reservation whose keeper is gone or does not answer is removed
 *  too (its directory, nothing else). */
Status release(std::string_view name, bool force = false);

/** Asks the keeper to give back now what it could not yet (the buffers of a
 *  process that is gone, when an area's lock was held by another) and to
 *  repair any lock whose owner died. The keeper gives a process's buffers
 *  back as soon as the process is gone, so this usually finds nothing. */
Result<ReapReport> reap(std::string_view name);

/** What the reservation holds now: read from a copy, without locks; any
 *  user who can reach the pool's directory may ask. */
Result<PoolStatus> status(std::string_view name);

/** Names of the reservations under the run directory, sorted. */
Result<std::vector<std::string>> reserved_pools();

}  // namespace numacma
