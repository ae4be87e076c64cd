// bench/lib/bench.hpp — the workloads behind `numacma bench ...` and
// numacma_gbench (the performance issue: numacma side by side with its peers).
//
//   alloc    1024 live buffers; free + re-allocate them in a fixed-seed random
//            order; ns per alloc+free pair (median, p99 over repetitions) for
//            numacma | dpdk (rte_malloc_socket, aligned as A6) | dpdk-align64
//            (rte_malloc_socket, 64-byte alignment) | dpdk-memzone
//            (rte_memzone_reserve_aligned, IOVA-contiguous, aligned as A6) |
//            glibc (posix_memalign) | libnuma (numa_alloc_onnode), sizes 4K 16K
//            64K 256K, each aligned as rule A6 (docs/semantics.md) says unless the peer's
//            configuration says otherwise
//   pool     small fixed-size objects (64 B, 512 B, 4 KiB), 1024 live per thread:
//            numacma's DmaPool vs rte_mempool (per-lcore cache) vs glibc malloc,
//            one thread, two threads, two threads freeing each other's objects
//   scaling  alloc+free on a nearly full, fragmented core::Area of 64 MiB vs 64 GiB
//   reserve  reserve+populate 1 GiB (quick: 64 MiB) through a Pool vs plain mmap
//   cmdq     SYNC round trip of a command ring in a numacma buffer, queue on the
//            device's node vs every other node
//   shared   the alloc loop on a private pool vs a reserved pool attached
//            (Pool::attach), alone and with a second attached process idle or
//            busy; and the time to recover a 64 MiB area from a process killed
//            inside an update (numacma::reap, Pool::attach)
//
// Results are plain structs (the plots read them); each benchmark's *_output()
// turns its report into rows (rows.hpp) that one renderer prints as a text
// table or as JSON lines. Targets and default run lengths: targets.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "rows.hpp"
#include "targets.hpp"

namespace numacma {
class Pool;
}

