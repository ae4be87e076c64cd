// `numacma vfio bind|unbind BDF`: hands a PCI device to vfio-pci (so that a
// pool made with --vfio BDF can map its areas for it) and gives it back to
// the driver it had. The sysfs protocol lives in src/vfio/bind.cpp; this
// prints what it did:
//   0000:05:00.0: nvme -> vfio-pci (group 7, /dev/vfio/7)
// A device in use (a disk mounted, swap, dm/md/LVM, an interface up) is
// refused before anything is written, naming each use; --force binds it
// anyway, but never the device of the root file system.
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_util.hpp"
#include "commands.hpp"
#include "topology/topology.hpp"
#include "vfio/bind.hpp"

namespace numacma::cli {
namespace {

struct VfioArgs {
  bool json_all = false;  // `numacma vfio --json <sub>`
  bool json = false;
  bool force = false;  // bind: although in use (never the root file system's device)
  std::string sysfs_root = "/sys";
  std::string proc_root = "/proc";  // bind: mountinfo, swaps, routes
  std::string bdf;
};

std::string shown(const std::string& driver) { return driver.empty() ? "(no driver)" : driver; }

void run(const VfioArgs& a, bool bind) {
  const std::string cmd = bind ? "vfio bind" : "vfio unbind";
  if (Result<std::string> bdf = topo::parse_bdf(a.bdf); !bdf) return usage_error(cmd, bdf.error().message);
  vfio::BindOptions o;
  o.sysfs_root = a.sysfs_root;
  o.force = a.force;
  o.proc_root = a.proc_root;
  Result<vfio::BindReport> r = bind ? vfio::bind(a.bdf, o) : vfio::unbind(a.bdf, o);
  if (!r) return failure(cmd, r.error().message);
  if (a.json || a.json_all) {
    nlohmann::json blocking = nlohmann::json::array();
    for (const vfio::GroupMember& m : r->blocking)
      blocking.push_back({{"bdf", m.bdf}, {"driver", m.driver}});
    nlohmann::json j{{"op", bind ? "bind" : "unbind"},
                     {"bdf", r->bdf},
                     {"from", r->from},
                     {"to", r->to},
                     {"changed", r->changed},
                     {"iommu_group", r->iommu_group},
                     {"dev", r->dev}};
    if (bind) {
      j["group_viable"] = r->blocking.empty();
      j["blocking"] = blocking;
      j["in_use"] = r->in_use;  // what --force overrode; [] when nothing used it
    }
    j["note"] = r->note;
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::string line = r->bdf + ": ";
  if (bind && !r->changed)
    line += "already bound to vfio-pci, nothing to do";
  else
    line += shown(r->from) + " -> " + shown(r->to) + (r->changed ? "" : " (unchanged)");
  if (r->iommu_group >= 0 && (bind || r->to == "vfio-pci"))
    line += " (group " + std::to_string(r->iommu_group) + ", " + r->dev + ")";
  std::printf("%s\n", line.c_str());
  if (!r->note.empty()) std::printf("note: %s\n", r->note.c_str());
}

}  // namespace

void register_vfio(CLI::App& app) {
  auto a = std::make_shared<VfioArgs>();
  CLI::App* cmd = app.add_subcommand(
      "vfio", "bind a PCI device to vfio-pci, or give it back to its driver (needs root)");
  cmd->require_subcommand(1);
  cmd->add_flag("--json", a->json_all, "one JSON object (for either subcommand)");
  for (const bool bind : {true, false}) {
    CLI::App* sub = cmd->add_subcommand(
        bind ? "bind" : "unbind",
        bind ? "unbind BDF from its driver (remembered) and bind it to vfio-pci"
             : "unbind BDF from vfio-pci and give it back to the driver it had before bind");
    sub->add_option("bdf", a->bdf, "the device, DDDD:BB:DD.F or BB:DD.F (e.g. 0000:05:00.0, 05:00.0)")
        ->required();
    sub->add_option("--sysfs-root", a->sysfs_root, "sysfs root (default /sys)");
    sub->add_flag("--json", a->json, "one JSON object instead of a line");
    if (bind) {
      sub->add_option("--proc-root", a->proc_root,
                      "where mountinfo, swaps and routes are read to tell whether the device is in "
                      "use (default /proc)");
      sub->add_flag("--force", a->force,
                    "bind although the device is in use (a disk of it mounted, swap, dm/md/LVM; an "
                    "interface up or with addresses or routes): its users lose it now. Never the "
                    "device of the root file system");
    }
    sub->callback([a, bind] { run(*a, bind); });
  }
}

}  // namespace numacma::cli
