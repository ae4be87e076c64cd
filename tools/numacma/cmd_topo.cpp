// `numacma topo`: nodes (CPUs, memory, free hugepages), the distance matrix
// and the PCI devices with their nodes, IOMMU groups and bound drivers, read
// from a sysfs root.
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_util.hpp"
#include "commands.hpp"
#include "topology/topology.hpp"

namespace numacma::cli {
namespace {

struct TopoArgs {
  std::string sysfs_root = "/sys";
  bool json = false;
};

const char* noiommu_mode_name(topo::Topology::NoIommuMode m) {
  switch (m) {
    case topo::Topology::NoIommuMode::on: return "on";
    case topo::Topology::NoIommuMode::off: return "off";
    case topo::Topology::NoIommuMode::absent: break;
  }
  return "absent";
}

nlohmann::json to_json(const topo::Topology& t) {
  using nlohmann::json;
  json nodes = json::array(), dist = json::array(), pci = json::array();
  for (const auto& n : t.nodes()) {
    json hp = json::array();
    for (const auto& h : n.hugepages)
      hp.push_back({{"page_bytes", h.page_bytes}, {"total", h.total}, {"free", h.free}});
    nodes.push_back({{"node", n.id},
                     {"has_memory", n.has_memory},
                     {"cpus", n.cpus},
                     {"mem_total", n.mem.total_bytes},
                     {"mem_free", n.mem.free_bytes},
                     {"hugepages", hp}});
    json row = json::array();
    for (const auto& m : t.nodes()) row.push_back(t.distance(n.id, m.id));
    dist.push_back(row);
  }
  for (const auto& d : t.pci_devices()) {
    pci.push_back({{"bdf", d.bdf},
                   {"numa_node", d.numa_node},
                   {"vendor", hex(d.vendor)},
                   {"device", hex(d.device)},
                   {"class", hex(d.class_code)},
                   {"iommu_group", d.iommu_group},
                   {"noiommu_group", d.noiommu_group},
                   {"driver", d.driver}});
  }
  return json{{"sysfs_root", t.root()}, {"nodes", nodes}, {"distances", dist}, {"pci", pci},
              {"vfio_noiommu_mode", noiommu_mode_name(t.vfio_noiommu_mode())}};
}

/** "0x8086:0x0d57": vendor and device as lspci shows them, 4 hex digits each. */
std::string vendor_device(const topo::PciDevice& d) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%04x:0x%04x", d.vendor & 0xffffu, d.device & 0xffffu);
  return buf;
}

/** "0x010802": the class code as sysfs writes it, 6 hex digits. */
std::string class_code(const topo::PciDevice& d) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%06x", d.class_code & 0xffffffu);
  return buf;
}

void print_tables(const topo::Topology& t) {
  std::printf("NUMA topology from %s: %zu node(s)\n\n", t.root().c_str(), t.nodes().size());
  Table nodes({"node", "memory", "cpus", "hugepages free/total"});
  for (const auto& n : t.nodes()) {
    std::string hp;
    for (const auto& h : n.hugepages) {
      if (!hp.empty()) hp += "  ";
      hp += human_size(h.page_bytes) + ": " + std::to_string(h.free) + "/" + std::to_string(h.total);
    }
    nodes.add({std::to_string(n.id), n.has_memory ? human_size(n.mem.total_bytes) : "none",
               cpulist_text(n.cpus), hp.empty() ? "-" : hp});
  }
  nodes.print();
  std::printf("\ndistances\n");
  std::vector<std::string> head{"node"};
  for (const auto& n : t.nodes()) head.push_back(std::to_string(n.id));
  Table dist(head);
  for (const auto& n : t.nodes()) {
    std::vector<std::string> row{std::to_string(n.id)};
    for (const auto& m : t.nodes()) row.push_back(std::to_string(t.distance(n.id, m.id)));
    dist.add(row);
  }
  dist.print();
  std::printf("\nPCI devices: %zu\n", t.pci_devices().size());
  if (!t.pci_devices().empty()) {
    Table pci({"device", "node", "vendor:device", "class", "iommu group", "driver"});
    for (const auto& d : t.pci_devices())
      pci.add({d.bdf, d.numa_node < 0 ? "-1 (none)" : std::to_string(d.numa_node),
               vendor_device(d), class_code(d),
               d.iommu_group < 0 ? "-"
               : d.noiommu_group ? std::to_string(d.iommu_group) + " (no-IOMMU, UNSAFE)"
                                 : std::to_string(d.iommu_group),
               d.driver.empty() ? "-" : d.driver});
    pci.print();
  }
  if (t.vfio_noiommu_mode() == topo::Topology::NoIommuMode::on)
    std::printf("\nVFIO no-IOMMU mode is ON (vfio enable_unsafe_noiommu_mode=Y): UNSAFE. A device without an "
                "IOMMU that is bound to vfio-pci gets a no-IOMMU group, /dev/vfio/noiommu-N, through which "
                "its user can make it read and write all of memory (numacma: --iommu noiommu)\n");
}

void run(const TopoArgs& a) {
  Result<topo::Topology> t = topo::Topology::from_sysfs(a.sysfs_root);
  if (!t) return failure("topo", t.error().message);
  if (a.json) {
    std::printf("%s\n", to_json(*t).dump().c_str());
  } else {
    print_tables(*t);
  }
}

}  // namespace

void register_topo(CLI::App& app) {
  auto args = std::make_shared<TopoArgs>();
  CLI::App* sub = app.add_subcommand(
      "topo", "NUMA nodes, distances, PCI devices with their nodes, IOMMU groups and drivers");
  sub->add_option("--sysfs-root", args->sysfs_root, "sysfs root to read (default /sys)");
  sub->add_flag("--json", args->json, "one JSON object instead of tables");
  sub->callback([args] { run(*args); });
}

}  // namespace numacma::cli