namespace numacma::bench {

/** The pool numacma is measured on by alloc and pool: Pool::create("cma=1G",
 *  backing, sysfs_root, vfio devices), its one area's backing and node; or,
 *  with `attach` set, the shared pool of that name (Pool::attach), its first
 *  area's. */
struct BenchPool {
  std::unique_ptr<Pool> pool;
  std::string backing;  ///< what the area really uses
  int node = 0;         ///< the area's node
  std::string words;    ///< how the pool was made, for the rows' config
};
/** False (with why) when the pool cannot be made or reserved no area. */
bool make_bench_pool(const std::string& backing, const std::string& sysfs_root,
                     const std::vector<std::string>& vfio, BenchPool* out, std::string* why,
                     const std::string& attach = "", bool zero = true);

/** Median and 99th percentile of samples (ns); the vector is sorted in place. */
struct Summary {
  double median = 0, p99 = 0;
};
Summary summarize(std::vector<double>& samples);

/** Rule A6 (docs/semantics.md) for a request of `bytes`: P << min(ceil(log2(pages)), 8). */
std::size_t a6_alignment(std::size_t bytes);

// ---- alloc -------------------------------------------------------------------
struct AllocOptions {
  bool quick = false;
  std::vector<std::size_t> sizes = {4096, 16384, 65536, 262144};
  std::size_t live = kLive;      ///< buffers kept live
  unsigned repetitions = 0;      ///< 0: kAllocRounds (101, quick: 9)
  std::string backing = "sim";   ///< numacma's backing: sim | anon | hugetlb | auto
  std::string sysfs_root = "/sys";
  std::vector<std::string> peers = {"numacma",      "numacma-nozero", "dpdk", "dpdk-align64", "dpdk-zmalloc",
                                    "dpdk-memzone", "glibc",          "libnuma"};
  std::vector<std::string> vfio;  ///< BDFs bound to vfio-pci: numacma's pool in vfio mode
  std::string attach;             ///< a shared pool's name: numacma's rows on Pool::attach(attach)
};

struct AllocResult {
  std::string peer;
  std::size_t size = 0;
  std::size_t align = 0;         ///< the alignment this peer was asked for (bytes)
  double median_ns = 0, p99_ns = 0;
  double ratio = 0;              ///< peer median / numacma median (same size)
  bool skipped = false;
  std::string reason;
  std::string config;            ///< the peer's configuration, in words
};

struct AllocReport {
  std::vector<AllocResult> results;  ///< by size, then peer in options order
  std::string numacma_backing;       ///< what the numacma pool really used
  std::string dpdk_note;             ///< EAL arguments that worked, or why none did
};

AllocReport run_alloc(const AllocOptions& o);
/** The rows: by size, then peer; configurations above the table. */
Output alloc_output(const AllocOptions& o, const AllocReport& r);

/** One peer's allocator, as the alloc workload drives it (also numacma_gbench). */
class AllocPeer {
 public:
  virtual ~AllocPeer() = default;
  virtual const char* name() const = 0;
  /** Prepares the peer; false (with why) means skipped. */
  virtual bool init(const AllocOptions& o, std::string* why) = 0;
  /** Sets up `live` slots of `size` bytes aligned to `align`, all allocated. */
  virtual bool fill(std::size_t live, std::size_t size, std::size_t align, std::string* why) = 0;
  /** Frees slot i and allocates it again (the measured pair). False on failure. */
  virtual bool cycle(std::size_t i) = 0;
  /** Frees every slot. */
  virtual void drain() = 0;
  /** The alignment this peer asks for when A6 says `a6` (dpdk-align64: 64;
   *  libnuma: at most a page). */
  virtual std::size_t align_for(std::size_t a6) const { return a6; }
  /** The configuration, in words, for a run of `size` bytes aligned to `align`
   *  (called after the run and drain(): it may report what the run did). */
  virtual std::string config(std::size_t size, std::size_t align) const = 0;
};

/** "numacma" | "dpdk" | "dpdk-align64" | "dpdk-memzone" | "glibc" | "libnuma";
 *  nullptr for an unknown name. */
std::unique_ptr<AllocPeer> make_peer(const std::string& name);

/** The numacma peer over a pool made elsewhere (bench shared: a private pool
 *  and an attached one measured the same way); `pool_words` says what the pool
 *  is and opens the configuration. The pool must outlive the peer. */
std::unique_ptr<AllocPeer> make_numacma_peer(Pool& pool, int node, std::string pool_words);

/** The alloc workload's loop for one peer and size: fill `o.live` slots, one
 *  warm-up round, up to o.repetitions measured rounds (the time budget as in
 *  run_alloc), drain. False (with why) when the fill or a pair failed. */
bool time_pairs(AllocPeer& peer, const AllocOptions& o, std::size_t size, std::size_t align, Summary* out,
                std::string* why);

/** The fixed-seed random slot order the workload uses (one permutation per round). */
std::vector<std::uint32_t> slot_order(std::size_t live, unsigned rounds, std::uint64_t seed = kSeed);

/** The SVG grouped bar chart of an alloc report (log scale, ns per pair). */
std::string alloc_svg(const AllocReport& r);

// ---- pool ------------------------------------------------------------------
struct PoolBenchOptions {
  bool quick = false;
  std::vector<std::size_t> objects = {64, 512, 4096};
  std::size_t live = kLive;      ///< objects kept live per thread
  unsigned rounds = 0;           ///< measured rounds per thread; 0: kPoolRounds, after kPoolWarmupRounds
  std::string backing = "sim";   ///< numacma's pool backing
  std::string sysfs_root = "/sys";
  std::string attach;            ///< a shared pool's name: numacma's rows on Pool::attach(attach)
  std::vector<std::string> peers = {"numacma", "dpdk-mempool", "glibc"};
  /** A case's time budget in ms: once used, the case stops after min rounds
   *  kPoolMinRounds (1001, quick: 2) measured rounds. 0: kPoolBudgetMs (1000, quick: 200). */
  unsigned budget_ms = 0;
  /** Tests only (bench_pool_stop_test): called by every worker thread between
   *  each round's barrier and its reading of whether that round runs, with
   *  (thread, round); a test delays workers there (sched_yield, sleeps) so
   *  that every interleaving of the stop decision is tried. */
  std::function<void(unsigned thread, unsigned round)> after_barrier;
};

struct PoolBenchResult {
  std::string peer;
  std::size_t object = 0;        ///< bytes
  unsigned threads = 1;
  bool cross = false;            ///< each thread frees what the other allocated
  double median_ns = 0, p99_ns = 0;
  double ratio = 0;              ///< peer median / numacma median (same case)
  bool skipped = false;
  std::string reason;
  std::string config;
};

struct PoolBenchReport {
  std::vector<PoolBenchResult> results;  ///< by object, case, then peer in options order
  std::string numacma_backing;
  std::vector<int> cpus;                 ///< the CPUs the threads were pinned to (empty: not pinned)
  std::string note;                      ///< how the threads ran
};

PoolBenchReport run_pool(const PoolBenchOptions& o);
/** The rows, and a text-only summary: 2 threads' throughput relative to 1 (numacma's target). */
Output pool_output(const PoolBenchOptions& o, const PoolBenchReport& r);

/** One peer of the pool workload. The workload creates the peer's pool per
 *  case, starts one thread per slot set, and runs rounds on the sets. */
class PoolPeer {
 public:
  /** `live` objects of one thread, all allocated between fill() and drain(). */
  class Slots {
   public:
    virtual ~Slots() = default;
    virtual bool fill(std::string* why) = 0;
    /** For each of the n indexes: free that slot's object, allocate a new one. */
    virtual bool round(const std::uint32_t* idx, std::size_t n) = 0;
    virtual void drain() = 0;
  };
  virtual ~PoolPeer() = default;
  virtual const char* name() const = 0;
  virtual bool init(const PoolBenchOptions& o, std::string* why) = 0;
  /** Creates the pool of `object`-byte objects for `threads` threads of `live` each. */
  virtual bool setup(std::size_t object, unsigned threads, std::size_t live, std::string* why) = 0;
  /** Destroys what setup() created (every Slots drained). */
  virtual void teardown() = 0;
  virtual std::unique_ptr<Slots> make_slots(std::size_t live) = 0;
  /** Runs on each worker thread before it touches the pool, and before it ends. */
  virtual bool thread_enter(std::string* why) {
    (void)why;
    return true;
  }
  virtual void thread_exit() {}
  virtual std::string config(std::size_t object, unsigned threads) const = 0;
};

/** "numacma" | "dpdk-mempool" | "glibc"; nullptr for an unknown name. */
std::unique_ptr<PoolPeer> make_pool_peer(const std::string& name);

/** The SVG grouped bar chart of a pool report (log scale, ns per pair). */
std::string pool_svg(const PoolBenchReport& r);

// ---- scaling -----------------------------------------------------------------
struct ScalingOptions {
  bool quick = false;
  std::uint64_t small_bytes = 64ULL << 20;
  std::uint64_t large_bytes = 64ULL << 30;
};
struct ScalingResult {
  std::uint64_t area_bytes = 0;
  std::uint64_t blocks = 0;       ///< 64 KiB blocks the area holds
  std::uint64_t holes = 0;        ///< free blocks while measuring
  double used_pct = 0;
  double median_ns = 0, p99_ns = 0;
  double fill_s = 0;              ///< time to fill the area (not measured as alloc)
  std::uint64_t metadata_bytes = 0;  ///< the area's bitmap, marks and summary
  /** % of measured pairs whose allocation returned the block the pair had
   *  just freed (the lowest hole was that one): low = a fragmented search. */
  double refill_pct = 0;
};
struct ScalingReport {
  ScalingResult small, large;
  double ratio = 0;               ///< large median / small median
  int cpu = -1;                   ///< the CPU both were measured on (-1: not pinned)
  std::string workload;
};
ScalingReport run_scaling(const ScalingOptions& o);
Output scaling_output(const ScalingOptions& o, const ScalingReport& r);

// ---- reserve -----------------------------------------------------------------
struct ReserveOptions {
  bool quick = false;
  std::uint64_t bytes = 0;        ///< 0: kReserveMiB (1 GiB, quick: 64 MiB)
  bool grow_hugepages = false;    ///< root: raise nr_hugepages for the run, then restore
  unsigned repetitions = 0;       ///< 0: kReserveReps (5, quick: 3)
};
struct ReserveResult {
  std::string who;                ///< "numacma" | "mmap"
  std::string how;                ///< "hugetlb-2M", "anon", "MAP_HUGETLB|MAP_POPULATE" ...
  double median_ms = 0, p99_ms = 0;
  double ratio = 0;               ///< who / mmap
  bool skipped = false;
  std::string reason;
};
struct ReserveReport {
  std::uint64_t bytes = 0;
  bool hugepages = false;
  std::string note;
  std::vector<ReserveResult> results;
};
ReserveReport run_reserve(const ReserveOptions& o);
Output reserve_output(const ReserveOptions& o, const ReserveReport& r);

// ---- cmdq ----------------------------------------------------------------------
struct CmdqOptions {
  bool quick = false;
  unsigned batch = kCmdqBatch;    ///< commands per batch, the last one SYNC
  unsigned rounds = 0;            ///< 0: kCmdqRounds (20000, quick: 2000)
  std::string sysfs_root = "/sys";
  std::string backing = "auto";
  std::vector<std::string> vfio;  ///< BDFs bound to vfio-pci: the queue's pool in vfio mode
};
struct CmdqResult {
  int driver_node = 0, driver_cpu = 0;
  int device_node = 0, device_cpu = 0;
  int queue_node = 0;             ///< where the ring really is (the buffer's node)
  std::string area;
  double median_ns = 0, p99_ns = 0;
  double ratio = 0;               ///< this / queue on the device's node
  bool local = false;             ///< queue on the device's node
};
struct CmdqReport {
  std::vector<CmdqResult> results;
  std::string note;
  bool ok = true;
  std::string error;
};
CmdqReport run_cmdq(const CmdqOptions& o);
Output cmdq_output(const CmdqOptions& o, const CmdqReport& r);

// ---- shared ------------------------------------------------------------------
struct SharedOptions {
  bool quick = false;
  std::vector<std::size_t> sizes = {4096, 16384, 65536, 262144};
  std::size_t live = kLive;      ///< buffers kept live by the measured process
  unsigned repetitions = 0;      ///< alloc rounds; 0: kAllocRounds (101, quick: 9)
  unsigned kills = 0;            ///< children killed per recovery case; 0: kSharedKills (31, quick: 3)
  std::string backing = "sim";   ///< of both pools: sim | anon | hugetlb | auto
  bool busy = true;              ///< also the row with a second process allocating
};

struct SharedAllocResult {
  /** "private" | "attached" | "attached+idle" | "attached+busy" */
  std::string setup;
  std::string config;            ///< the configuration, in words
  std::size_t size = 0, align = 0;
  double median_ns = 0, p99_ns = 0;
  double ratio = 0;              ///< median / private median (same size)
  /** attached+busy: alloc+free pairs the other process made per second meanwhile. */
  double other_pairs_per_s = 0;
  bool skipped = false;
  bool unavailable = false;      ///< skipped: the host lacks what --backing needs (hugetlb)
  std::string reason;
};

struct SharedRecoveryResult {
  /** "reap" (a full area and a lock to repair) | "reap-lock-only" | "attach-clean" (none dead) */
  std::string what;
  std::string config;
  std::uint64_t area_bytes = 0;
  std::uint64_t buffers = 0, pages = 0;  ///< given back per kill
  /** Locks repaired per kill: the area's recoveries counter (numacma::status). */
  std::uint64_t recovered_locks = 0;
  unsigned samples = 0;
  double median_ns = 0, p99_ns = 0;  ///< from the kill until reap returns (attach-clean: the call)
  double inner_median_ns = 0;        ///< the keeper's own time for the give-back (0: not reported)
  bool skipped = false;
  bool unavailable = false;          ///< skipped: the host lacks what --backing needs (hugetlb)
  std::string reason;
};

struct SharedReport {
  std::vector<SharedAllocResult> alloc;        ///< by size, then setup
  std::vector<SharedRecoveryResult> recovery;
  std::string run_dir;                         ///< the private run directory (removed at the end)
  std::string note;
  bool ok = true;                              ///< false: a check after a recovery failed (error says which)
  std::string error;
};

SharedReport run_shared(const SharedOptions& o);
/** Two sections: alloc (private vs attached), recovery (shared_rows.cpp). */
Output shared_output(const SharedOptions& o, const SharedReport& r);

}  // namespace numacma::bench
