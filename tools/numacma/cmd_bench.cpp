// `numacma bench alloc|pool|scaling|reserve|cmdq|shared`: the allocator benchmarks, side
// by side with the peers (bench/lib, docs/bench.md). Every subcommand takes
// --json (one JSON object a line) and --quick (a few seconds at most). Each
// benchmark's rows (bench/lib/rows.hpp) are printed by the one renderer
// (bench/lib/render.cpp); this file holds the options and the exit status.
// Built without bench/ (NUMACMA_WITH_BENCH unset), the subcommands exist but
// fail with exit code 1.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

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
/** Prints a benchmark's rows: text tables, or one JSON object a line. */
void print(const BenchArgs& a, const bench::Output& out) {
  const std::string text = a.json || a.json_all ? bench::render_json(out) : bench::render_text(out);
  std::fputs(text.c_str(), stdout);
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

/** --plot FILE: the SVG; false after printing the failure. */
bool write_plot(const std::string& command, const BenchArgs& a, const std::string& svg) {
  if (a.plot.empty()) return true;
  if (Status w = os::write_new_file(a.plot, svg); !w) {
    failure(command, "--plot: " + w.error().message);
    return false;
  }
  if (!a.json && !a.json_all) std::printf("\nplot written to %s\n", a.plot.c_str());
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
  print(a, bench::alloc_output(o, r));
  if (!write_plot("bench alloc", a, bench::alloc_svg(r))) return;
  for (const auto& x : r.results)
    if (x.peer == "numacma" && x.skipped) return failure("bench alloc", "the numacma peer could not run (see its reason)");
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
  print(a, bench::pool_output(o, r));
  if (!write_plot("bench pool", a, bench::pool_svg(r))) return;
  for (const auto& x : r.results)
    if (x.peer == "numacma" && x.skipped)
      return failure("bench pool", "the numacma peer could not run: " + x.reason);
}

void run_scaling(const BenchArgs& a) {
  bench::ScalingOptions o;
  o.quick = a.quick;
  const bench::ScalingReport r = bench::run_scaling(o);
  print(a, bench::scaling_output(o, r));
  if (r.small.median_ns <= 0 || r.large.median_ns <= 0)
    failure("bench scaling", "the workload failed (an allocation did not fit, a free was refused, "
                             "or a round left a different number of holes)");
}

void run_reserve(const BenchArgs& a) {
  bench::ReserveOptions o;
  o.quick = a.quick;
  o.grow_hugepages = a.grow_hugepages;
  o.repetitions = a.reps;
  const bench::ReserveReport r = bench::run_reserve(o);
  print(a, bench::reserve_output(o, r));
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
  print(a, bench::cmdq_output(o, r));
}

void run_shared(const BenchArgs& a) {
  bench::SharedOptions o;
  o.quick = a.quick;
  o.backing = a.backing;
  o.repetitions = a.reps;
  o.kills = a.kills;
  o.busy = !a.no_busy;
  const bench::SharedReport r = bench::run_shared(o);
  print(a, bench::shared_output(o, r));
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
