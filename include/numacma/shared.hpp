// numacma/shared.hpp — system-wide areas: reserve once, attach from any process.
//
//   numacma reserve NAME "cma=64M cma_pernuma=16M"     (or numacma::reserve)
//     <run dir>/pools/NAME/state       allocation records, counters, locks
//     /dev/shm/numacma.NAME.<area>.<pid>     anon areas (tmpfs, bound to the node)
//     <hugetlbfs>/numacma.NAME.<area>.<pid>  hugetlb areas, mapped in physical order
//     <run dir>/pools/NAME/<area>.mem        sim areas
//   Pool::attach("NAME")                 any process with access: same rules
//   numacma status NAME / reap NAME / release NAME [--force]
//
// The run directory is $NUMACMA_RUN_DIR, default /run/numacma. See
// docs/shared.md for the file layout, crash recovery and permissions.
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
  std::string sysfs_root = "/sys";
  unsigned order_per_bit = 0;
  std::vector<DeviceAreaSpec> device_areas;
  /** "" : files 0600, owned by the reserving user. A group name or number:
   *  files 0660 with that group (its members may attach). */
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
  int pid = 0;
  std::uint64_t start_time = 0;       ///< /proc/PID/stat field 22 (clock ticks after boot)
  std::string comm;
  bool alive = false;                 ///< the same process (pid and start time) still runs
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
  std::uint32_t uid = 0, gid = 0, mode = 0;  ///< of the state file
  std::vector<SharedAreaStatus> areas;
  std::vector<HolderStatus> holders;
  std::vector<SharedNodeStatus> nodes;
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
 *  process holds buffers, unless force. */
Status release(std::string_view name, bool force = false);

/** Gives back the buffers of every dead holder, repairing any lock whose
 *  owner died. */
Result<ReapReport> reap(std::string_view name);

/** What the reservation holds now. */
Result<PoolStatus> status(std::string_view name);

/** Names of the reservations under the run directory, sorted. */
Result<std::vector<std::string>> reserved_pools();

}  // namespace numacma
