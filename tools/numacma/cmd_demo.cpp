// `numacma demo`: the main job on this machine. Reserves the default plan
// ("cma=32M cma_pernuma=16M" unless --params says otherwise), allocates a
// coherent buffer for every PCI device and one per node, writes and checks
// each buffer, prints where each landed and the stats, frees everything and
// checks that every area is whole again (F3).
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_util.hpp"
#include "commands.hpp"
#include "pool/replay.hpp"
#include "pool_args.hpp"
#include "config/params.hpp"
#include "topology/topology.hpp"

namespace numacma::cli {
namespace {

struct DemoArgs {
  PoolArgs pool;
  std::string size_text = "64K";
  bool json = false;
};

struct Placed {
  std::string who;   // BDF or "node<N>"
  int want_node = kNoNode;
  DmaBuffer buf;
  std::string error;
};

bool touch(const DmaBuffer& b) {
  auto* p = static_cast<unsigned char*>(b.cpu());
  for (std::size_t i = 0; i < b.size(); i += 4096) p[i] = static_cast<unsigned char>(i >> 12);
  for (std::size_t i = 0; i < b.size(); i += 4096)
    if (p[i] != static_cast<unsigned char>(i >> 12)) return false;
  return true;
}

void run(const DemoArgs& a) {
  Result<std::uint64_t> size = config::parse_size(a.size_text);
  if (!size || *size == 0)
    return usage_error("demo", "--size '" + a.size_text + "': " +
                                   (size ? std::string("must be > 0") : size.error().message));
  std::optional<Pool> pool = create_pool("demo", a.pool);
  if (!pool) return;
  // An attached pool may hold other processes' buffers: "whole" then means
  // back to what it held before the demo.
  std::vector<std::uint64_t> used_before;
  for (const AreaReport& r : pool->stats().areas) used_before.push_back(a.pool.pool_name.empty() ? 0 : r.used);
  Result<topo::Topology> topo = topo::Topology::from_sysfs(a.pool.sysfs_root);
  if (!topo) return failure("demo", topo.error().message);

  std::vector<Placed> placed;
  for (const auto& d : topo->pci_devices()) {
    Placed p{d.bdf, d.numa_node, {}, {}};
    Result<Device> dev = Device::from_pci(d.bdf, *pool);
    if (!dev) {
      p.error = dev.error().message;
    } else if (Result<DmaBuffer> b = pool->alloc_coherent(*dev, *size)) {
      p.buf = std::move(*b);
    } else {
      p.error = b.error().message;  // starts with what went wrong ("no memory: ...")
    }
    placed.push_back(std::move(p));
  }
  for (const auto& n : topo->nodes()) {
    Placed p{"node" + std::to_string(n.id), n.id, {}, {}};
    if (Result<DmaBuffer> b = pool->alloc_coherent(Device::on_node(n.id, p.who), *size)) {
      p.buf = std::move(*b);
    } else {
      p.error = b.error().message;  // starts with what went wrong ("no memory: ...")
    }
    placed.push_back(std::move(p));
  }
  bool all_ok = true;
  nlohmann::json bufs = nlohmann::json::array();
  Table tab({"for", "device node", "area", "buffer node", "dma_addr", "size", "served", "dma",
             "check"});
  for (const Placed& p : placed) {
    if (!p.buf) {
      all_ok = false;
      bufs.push_back({{"for", p.who}, {"device_node", p.want_node}, {"ok", false}, {"error", p.error}});
      tab.add({p.who, std::to_string(p.want_node), "FAILED", "-", "-", "-", p.error, "-", "-"});
      continue;
    }
    const bool ok = touch(p.buf);
    all_ok = all_ok && ok;
    bufs.push_back({{"for", p.who},
                    {"device_node", p.want_node},
                    {"ok", ok},
                    {"area", p.buf.area_name()},
                    {"node", p.buf.node()},
                    {"dma_addr", hex(p.buf.dma_addr())},
                    {"size", p.buf.size()},
                    {"served", served_name(p.buf.served())},
                    {"iova", p.buf.iova()},
                    {"contiguous", p.buf.contiguous()}});
    tab.add({p.who, std::to_string(p.want_node), p.buf.area_name(), std::to_string(p.buf.node()),
             hex(p.buf.dma_addr()), human_size(p.buf.size()), served_name(p.buf.served()),
             p.buf.iova() ? "iova" : "phys", ok ? "written+read" : "MISMATCH"});
  }
  nlohmann::json stats = replay::stats_to_json(*pool);
  if (!a.json) {
    if (!a.pool.pool_name.empty())
      std::printf("numacma demo: attached to reservation '%s', %zu node(s), %zu PCI device(s)\n\n",
                  a.pool.pool_name.c_str(), topo->nodes().size(), topo->pci_devices().size());
    else
      std::printf("numacma demo: params \"%s\", backing %s, policy %s, %zu node(s), %zu PCI device(s)\n\n",
                  a.pool.params.c_str(), a.pool.backing.c_str(), a.pool.policy.c_str(),
                  topo->nodes().size(), topo->pci_devices().size());
    tab.print();
    std::printf("\n");
    print_stats_tables(*pool);
  }
  placed.clear();  // every buffer back to its own area
  bool whole = true;
  const std::vector<AreaReport> after = pool->stats().areas;
  for (std::size_t i = 0; i < after.size(); ++i) {
    const AreaReport& r = after[i];
    if (!a.pool.pool_name.empty()) {
      whole = whole && i < used_before.size() && r.used == used_before[i];
      continue;
    }
    whole = whole && r.used == 0 && r.alloc_pages_success == r.release_pages_success &&
            (r.segments != 1 || r.maxchunk == r.pages);
  }
  if (a.json) {
    std::printf("%s\n", nlohmann::json{{"op", "demo"},
                                       {"pool", a.pool.pool_name},
                                       {"params", a.pool.params},
                                       {"backing", a.pool.backing},
                                       {"buffers", bufs},
                                       {"stats", stats},
                                       {"all_returned", whole}}
                            .dump()
                            .c_str());
  } else {
    std::printf("\nafter freeing: every buffer returned to its own area: %s\n", whole ? "yes" : "NO");
  }
  if (!all_ok || !whole) {
    std::fflush(stdout);
    failure("demo", !whole ? "areas are not whole after freeing every buffer"
                           : "some buffers could not be allocated or checked");
  }
}

}  // namespace

void register_demo(CLI::App& app) {
  auto args = std::make_shared<DemoArgs>();
  CLI::App* sub = app.add_subcommand(
      "demo", "reserve the default plan, allocate a buffer per PCI device and per node, show where each landed");
  add_pool_options(sub, args->pool, "auto");
  args->pool.params = "cma=32M cma_pernuma=16M";
  sub->add_option("--params", args->pool.params, "kernel-style parameters (default \"cma=32M cma_pernuma=16M\")");
  sub->add_option("--size", args->size_text, "bytes per buffer, K/M/G suffixes (default 64K)");
  sub->add_flag("--json", args->json, "one JSON object instead of tables");
  sub->callback([args] { run(*args); });
}

}  // namespace numacma::cli
