// `numacma bench alloc|pool|scaling|reserve|cmdq|shared`: the allocator benchmarks, side
// by side with the peers (bench/lib, docs/bench.md). Every subcommand takes
// --json (one JSON object a line) and --quick (a few seconds at most).
// Built without bench/ (NUMACMA_WITH_BENCH unset), the subcommands exist but
// fail with exit code 1.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_util.hpp"
#include "commands.hpp"
#include "os/os.hpp"
#include "targets.hpp"  // bench/lib: the defaults the help names (also without bench/)
#include "topology/topology.hpp"

#ifdef NUMACMA_WITH_BENCH
#include "bench.hpp"
#endif

namespace numacma::cli {
namespace {

struct BenchArgs {
  bool json_all = false;  // `numacma bench --json <sub>`
  bool json = false;
  bool quick = false;
  std::string plot;
  std::string backing = "sim";
  std::string sysfs_root = "/sys";
  std::vector<std::string> peers;
  unsigned reps = 0;
  bool grow_hugepages = false;
  std::string cmdq_backing = "auto";
  unsigned batch = bench::kCmdqBatch;
  std::vector<std::string> vfio;  // --vfio BDF (alloc, cmdq)
  unsigned kills = 0;             // shared: kills per recovery case
  bool no_busy = false;           // shared: leave out the row with a busy second process
  std::string pool_name;          // --pool NAME (alloc, pool): numacma on a shared pool
};

/** --vfio BDFs in sysfs form; false (usage error reported) when one is malformed. */
bool vfio_bdfs(const std::string& command, const BenchArgs& a, std::vector<std::string>* out) {
  for (const std::string& text : a.vfio) {
    Result<std::string> bdf = topo::parse_bdf(text);
    if (!bdf) {
      usage_error(command, "--vfio: " + bdf.error().message);
      return false;
    }
    out->push_back(*bdf);
  }
  return true;
}

#ifdef NUMACMA_WITH_BENCH
using ojson = nlohmann::ordered_json;

/** v rounded to 1/scale (scale 10: one decimal), printed by JSON as e.g. 198.2. */
double round_to(double v, double q) {
  const double scale = std::round(1.0 / q);
  return std::round(v * scale) / scale;
}

std::string num(double v, const char* f = "%.1f") {
  char b[48];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

void emit(const ojson& j) { std::printf("%s\n", j.dump().c_str()); }

/** median_ns, p99_ns, ratio of a JSON row (null when the peer was skipped). */
void put_timing(ojson& j, bool skipped, double median, double p99, double ratio) {
  if (skipped) {
    j["median_ns"] = nullptr;
    j["p99_ns"] = nullptr;
    j["ratio"] = nullptr;
  } else {
    j["median_ns"] = round_to(median, 0.1);
    j["p99_ns"] = round_to(p99, 0.1);
    j["ratio"] = round_to(ratio, 0.001);
  }
}

/** --peer (numacma always kept: the ratios need it) and an early check that
 *  --plot can be written; false after printing the failure. */
bool peers_and_plot(const std::string& command, const BenchArgs& a, std::vector<std::string>* peers) {
  if (!a.peers.empty()) *peers = a.peers;
  if (std::find(peers->begin(), peers->end(), "numacma") == peers->end())
    peers->insert(peers->begin(), "numacma");
  if (!a.plot.empty()) {
    if (Status w = os::can_create(a.plot); !w) {
      failure(command, "--plot: " + w.error().message);
      return false;
    }
  }
  return true;
}

void run_alloc(const BenchArgs& a) {
  bench::AllocOptions o;
  if (!vfio_bdfs("bench alloc", a, &o.vfio)) return;
  if (!a.pool_name.empty() && !o.vfio.empty())
    return usage_error("bench alloc", "--pool and --vfio: an attached pool has no VFIO container of its own");
  o.quick = a.quick;
  o.backing = a.backing;
  o.sysfs_root = a.sysfs_root;
  o.attach = a.pool_name;
  o.repetitions = a.reps;
  if (!peers_and_plot("bench alloc", a, &o.peers)) return;
  const bench::AllocReport r = bench::run_alloc(o);
  const bool json = a.json || a.json_all;
  bool numacma_ok = true;
  if (json) {
    for (const auto& x : r.results) {
      ojson j;
      j["bench"] = "alloc";
      j["peer"] = x.peer;
      j["size"] = x.size;
      j["align"] = x.align;
      put_timing(j, x.skipped, x.median_ns, x.p99_ns, x.ratio);
      if (x.skipped) {
        j["skipped"] = true;
        j["reason"] = x.reason;
      } else {
        j["skipped"] = false;
      }
      j["config"] = x.config;
      emit(j);
    }
  } else {
    std::printf("numacma bench alloc: %zu live buffers, free + re-allocate in random order (seed 42),\n"
                "ns per alloc+free pair over %s; numacma backing: %s; ratio = peer median / numacma median\n\n",
                o.live, a.quick ? "a few rounds (--quick)" : (std::to_string(a.reps ? a.reps : 101) + " rounds of 1024 pairs (slow peers: at least 21, 4 s budget)").c_str(),
                r.numacma_backing.empty() ? "(none)" : r.numacma_backing.c_str());
    // Each peer's configuration, as at the last size (the align column gives each size's).
    std::printf("configurations (at %s; the align column gives each size's alignment):\n",
                r.results.empty() ? "-" : human_size(r.results.back().size).c_str());
    for (const std::string& p : o.peers)
      for (auto it = r.results.rbegin(); it != r.results.rend(); ++it)
        if (it->peer == p) {
          std::printf("  %-13s %s\n", p.c_str(), it->config.c_str());
          break;
        }
    std::printf("\n");
    Table t({"peer", "size", "align", "median ns", "p99 ns", "ratio", "note"});
    for (const auto& x : r.results) {
      if (x.skipped) t.add({x.peer, human_size(x.size), human_size(x.align), "-", "-", "-", "skipped: " + x.reason});
      else
        t.add({x.peer, human_size(x.size), human_size(x.align), num(x.median_ns), num(x.p99_ns),
               num(x.ratio, "%.2fx"), x.peer == "libnuma" && x.align < bench::a6_alignment(x.size) ? "page-aligned only" : ""});
    }
    t.print();
  }
  for (const auto& x : r.results)
    if (x.peer == "numacma" && x.skipped) numacma_ok = false;
  if (!a.plot.empty()) {
    if (Status w = os::write_new_file(a.plot, bench::alloc_svg(r)); !w)
      return failure("bench alloc", "--plot: " + w.error().message);
    if (!json) std::printf("\nplot written to %s\n", a.plot.c_str());
  }
  if (!numacma_ok) failure("bench alloc", "the numacma peer could not run (see its reason)");
}

/** The median of a pool case, or 0 when it is not in the report or was skipped. */
double pool_median(const bench::PoolBenchReport& r, const std::string& peer, std::size_t object, unsigned threads,
                   bool cross) {
  for (const auto& x : r.results)
    if (x.peer == peer && x.object == object && x.threads == threads && x.cross == cross && !x.skipped)
      return x.median_ns;
  return 0;
}

std::string object_label(std::size_t b) {
  return b % 1024 == 0 ? std::to_string(b >> 10) + " KiB" : std::to_string(b) + " B";
}

void run_pool(const BenchArgs& a) {
  bench::PoolBenchOptions o;
  o.quick = a.quick;
  o.backing = a.backing;
  o.sysfs_root = a.sysfs_root;
  o.attach = a.pool_name;
  o.rounds = a.reps;
  if (!peers_and_plot("bench pool", a, &o.peers)) return;
  const bench::PoolBenchReport r = bench::run_pool(o);
  const bool json = a.json || a.json_all;
  if (json) {
    for (const auto& x : r.results) {
      ojson j;
      j["bench"] = "pool";
      j["peer"] = x.peer;
      j["object"] = x.object;
      j["threads"] = x.threads;
      j["cross"] = x.cross;
      put_timing(j, x.skipped, x.median_ns, x.p99_ns, x.ratio);
      j["config"] = x.config;
      if (x.skipped) {
        j["skipped"] = true;
        j["reason"] = x.reason;
      }
      emit(j);
    }
  } else {
    std::printf("numacma bench pool: %zu live objects per thread, free + re-allocate in random order (seed 42 + thread),\n"
                "ns per alloc+free pair over %s; 2 threads: each with its own objects, or cross (the threads swap\n"
                "their objects every round, so each frees what the other allocated); %s;\n"
                "numacma backing: %s; ratio = peer median / numacma median (same object, threads, cross)\n\n",
                o.live, a.quick ? "a few rounds (--quick)" : (std::to_string(a.reps ? a.reps : 10001) + " rounds per thread after 101 warm-up rounds").c_str(),
                r.note.c_str(), r.numacma_backing.empty() ? "(none)" : r.numacma_backing.c_str());
    std::printf("configurations (at %s, 2 threads):\n",
                r.results.empty() ? "-" : object_label(r.results.back().object).c_str());
    for (const std::string& p : o.peers)
      for (auto it = r.results.rbegin(); it != r.results.rend(); ++it)
        if (it->peer == p) {
          std::printf("  %-13s %s\n", p.c_str(), it->config.c_str());
          break;
        }
    std::printf("\n");
    Table t({"peer", "object", "threads", "cross", "median ns", "p99 ns", "ratio", "note"});
    for (const auto& x : r.results) {
      const std::string cross = x.threads == 1 ? "-" : x.cross ? "yes" : "no";
      if (x.skipped)
        t.add({x.peer, object_label(x.object), std::to_string(x.threads), cross, "-", "-", "-", "skipped: " + x.reason});
      else
        t.add({x.peer, object_label(x.object), std::to_string(x.threads), cross, num(x.median_ns), num(x.p99_ns),
               num(x.ratio, "%.2fx"), ""});
    }
    t.print();
    std::printf("\n2-thread throughput relative to one thread (2 x median 1 thread / median 2 threads; target for\n"
                "numacma, two threads on the same DmaPool: >= 1.8x):\n");
    Table s({"peer", "object", "own objects", "cross"});
    for (const std::string& p : o.peers)
      for (std::size_t obj : o.objects) {
        const double m1 = pool_median(r, p, obj, 1, false);
        const double m2 = pool_median(r, p, obj, 2, false), m2x = pool_median(r, p, obj, 2, true);
        auto cell = [&](double m, bool target) {
          if (m1 <= 0 || m <= 0) return std::string("-");
          const double v = 2 * m1 / m;
          return num(v, "%.2fx") + (target && p == "numacma" ? (v >= 1.8 ? " (met)" : " (MISSED)") : "");
        };
        s.add({p, object_label(obj), cell(m2, true), cell(m2x, false)});
      }
    s.print();
  }
  if (!a.plot.empty()) {
    if (Status w = os::write_new_file(a.plot, bench::pool_svg(r)); !w)
      return failure("bench pool", "--plot: " + w.error().message);
    if (!json) std::printf("\nplot written to %s\n", a.plot.c_str());
  }
  for (const auto& x : r.results)
    if (x.peer == "numacma" && x.skipped)
      return failure("bench pool", "the numacma peer could not run: " + x.reason);
}

void run_scaling(const BenchArgs& a) {
  bench::ScalingOptions o;
  o.quick = a.quick;
  const bench::ScalingReport r = bench::run_scaling(o);
  const bool ok = r.small.median_ns > 0 && r.large.median_ns > 0;
  if (a.json || a.json_all) {
    for (const auto* x : {&r.small, &r.large}) {
      ojson j;
      j["bench"] = "scaling";
      j["area_bytes"] = x->area_bytes;
      j["blocks"] = x->blocks;
      j["holes"] = x->holes;
      j["used_pct"] = round_to(x->used_pct, 0.01);
      j["metadata_bytes"] = x->metadata_bytes;
      j["refill_pct"] = round_to(x->refill_pct, 0.1);
      j["median_ns"] = round_to(x->median_ns, 0.1);
      j["p99_ns"] = round_to(x->p99_ns, 0.1);
      j["ratio"] = x == &r.large ? round_to(r.ratio, 0.001) : 1.0;
      j["cpu"] = r.cpu;
      emit(j);
    }
  } else {
    std::printf("numacma bench scaling: %s\n\n", r.workload.c_str());
    Table t({"area", "64K blocks", "holes", "used", "metadata", "refills", "median ns", "p99 ns", "fill s"});
    for (const auto* x : {&r.small, &r.large})
      t.add({human_size(x->area_bytes), std::to_string(x->blocks), std::to_string(x->holes),
             num(x->used_pct, "%.2f%%"), num(static_cast<double>(x->metadata_bytes) / 1024, "%.1f KiB"),
             num(x->refill_pct, "%.1f%%"), num(x->median_ns), num(x->p99_ns), num(x->fill_s, "%.2f")});
    t.print();
    std::printf("\nrefills: pairs whose allocation got back the block the pair had just freed\n");
    std::printf("\nratio %s / %s = %.2fx (target <= 1.5x: %s), measured on CPU %d\n",
                human_size(r.large.area_bytes).c_str(), human_size(r.small.area_bytes).c_str(), r.ratio,
                r.ratio <= 1.5 ? "met" : "MISSED", r.cpu);
  }
  if (!ok)
    failure("bench scaling", "the workload failed (an allocation did not fit, a free was refused, "
                             "or a round left a different number of holes)");
}

void run_reserve(const BenchArgs& a) {
  bench::ReserveOptions o;
  o.quick = a.quick;
  o.grow_hugepages = a.grow_hugepages;
  o.repetitions = a.reps;
  const bench::ReserveReport r = bench::run_reserve(o);
  if (a.json || a.json_all) {
    for (const auto& x : r.results) {
      ojson j;
      j["bench"] = "reserve";
      j["who"] = x.who;
      j["how"] = x.how;
      j["bytes"] = r.bytes;
      if (x.skipped) {
        j["median_ms"] = nullptr;
        j["p99_ms"] = nullptr;
        j["ratio"] = nullptr;
        j["skipped"] = true;
        j["reason"] = x.reason;
      } else {
        j["median_ms"] = round_to(x.median_ms, 0.01);
        j["p99_ms"] = round_to(x.p99_ms, 0.01);
        j["ratio"] = round_to(x.ratio, 0.001);
        j["skipped"] = false;
      }
      j["note"] = r.note;
      emit(j);
    }
  } else {
    std::printf("numacma bench reserve: reserve + populate %s; %s\n\n", human_size(r.bytes).c_str(),
                r.note.c_str());
    Table t({"who", "how", "median ms", "p99 ms", "ratio"});
    for (const auto& x : r.results)
      t.add({x.who, x.how, x.skipped ? "-" : num(x.median_ms, "%.2f"), x.skipped ? "-" : num(x.p99_ms, "%.2f"),
             x.skipped ? "skipped: " + x.reason : num(x.ratio, "%.2fx")});
    t.print();
  }
  for (const auto& x : r.results)
    if (x.skipped) return failure("bench reserve", x.who + ": " + x.reason);
}

void run_cmdq(const BenchArgs& a) {
  bench::CmdqOptions o;
  if (!vfio_bdfs("bench cmdq", a, &o.vfio)) return;
  o.quick = a.quick;
  o.sysfs_root = "/sys";
  o.backing = a.cmdq_backing;
  o.batch = a.batch;
  o.rounds = a.reps;
  const bench::CmdqReport r = bench::run_cmdq(o);
  if (!r.ok) return failure("bench cmdq", r.error);
  if (a.json || a.json_all) {
    for (const auto& x : r.results) {
      ojson j;
      j["bench"] = "cmdq";
      j["driver_node"] = x.driver_node;
      j["driver_cpu"] = x.driver_cpu;
      j["device_node"] = x.device_node;
      j["device_cpu"] = x.device_cpu;
      j["queue_node"] = x.queue_node;
      j["local"] = x.local;
      j["area"] = x.area;
      j["batch"] = o.batch;
      j["median_ns"] = round_to(x.median_ns, 0.1);
      j["p99_ns"] = round_to(x.p99_ns, 0.1);
      j["ratio"] = round_to(x.ratio, 0.001);
      if (!r.note.empty()) j["note"] = r.note;
      emit(j);
    }
  } else {
    std::printf("numacma bench cmdq: batches of %u commands (16 bytes) ending in SYNC; round trip until\n"
                "the completion word is seen; ratio = median / median with the queue on the device's node\n",
                o.batch);
    if (!r.note.empty()) std::printf("%s\n", r.note.c_str());
    std::printf("\n");
    Table t({"driver (node/cpu)", "device (node/cpu)", "queue node", "area", "median ns", "p99 ns", "ratio"});
    for (const auto& x : r.results)
      t.add({std::to_string(x.driver_node) + "/" + std::to_string(x.driver_cpu),
             std::to_string(x.device_node) + "/" + std::to_string(x.device_cpu),
             std::to_string(x.queue_node) + (x.local ? " (local)" : ""), x.area, num(x.median_ns), num(x.p99_ns),
             num(x.ratio, "%.2fx")});
    t.print();
  }
}
void run_shared(const BenchArgs& a) {
  bench::SharedOptions o;
  o.quick = a.quick;
  o.backing = a.backing;
  o.repetitions = a.reps;
  o.kills = a.kills;
  o.busy = !a.no_busy;
  const bench::SharedReport r = bench::run_shared(o);
  const bool json = a.json || a.json_all;
  if (json) {
    for (const auto& x : r.alloc) {
      ojson j;
      j["bench"] = "shared";
      j["case"] = "alloc";
      j["setup"] = x.setup;
      j["size"] = x.size;
      j["align"] = x.align;
      put_timing(j, x.skipped, x.median_ns, x.p99_ns, x.ratio);
      if (x.setup == "attached+busy" && !x.skipped) j["other_pairs_per_s"] = std::round(x.other_pairs_per_s);
      j["skipped"] = x.skipped;
      if (x.skipped) j["reason"] = x.reason;
      j["config"] = x.config;
      emit(j);
    }
    for (const auto& x : r.recovery) {
      ojson j;
      j["bench"] = "shared";
      j["case"] = "recovery";
      j["what"] = x.what;
      j["area_bytes"] = x.area_bytes;
      j["buffers"] = x.buffers;
      j["pages"] = x.pages;
      j["recovered_locks"] = x.recovered_locks;
      j["kills"] = x.samples;
      if (x.skipped) {
        j["median_ns"] = nullptr;
        j["p99_ns"] = nullptr;
      } else {
        j["median_ns"] = round_to(x.median_ns, 1);
        j["p99_ns"] = round_to(x.p99_ns, 1);
        if (x.inner_median_ns > 0) j["keeper_median_ns"] = round_to(x.inner_median_ns, 1);
      }
      j["skipped"] = x.skipped;
      if (x.skipped) j["reason"] = x.reason;
      j["config"] = x.config;
      emit(j);
    }
  } else {
    const unsigned rounds = a.reps ? a.reps : (a.quick ? 9 : 101);
    std::printf("numacma bench shared: bench alloc's numacma loop (1024 live buffers, free + re-allocate in\n"
                "random order, seed 42, ns per alloc+free pair, %u rounds) on a private pool and on a reserved\n"
                "pool attached; run directory %s (removed at the end);\n"
                "ratio = median / private median (same size); targets: attached <= 1.1x private, with a\n"
                "second process allocating flat out <= 1.5x\n\n",
                rounds, r.run_dir.empty() ? "-" : r.run_dir.c_str());
    const bool alloc_out = !r.alloc.empty() && std::all_of(r.alloc.begin(), r.alloc.end(), [](const auto& x) {
      return x.unavailable;
    });
    if (alloc_out) {
      std::printf("alloc: skipped: %s\n", r.alloc.front().reason.c_str());
    } else if (!r.alloc.empty()) {
      std::printf("configurations (at %s):\n", human_size(r.alloc.back().size).c_str());
      for (const auto& x : r.alloc)
        if (x.size == r.alloc.back().size) std::printf("  %-14s %s\n", x.setup.c_str(), x.config.c_str());
      std::printf("\n");
      Table t({"setup", "size", "align", "median ns", "p99 ns", "ratio", "note"});
      for (const auto& x : r.alloc) {
        if (x.skipped) {
          t.add({x.setup, human_size(x.size), human_size(x.align), "-", "-", "-", "skipped: " + x.reason});
          continue;
        }
        std::string note;
        if (x.setup == "attached") note = x.ratio <= 1.1 ? "target met" : "target MISSED";
        if (x.setup == "attached+busy") note = x.ratio <= 1.5 ? "target met; " : "target MISSED; ";
        if (x.setup == "attached+busy") note += "the other: " + num(x.other_pairs_per_s / 1e6, "%.2f") + " M pairs/s";
        t.add({x.setup, human_size(x.size), human_size(x.align), num(x.median_ns), num(x.p99_ns),
               num(x.ratio, "%.2fx"), note});
      }
      t.print();
    }
    std::printf("\nrecovery: a reserved 64 MiB area; a child SIGKILLed while parked inside an allocation, holding\n"
                "the area lock; a new child per kill; timed in the parent from the child's death (waitpid) until\n"
                "numacma::reap returns (the keeper answers after it has given the dead child's buffers back;\n"
                "inner: the keeper's own time for that); locks repaired: the area's recoveries counter; target:\n"
                "under 1 ms\n\n");
    const bool rec_out = !r.recovery.empty() && std::all_of(r.recovery.begin(), r.recovery.end(), [](const auto& x) {
      return x.unavailable;
    });
    if (rec_out) {
      std::printf("recovery: skipped: %s\n", r.recovery.front().reason.c_str());
    } else {
      for (const auto& x : r.recovery) std::printf("  %-14s %s\n", x.what.c_str(), x.config.c_str());
      std::printf("\n");
      Table rt({"case", "buffers", "memory", "locks repaired", "kills", "median us", "p99 us", "inner us", "note"});
      for (const auto& x : r.recovery) {
        if (x.skipped) {
          rt.add({x.what, "-", "-", "-", std::to_string(x.samples), "-", "-", "-", "skipped: " + x.reason});
          continue;
        }
        rt.add({x.what, std::to_string(x.buffers), human_pages(x.pages), std::to_string(x.recovered_locks),
                std::to_string(x.samples), num(x.median_ns / 1e3), num(x.p99_ns / 1e3),
                x.inner_median_ns > 0 ? num(x.inner_median_ns / 1e3) : "-",
                x.what == "reap" ? (x.median_ns < 1e6 ? "target met" : "target MISSED") : ""});
      }
      rt.print();
    }
  }
  if (!r.note.empty()) std::fprintf(stderr, "numacma bench shared: %s\n", r.note.c_str());
  if (!r.ok) return failure("bench shared", r.error);
  for (const auto& x : r.alloc)
    if (x.skipped && !x.unavailable) return failure("bench shared", x.setup + " could not run: " + x.reason);
  for (const auto& x : r.recovery)
    if (x.skipped && !x.unavailable) return failure("bench shared", "recovery " + x.what + ": " + x.reason);
}
#else
void not_built(const char* sub) {
  failure(std::string("bench ") + sub, "built without benchmarks (configure with NUMACMA_BUILD_BENCH=ON)");
}
void run_alloc(const BenchArgs& a) {
  std::vector<std::string> bdfs;
  if (vfio_bdfs("bench alloc", a, &bdfs)) not_built("alloc");
}
void run_pool(const BenchArgs&) { not_built("pool"); }
void run_scaling(const BenchArgs&) { not_built("scaling"); }
void run_reserve(const BenchArgs&) { not_built("reserve"); }
void run_cmdq(const BenchArgs& a) {
  std::vector<std::string> bdfs;
  if (vfio_bdfs("bench cmdq", a, &bdfs)) not_built("cmdq");
}
void run_shared(const BenchArgs&) { not_built("shared"); }
#endif

/** " (default N, --quick M)" of a help line. */
std::string defaults(const bench::Reps& r) {
  return " (default " + std::to_string(r.normal) + ", --quick " + std::to_string(r.quick) + ")";
}

}  // namespace

void register_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "allocator benchmarks: alloc | pool | scaling | reserve | cmdq | shared");
  cmd->require_subcommand(1);
  cmd->add_flag("--json", a->json_all, "one JSON object a line (for every subcommand)");

