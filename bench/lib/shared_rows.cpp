// bench/lib/shared_rows.cpp — bench shared's rows: the alloc half (private vs
// attached) and the recovery half, with their targets (targets.hpp).
#include <algorithm>
#include <cmath>

#include "bench.hpp"
#include "targets.hpp"

namespace numacma::bench {

namespace {

Section shared_alloc_section(const SharedOptions& o, const SharedReport& r) {
  Section s;
  const std::string attached = ratio_target("<=", kSharedAttachedMaxRatio);
  const std::string busy = ratio_target("<=", kSharedBusyMaxRatio);
  s.intro = {"numacma bench shared: bench alloc's numacma loop (" + std::to_string(o.live) +
                 " live buffers, free + re-allocate in",
             "random order, seed " + std::to_string(kSeed) + ", ns per alloc+free pair, " +
                 std::to_string(kAllocRounds.pick(o.repetitions, o.quick)) +
                 " rounds) on a private pool and on a reserved",
             "pool attached; run directory " + (r.run_dir.empty() ? std::string("-") : r.run_dir) +
                 " (removed at the end);",
             "ratio = median / private median (same size); targets: attached " + attached + " private, with a",
             "second process allocating flat out " + busy, ""};
  const bool out = !r.alloc.empty() && std::all_of(r.alloc.begin(), r.alloc.end(), [](const auto& x) {
    return x.unavailable;
  });
  if (out) {
    s.intro.push_back("alloc: skipped: " + r.alloc.front().reason);
    s.table = false;
  } else if (!r.alloc.empty()) {
    s.configurations_title = "configurations (at " + size_text(r.alloc.back().size) + ")";
  }
  for (const SharedAllocResult& x : r.alloc) {
    Row w;
    w.bench = "shared";
    w.cases = {json_col("case", "alloc"), col("setup", x.setup, x.setup), col("size", x.size, size_text(x.size)),
               col("align", x.align, size_text(x.align))};
    take_timings(w, x.setup, x);
    if (x.setup == "attached") {
      w.target = attached;
      w.met = x.ratio <= kSharedAttachedMaxRatio;
    } else if (x.setup == "attached+busy") {
      w.target = busy;
      w.met = x.ratio <= kSharedBusyMaxRatio;
      if (!x.skipped) {
        w.extra = {json_col("other_pairs_per_s", std::round(x.other_pairs_per_s))};
        w.note = "the other: " + num(x.other_pairs_per_s / 1e6, "%.2f") + " M pairs/s";
      }
    }
    s.rows.push_back(std::move(w));
  }
  return s;
}

Section shared_recovery_section(const SharedReport& r) {
  Section s;
  s.text_unit = Unit::us;
  s.json_quantum = 1;
  const std::string target = "< " + num(kRecoveryMaxNs / 1e6, "%g") + " ms";
  s.intro = {"recovery: a reserved 64 MiB area; a child SIGKILLed while parked inside an allocation, holding",
             "the area lock; a new child per kill; timed in the parent from the child's death (waitpid) until",
             "numacma::reap returns (the keeper answers after it has given the dead child's buffers back;",
             "inner: the keeper's own time for that); locks repaired: the area's recoveries counter; target:",
             "reap " + target, ""};
  const bool out = !r.recovery.empty() && std::all_of(r.recovery.begin(), r.recovery.end(), [](const auto& x) {
    return x.unavailable;
  });
  if (out) {
    s.intro.push_back("recovery: skipped: " + r.recovery.front().reason);
    s.table = false;
  } else {
    s.configurations_title = "configurations";
  }
  for (const SharedRecoveryResult& x : r.recovery) {
    Row w;
    w.bench = "shared";
    const std::string dash = "-";
    w.cases = {json_col("case", "recovery"),
               {"what", x.what, "case", x.what},
               json_col("area_bytes", x.area_bytes),
               col("buffers", x.buffers, x.skipped ? dash : std::to_string(x.buffers)),
               {"pages", x.pages, "memory", x.skipped ? dash : size_text(x.pages * 4096)},
               {"recovered_locks", x.recovered_locks, "locks repaired",
                x.skipped ? dash : std::to_string(x.recovered_locks)},
               col("kills", x.samples, std::to_string(x.samples))};
    w.peer = x.what;
    w.config = x.config;
    w.skipped = x.skipped;
    w.reason = x.reason;
    w.median_ns = x.median_ns;
    w.p99_ns = x.p99_ns;
    const bool inner = !x.skipped && x.inner_median_ns > 0;
    w.extra = {{inner ? "keeper_median_ns" : "", inner ? Json(round_to(x.inner_median_ns, 1)) : Json(nullptr),
                "inner us", inner ? num(x.inner_median_ns / 1e3) : dash}};
    if (x.what == "reap") {
      w.target = target;
      w.met = x.median_ns < kRecoveryMaxNs;
    }
    s.rows.push_back(std::move(w));
  }
  return s;
}

}  // namespace

Output shared_output(const SharedOptions& o, const SharedReport& r) {
  return {{shared_alloc_section(o, r), shared_recovery_section(r)}};
}

}  // namespace numacma::bench
