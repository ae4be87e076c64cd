// tools/numacma/doctor.hpp — `numacma doctor`'s judgement, as pure functions
// of what the host shows (os::HostFiles, the Topology, the reservations):
// nothing here reads a file or makes a system call, so the unit tests feed
// fixture trees and hand-made facts (tests/unit/doctor_test.cpp).
//
//   HostFiles + Topology + reservations --diagnose--> Report
//     checks:  nodes, hugepages, hugetlbfs, iommu, interrupt_remapping,
//              vfio_pci, dev_vfio, memlock, pagemap, kernel_cma, shared_pools
//     dma_usable = vfio  (IOMMU groups + vfio-pci + /dev/vfio access)
//               || physical (pagemap readable + free hugepages)
//   Report --doctor_text / doctor_json--> what the command prints
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "numacma/result.hpp"
#include "os/host.hpp"
#include "topology/topology.hpp"

namespace numacma::cli::doctor {

/** ok: passed. failed: does not hold, `fix` says what would. unknown: the
 *  host does not tell (`fix` says how to find out). note: does not hold but
 *  numacma does not need it (`fix` for those who do). */
enum class State { ok, failed, unknown, note };
const char* state_name(State s) noexcept;  // "ok", "failed", "unknown", "note"

struct Check {
  std::string name;    ///< stable: "hugepages", "iommu", ...
  State state = State::ok;
  std::string detail;  ///< what was found
  std::string fix;     ///< "" when nothing is to be done
  /** JSON's "ok": the check passed, or what it found does not matter to numacma (note). */
  bool ok() const noexcept { return state == State::ok || state == State::note; }
};

struct Input {
  os::HostPaths paths;
  bool fixture = false;  ///< a root other than this host's: the report says so
  os::HostFiles files;
  Result<topo::Topology> topology = make_error(Errc::not_found, "not read");
  Result<std::vector<std::string>> pools = std::vector<std::string>{};
  std::string run_dir;   ///< where the reservations are ($NUMACMA_RUN_DIR)
};

struct Report {
  std::vector<Check> checks;
  bool via_vfio = false;      ///< IOMMU groups, vfio-pci available, /dev/vfio read-write
  bool via_physical = false;  ///< pagemap readable and free hugepages on some node
  bool dma_usable() const noexcept { return via_vfio || via_physical; }
  std::string summary;        ///< the last line: could a device DMA here, and what to do if not
};

Report diagnose(const Input& in);

/** The exact line(s) that would give each node with memory free 2 MiB
 *  hugepages, under `sysfs_root`: "echo 512 > <root>/devices/system/node/
 *  node0/hugepages/hugepages-2048kB/nr_hugepages" (a node's total raised by
 *  512, or by an eighth of its memory when that is less; lines joined by
 *  "; "). Only nodes without free hugepages; "" when every node has some.
 *  `numacma demo` gives it too when its addresses are not device-usable. */
std::string hugepages_fix(const topo::Topology& t, const std::string& sysfs_root);

/** The boot flag that turns the IOMMU on for this CPU (cpuinfo): "intel_iommu=on",
 *  "amd_iommu=on", the arm64 advice, or both x86 flags when unknown. */
std::string iommu_fix(const std::string& cpuinfo, const std::string& cmdline);

/** One line per check ("ok      name  detail", a "fix:" line under a
 *  failed one), then the summary. */
std::string doctor_text(const Input& in, const Report& r);

/** {"checks":[{"name","ok","detail","fix","state"}],"dma_usable","dma_paths":[..],
 *   "summary","fixture","sysfs_root","proc_root","dev_root","modules_root"}. */
nlohmann::ordered_json doctor_json(const Input& in, const Report& r);

}  // namespace numacma::cli::doctor