  auto common = [&](CLI::App* s) {
    s->add_flag("--json", a->json, "one JSON object a line instead of tables");
    s->add_flag("--quick", a->quick, "a few repetitions only (a few seconds)");
  };
  CLI::App* alloc = cmd->add_subcommand(
      "alloc", "ns per alloc+free pair, 1024 live buffers of 4K..256K: numacma vs dpdk (rte_malloc aligned as A6, "
               "at 64 bytes, memzones), glibc, libnuma");
  common(alloc);
  alloc->add_option("--plot", a->plot, "also write an SVG bar chart to this file");
  alloc->add_option("--backing", a->backing, "numacma's backing (default sim)")
      ->check(CLI::IsMember({"sim", "anon", "hugetlb", "auto"}));
  alloc->add_option("--sysfs-root", a->sysfs_root, "topology for the numacma pool (default /sys)");
  alloc->add_option("--peer", a->peers,
                    "only these peers (numacma, numacma-nozero, dpdk, dpdk-align64, dpdk-zmalloc, dpdk-memzone, "
                    "glibc, libnuma); repeatable")
      ->check(CLI::IsMember({"numacma", "numacma-nozero", "dpdk", "dpdk-align64", "dpdk-zmalloc", "dpdk-memzone",
                             "glibc", "libnuma"}));
  alloc->add_option("--reps", a->reps, "rounds of " + std::to_string(bench::kLive) + " pairs" + defaults(bench::kAllocRounds));
  alloc->add_option("--pool", a->pool_name,
                    "numacma's rows on the shared pool NAME (Pool::attach; numacma reserve) instead of its own");
  alloc->add_option("--vfio", a->vfio,
                    "BDF bound to vfio-pci: numacma's pool in vfio mode (needs a non-sim --backing; repeatable)");
  alloc->callback([a] { run_alloc(*a); });

