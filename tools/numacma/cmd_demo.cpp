// `numacma demo`: the main job on this machine. Reserves the default plan
// ("cma=32M cma_pernuma=16M" unless --params says otherwise), allocates a
// coherent buffer for every PCI device and one per node, writes and checks
// each buffer, prints where each landed, what kind of address it carries
// and the stats, frees everything and checks that every area is whole again
// (F3). The last line says whether a device could use these addresses here,
// and what to do when not. `--example 4-node` runs the same job on a
// bundled, simulated multi-node machine, so that a one-node host shows
// per-node placement too.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backing/backing.hpp"
#include "cli_util.hpp"
#include "commands.hpp"
#include "config/params.hpp"
#include "doctor.hpp"
#include "os/os.hpp"
#include "pool/replay.hpp"
#include "pool_args.hpp"
#include "topology/topology.hpp"

namespace numacma::cli {
namespace {

struct DemoArgs {
  PoolArgs pool;
  std::string size_text = "64K";
  std::string example;
  bool json = false;
};

/** The bundled example machines: the fixtures of tests/data, installed
 *  under <datadir>/numacma/examples (tools/numacma/CMakeLists.txt). */
struct Example {
  const char* name;
  const char* fixture;
  const char* arch;
  const char* what;
};
constexpr Example kExamples[] = {
    {"2-node", "x86-2s", "x86_64", "a 2-socket x86 server"},
    {"4-node", "arm64-4n", "arm64", "a 4-node arm64 server"},
    {"8-node", "epyc-8n", "x86_64", "an 8-node 2-socket EPYC (NPS4)"},
};

/** The example's tree: installed beside the binary, else in the source tree. */
std::string example_dir(const Example& e) {
  if (Result<std::string> exe = os::read_link("/proc/self/exe"); exe) {
    const std::string bin = exe->substr(0, exe->rfind('/'));
    const std::string installed = bin + "/" NUMACMA_EXAMPLES_FROM_BIN "/" + e.fixture;
    if (os::exists(installed + "/devices/system/node")) return installed;
  }
  return std::string(NUMACMA_SOURCE_DATA) + "/" + e.fixture;
}

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

/** What a buffer's DMA address is, in words. */
const char* address_words(const Pool& pool, const DmaBuffer& b) {
  switch (pool.address_kind()) {
    case AddressKind::iova_vfio: return "VFIO IOVA";
    case AddressKind::iova_external: return "external IOVA";
    case AddressKind::simulated: return "simulated";
    default: return b.iova() ? "virtual" : "physical";
  }
}

/** The last line: could a device use these addresses here, and if not, what to do. */
std::string device_line(const Pool& pool, const DemoArgs& a, const topo::Topology& t, std::size_t usable,
                        std::size_t placed) {
  const std::string root = pool.sysfs_root();
  switch (pool.address_kind()) {
    case AddressKind::iova_vfio:
      return "a device could use these addresses here: they are IOVAs mapped in the VFIO container of " +
             [&] {
               std::string d;
               for (const std::string& b : a.pool.vfio) d += (d.empty() ? "" : ", ") + b;
               return d;
             }();
    case AddressKind::iova_external:  // the demo never hands its pool to another framework
      return "a device of the framework that owns the IOMMU could use these addresses (external IOVAs)";
    case AddressKind::physical:
      return "a device could use these addresses here: they are physical addresses (with the IOMMU off or in "
             "passthrough; behind a translating IOMMU, bind the device and use --vfio BDF)";
    case AddressKind::simulated:
      if (!a.example.empty())
        return "NO device can use these addresses: they are simulated, on an example machine, not this one. "
               "On this machine: numacma demo (numacma doctor says whether a device could DMA here)";
      if (!backing::is_host_sysfs(root))
        return "NO device can use these addresses: they are simulated (backing sim over the fixture " + root +
               "). On this machine: numacma demo (numacma doctor says whether a device could DMA here)";
      return "NO device can use these addresses: they are simulated (backing sim). For memory a device can "
             "use: numacma demo --backing auto (numacma doctor says whether a device could DMA here)";
    case AddressKind::virtual_only: break;
  }
  const std::string hp = doctor::hugepages_fix(t, root);
  std::string s = "NO device could use these addresses here: they are virtual addresses (IOVA = VA) that no "
                  "IOMMU maps";
  if (usable != 0)
    s += " (" + std::to_string(usable) + " of " + std::to_string(placed) + " buffers carry physical addresses)";
  return s + ". Fix: " + (hp.empty() ? "" : hp + ", then ") +
         "run as root with --backing hugetlb (physical addresses), or bind a device (numacma vfio bind BDF) "
         "and add --vfio BDF; numacma doctor checks this host";
}

void run(DemoArgs a, const CLI::App& sub) {
  Result<std::uint64_t> size = config::parse_size(a.size_text);
  if (!size || *size == 0)
    return usage_error("demo", "--size '" + a.size_text + "': " +
                                   (size ? std::string("must be > 0") : size.error().message));
  const Example* ex = nullptr;
  if (!a.example.empty()) {
    for (const Example& e : kExamples)
      if (a.example == e.name) ex = &e;
    for (const char* opt : {"--sysfs-root", "--pool", "--vfio", "--arch"})
      if (sub.count(opt) > 0) return usage_error("demo", std::string("--example and ") + opt + ": choose one");
    if (sub.count("--backing") > 0 && a.pool.backing != "sim" && a.pool.backing != "auto")
      return usage_error("demo", "--example is simulated: not with --backing " + a.pool.backing);
    a.pool.sysfs_root = example_dir(*ex);
    a.pool.arch = ex->arch;
    a.pool.backing = "sim";
  }
  std::optional<Pool> pool = create_pool("demo", a.pool);
  if (!pool) return;
  // An attached pool may hold other processes' buffers: "whole" then means
  // back to what it held before the demo.
  std::vector<std::uint64_t> used_before;
  for (const AreaReport& r : pool->stats().areas) used_before.push_back(a.pool.pool_name.empty() ? 0 : r.used);
  // The pool's own topology: the tree it was made over (--pool: the reservation's).
  Result<topo::Topology> topo = topo::Topology::from_sysfs(pool->sysfs_root());
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
  std::size_t usable = 0, allocated = 0;
  nlohmann::json bufs = nlohmann::json::array();
  Table tab({"for", "device node", "area", "buffer node", "dma_addr", "size", "served", "address", "check"});
  for (const Placed& p : placed) {
    if (!p.buf) {
      all_ok = false;
      bufs.push_back({{"for", p.who}, {"device_node", p.want_node}, {"ok", false}, {"error", p.error}});
      tab.add({p.who, std::to_string(p.want_node), "FAILED", "-", "-", "-", p.error, "-", "-"});
      continue;
    }
    const bool ok = touch(p.buf);
    all_ok = all_ok && ok;
    ++allocated;
    usable += p.buf.device_usable() ? 1 : 0;
    bufs.push_back({{"for", p.who},
                    {"device_node", p.want_node},
                    {"ok", ok},
                    {"area", p.buf.area_name()},
                    {"node", p.buf.node()},
                    {"dma_addr", hex(p.buf.dma_addr())},
                    {"size", p.buf.size()},
                    {"served", served_name(p.buf.served())},
                    {"iova", p.buf.iova()},
                    {"contiguous", p.buf.contiguous()},
                    {"device_usable", p.buf.device_usable()}});
    tab.add({p.who, std::to_string(p.want_node), p.buf.area_name(), std::to_string(p.buf.node()),
             hex(p.buf.dma_addr()), human_size(p.buf.size()), served_name(p.buf.served()),
             address_words(*pool, p.buf), ok ? "written+read" : "MISMATCH"});
  }
  const std::string device = device_line(*pool, a, *topo, usable, allocated);
  // The backing in force: a private pool's (auto over a fixture is sim); an
  // attached pool's areas' own.
  std::string backing = a.pool.backing;
  if (!a.pool.pool_name.empty()) {
    backing.clear();
    for (const AreaReport& r : pool->stats().areas)
      if (backing.find(r.backing) == std::string::npos) backing += (backing.empty() ? "" : ", ") + r.backing;
  } else if (Result<std::string> b = backing::backing_for_root(a.pool.backing, pool->sysfs_root()); b) {
    backing = *b;
  }
  nlohmann::json stats = replay::stats_to_json(*pool);
  if (!a.json) {
    if (ex != nullptr)
      std::printf("numacma demo --example %s: %s, SIMULATED (%s), not this machine\n", ex->name, ex->what,
                  pool->sysfs_root().c_str());
    if (!a.pool.pool_name.empty())
      std::printf("numacma demo: attached to reservation '%s' (over %s), %zu node(s), %zu PCI device(s)\n\n",
                  a.pool.pool_name.c_str(), pool->sysfs_root().c_str(), topo->nodes().size(),
                  topo->pci_devices().size());
    else
      std::printf("numacma demo: params \"%s\", backing %s, policy %s, %zu node(s), %zu PCI device(s), "
                  "addresses %s\n\n",
                  a.pool.params.c_str(), backing.c_str(), a.pool.policy.c_str(), topo->nodes().size(),
                  topo->pci_devices().size(), address_kind_name(pool->address_kind()));
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
                                       {"example", a.example},
                                       {"sysfs_root", pool->sysfs_root()},
                                       {"params", a.pool.params},
                                       {"backing", backing},
                                       {"address_kind", address_kind_name(pool->address_kind())},
                                       {"device_usable", pool->device_usable()},
                                       {"device", device},
                                       {"buffers", bufs},
                                       {"stats", stats},
                                       {"all_returned", whole}}
                            .dump()
                            .c_str());
  } else {
    std::printf("\nafter freeing: every buffer returned to its own area: %s\n", whole ? "yes" : "NO");
    if (ex == nullptr && a.pool.pool_name.empty() && backing::is_host_sysfs(pool->sysfs_root()) &&
        topo->nodes().size() == 1)
      std::printf("this machine has one node: numacma demo --example 4-node shows per-node placement on a "
                  "simulated 4-node server\n");
    std::printf("devices: %s\n", device.c_str());
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
  sub->add_option("--example", args->example,
                  "run on a bundled, simulated machine instead of this one: 2-node, 4-node, 8-node")
      ->check(CLI::IsMember({"2-node", "4-node", "8-node"}));
  sub->add_flag("--json", args->json, "one JSON object instead of tables");
  sub->callback([args, sub] { run(*args, *sub); });
}

}  // namespace numacma::cli
