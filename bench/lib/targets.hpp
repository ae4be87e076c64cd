// bench/lib/targets.hpp — the benchmarks' targets and default run lengths, in
// one place: the workloads, the rows' target/met and the CLI's text and help
// all read them from here (docs/bench.md, "Targets", gives the history).
#pragma once

#include <cstddef>
#include <cstdint>

namespace numacma::bench {

// ---- targets -------------------------------------------------------------------
/** bench scaling: the 64 GiB area's median at most this many times the 64 MiB one's. */
inline constexpr double kScalingMaxRatio = 1.5;
/** bench pool: two threads on one DmaPool, own objects, at least this many times
 *  one thread's throughput (2 x median 1 thread / median 2 threads). */
inline constexpr double kPoolTwoThreadMinSpeedup = 1.8;
/** bench reserve: numacma's reserve + populate at most this many times mmap's. */
inline constexpr double kReserveMaxRatio = 1.2;
/** bench shared: an attached pool's median at most this many times the private one's. */
inline constexpr double kSharedAttachedMaxRatio = 1.1;
/** bench shared: attached with a second process allocating flat out, at most this
 *  many times the private median. */
inline constexpr double kSharedBusyMaxRatio = 1.5;
/** bench shared: numacma::reap of a 64 MiB area after a kill, median under this (1 ms). */
inline constexpr double kRecoveryMaxNs = 1e6;

// ---- workloads -----------------------------------------------------------------
/** Buffers (alloc, shared) or objects per thread (pool) kept live. */
inline constexpr std::size_t kLive = 1024;
/** The seed of the random free + re-allocate order (pool: kSeed + thread). */
inline constexpr std::uint64_t kSeed = 42;

// ---- default run lengths (normal, --quick) ---------------------------------------
/** A run length: `given` when set (--reps, --rounds, --kills), else the default. */
struct Reps {
  unsigned normal, quick;
  constexpr unsigned pick(unsigned given, bool q) const { return given != 0 ? given : q ? quick : normal; }
};

/** alloc (and shared's alloc half): rounds of kLive pairs. */
inline constexpr Reps kAllocRounds{101, 9};
/** alloc: a peer slower than the budget stops after at least this many rounds. */
inline constexpr Reps kAllocMinRounds{21, 2};
inline constexpr Reps kAllocBudgetMs{4000, 120};

/** pool: measured rounds per thread, after the warm-up rounds. */
inline constexpr Reps kPoolRounds{10001, 9};
inline constexpr Reps kPoolWarmupRounds{101, 1};
/** pool: a case past its budget stops after at least this many measured rounds. */
inline constexpr Reps kPoolMinRounds{1001, 2};
inline constexpr Reps kPoolBudgetMs{1000, 200};

/** scaling: measured rounds per area (after one warm-up round). */
inline constexpr Reps kScalingRounds{1001, 15};

/** reserve: repetitions (after one warm-up), and the bytes reserved (MiB). */
inline constexpr Reps kReserveReps{5, 3};
inline constexpr Reps kReserveMiB{1024, 64};

/** cmdq: batches (the first 10 % more warm up), and commands per batch. */
inline constexpr Reps kCmdqRounds{20000, 2000};
inline constexpr unsigned kCmdqBatch = 16;

/** shared: children killed per recovery case. */
inline constexpr Reps kSharedKills{31, 3};

}  // namespace numacma::bench