  CLI::App* pool = cmd->add_subcommand(
      "pool", "ns per alloc+free pair of 64 B..4 KiB objects, 1024 live per thread, 1 and 2 threads: "
              "numacma DmaPool vs rte_mempool, glibc malloc");
  common(pool);
  pool->add_option("--plot", a->plot, "also write an SVG bar chart to this file");
  pool->add_option("--backing", a->backing, "backing of numacma's pool (default sim)")
      ->check(CLI::IsMember({"sim", "anon", "hugetlb", "auto"}));
  pool->add_option("--sysfs-root", a->sysfs_root, "topology for the numacma pool (default /sys)");
  pool->add_option("--pool", a->pool_name,
                   "the DmaPool over the shared pool NAME (Pool::attach; numacma reserve) instead of its own");
  pool->add_option("--peer", a->peers, "only these peers (numacma, dpdk-mempool, glibc); repeatable")
      ->check(CLI::IsMember({"numacma", "dpdk-mempool", "glibc"}));
  pool->add_option("--reps", a->reps,
                   "measured rounds of " + std::to_string(bench::kLive) + " pairs per thread" + defaults(bench::kPoolRounds));
  pool->callback([a] { run_pool(*a); });

  CLI::App* scaling = cmd->add_subcommand(
      "scaling", "alloc+free on a nearly full, fragmented area: 64 MiB vs 64 GiB");
  common(scaling);
  scaling->callback([a] { run_scaling(*a); });

  CLI::App* reserve = cmd->add_subcommand(
      "reserve", "reserve + populate " + std::to_string(bench::kReserveMiB.normal >> 10) + " GiB (--quick: " +
                     std::to_string(bench::kReserveMiB.quick) + " MiB): numacma vs plain mmap");
  common(reserve);
  reserve->add_flag("--grow-hugepages", a->grow_hugepages,
                    "root: raise /proc/sys/vm/nr_hugepages for the run and restore it afterwards");
  reserve->add_option("--reps", a->reps, "repetitions" + defaults(bench::kReserveReps));
  reserve->callback([a] { run_reserve(*a); });

  CLI::App* cmdq = cmd->add_subcommand(
      "cmdq", "command-queue SYNC round trip, queue on the device's node vs every other node");
  common(cmdq);
  cmdq->add_option("--batch", a->batch,
                   "commands per batch, the last one SYNC (default " + std::to_string(bench::kCmdqBatch) + ")")
      ->check(CLI::Range(2, 256));
  cmdq->add_option("--backing", a->cmdq_backing, "backing of the queue's pool (default auto)")
      ->check(CLI::IsMember({"anon", "hugetlb", "auto"}));
  cmdq->add_option("--rounds", a->reps, "batches" + defaults(bench::kCmdqRounds));
  cmdq->add_option("--vfio", a->vfio, "BDF bound to vfio-pci: the queue's pool in vfio mode (repeatable)");
  cmdq->callback([a] { run_cmdq(*a); });

  CLI::App* shared = cmd->add_subcommand(
      "shared", "reserved pools: alloc+free pairs attached vs private (1024 live, 4K..256K; a second process "
                "idle or busy), and recovery of a 64 MiB area after a SIGKILL inside an update");
  common(shared);
  shared->add_option("--backing", a->backing, "backing of both pools (default sim)")
      ->check(CLI::IsMember({"sim", "anon", "hugetlb", "auto"}));
  shared->add_option("--reps", a->reps,
                     "alloc rounds of " + std::to_string(bench::kLive) + " pairs" + defaults(bench::kAllocRounds));
  shared->add_option("--kills", a->kills, "children killed per recovery case" + defaults(bench::kSharedKills))
      ->check(CLI::Range(1, 100000));
  shared->add_flag("--no-busy", a->no_busy, "leave out the row with a second process allocating");
  shared->callback([a] { run_shared(*a); });
}

}  // namespace numacma::cli
