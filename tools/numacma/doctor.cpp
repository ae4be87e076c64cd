// tools/numacma/doctor.cpp — the checks of `numacma doctor` (doctor.hpp).
// Each check reads the facts, says what it found and, where it fails, the
// exact thing to do. Pure: text in, verdicts out.
#include "doctor.hpp"

#include <algorithm>
#include <cstdint>
#include <sstream>

#include "cli_util.hpp"

namespace numacma::cli::doctor {
namespace {

constexpr std::uint64_t k2M = 2ULL << 20;
constexpr unsigned kCapIpcLock = 14, kCapSysAdmin = 21;  // linux/capability.h
constexpr std::uint64_t kMemlockEnough = 64ULL << 20;    // the demo's plan and more

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

/** The value of "Key:  value" (meminfo, status) or "key\t: value" (cpuinfo)
 *  in /proc's files: the first line with that key; "" when absent. */
std::string field(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key, 0) != 0) continue;
    const std::size_t colon = line.find_first_not_of(" \t", key.size());
    if (colon == std::string::npos || line[colon] != ':') continue;
    const std::size_t v = line.find_first_not_of(" \t", colon + 1);
    return v == std::string::npos ? "" : line.substr(v);
  }
  return "";
}

/** Boot flags of the command line that matter here, in its order. */
std::vector<std::string> flags(const std::string& cmdline, std::initializer_list<const char*> keys) {
  std::vector<std::string> out;
  for (const std::string& w : words(cmdline))
    for (const char* k : keys)
      if (w.rfind(std::string(k) + "=", 0) == 0 || w == k) out.push_back(w);
  return out;
}

std::string join(const std::vector<std::string>& v, const std::string& sep = ", ") {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

/** CapEff of <proc>/self/status has `bit`; false when unknown. */
bool has_cap(const std::string& status, unsigned bit) {
  const std::string v = field(status, "CapEff");
  if (v.empty()) return false;
  try {
    return ((std::stoull(v, nullptr, 16) >> bit) & 1) != 0;
  } catch (const std::exception&) {
    return false;
  }
}

enum class Cpu { intel, amd, arm64, unknown };
Cpu cpu_of(const std::string& cpuinfo) {
  const std::string vendor = field(cpuinfo, "vendor_id");
  if (vendor == "GenuineIntel") return Cpu::intel;
  if (vendor == "AuthenticAMD" || vendor == "HygonGenuine") return Cpu::amd;
  if (!field(cpuinfo, "CPU implementer").empty()) return Cpu::arm64;
  return Cpu::unknown;
}

Check check_nodes(const Input& in) {
  if (!in.topology)
    return {"nodes", State::failed, in.topology.error().message,
            in.fixture ? "point --sysfs-root at a tree with devices/system/node" : "mount sysfs: mount -t sysfs sysfs /sys"};
  std::vector<std::string> mem;
  for (const topo::NodeInfo& n : in.topology->nodes())
    if (n.has_memory) mem.push_back("node" + std::to_string(n.id) + " " + human_size(n.mem.total_bytes));
  const std::string count = std::to_string(in.topology->nodes().size()) + " node(s), " +
                            std::to_string(mem.size()) + " with memory";
  if (mem.empty()) return {"nodes", State::failed, count, "no node has memory: nothing to reserve on"};
  if (mem.size() > 8) mem.resize(8), mem.push_back("...");
  return {"nodes", State::ok, count + ": " + join(mem), ""};
}

Check check_hugepages(const Input& in, bool& any_free) {
  any_free = false;
  if (!in.topology) return {"hugepages", State::unknown, "no topology to read them from", ""};
  std::vector<std::string> parts;
  for (const topo::NodeInfo& n : in.topology->nodes()) {
    if (!n.has_memory) continue;
    std::vector<std::string> sizes;
    for (const topo::HugePages& h : n.hugepages) {
      sizes.push_back(human_size(h.page_bytes) + " " + std::to_string(h.free) + "/" + std::to_string(h.total) + " free");
      any_free = any_free || h.free > 0;
    }
    parts.push_back("node" + std::to_string(n.id) + ": " + (sizes.empty() ? "no hugepage sizes" : join(sizes)));
  }
  const std::string fix = hugepages_fix(*in.topology, in.paths.sysfs_root);
  return {"hugepages", fix.empty() ? State::ok : State::failed, join(parts, "; "), fix.empty() ? "" : "as root: " + fix};
}

Check check_hugetlbfs(const Input& in) {
  std::istringstream lines(in.files.mounts);
  std::vector<std::string> at;
  for (std::string line; std::getline(lines, line);) {
    const std::vector<std::string> w = words(line);
    if (w.size() >= 3 && w[2] == "hugetlbfs") at.push_back(w[1]);
  }
  if (!at.empty()) return {"hugetlbfs", State::ok, "mounted at " + join(at), ""};
  if (in.files.mounts.empty()) return {"hugetlbfs", State::unknown, in.paths.proc_root + "/mounts unreadable", ""};
  return {"hugetlbfs", State::note,
          "not mounted; numacma does not need it (memfd_create(MFD_HUGETLB) uses the kernel's own mount)",
          "for DPDK and others: mount -t hugetlbfs nodev /dev/hugepages"};
}

/** The entries of kernel/iommu_groups that VFIO's no-IOMMU mode made (a
 *  device of the topology in a group named vfio-noiommu): no IOMMU is behind them. */
std::vector<std::string> noiommu_groups(const Input& in) {
  std::vector<std::string> out;
  if (!in.topology) return out;
  for (const topo::PciDevice& d : in.topology->pci_devices())
    if (d.noiommu_group) out.push_back(std::to_string(d.iommu_group));
  return out;
}

/** The IOMMU groups an IOMMU translates for: kernel/iommu_groups less VFIO's no-IOMMU ones. */
std::vector<std::string> translated_groups(const Input& in) {
  const std::vector<std::string> fake = noiommu_groups(in);
  std::vector<std::string> out;
  for (const std::string& g : in.files.iommu_groups)
    if (std::find(fake.begin(), fake.end(), g) == fake.end()) out.push_back(g);
  return out;
}

Check check_iommu(const Input& in) {
  const std::vector<std::string> boot =
      flags(in.files.cmdline, {"intel_iommu", "amd_iommu", "iommu", "iommu.passthrough", "iommu.strict"});
  const std::string seen = boot.empty() ? "no IOMMU flag on the command line" : "command line: " + join(boot, " ");
  const std::string where = in.paths.sysfs_root + "/kernel/iommu_groups";
  const std::vector<std::string> groups = translated_groups(in);
  const std::vector<std::string> noiommu = noiommu_groups(in);
  if (groups.empty() && !noiommu.empty())
    return {"iommu", State::failed,
            "off: the only group(s) under " + where + " (" + join(noiommu) +
                ") are VFIO's no-IOMMU groups (vfio enable_unsafe_noiommu_mode: nothing checks those "
                "devices' DMA); " + seen,
            iommu_fix(in.files.cpuinfo, in.files.cmdline) +
                "; or, accepting that such a device can write anywhere in memory, --iommu noiommu with "
                "--backing hugetlb as root (docs/vfio.md)"};
  if (!groups.empty()) {
    const bool pt = std::find(boot.begin(), boot.end(), "iommu=pt") != boot.end() ||
                    std::find(boot.begin(), boot.end(), "iommu.passthrough=1") != boot.end();
    return {"iommu", State::ok,
            "on: " + std::to_string(groups.size()) + " IOMMU group(s) under " + where + "; " + seen +
                (pt ? " (passthrough for host drivers; VFIO devices are still translated)" : ""),
            ""};
  }
  return {"iommu", State::failed,
          "off: no IOMMU group under " + where + (in.files.iommu_groups_dir ? "" : " (absent)") + "; " + seen,
          iommu_fix(in.files.cpuinfo, in.files.cmdline)};
}

Check check_interrupt_remapping(const Input& in) {
  const Cpu cpu = cpu_of(in.files.cpuinfo);
  if (cpu == Cpu::arm64)
    return {"interrupt_remapping", State::ok, "not applicable on arm64: the GIC's ITS isolates MSIs", ""};
  const std::string unsafe = in.files.unsafe_interrupts == "Y"
                                 ? "; vfio_iommu_type1 allow_unsafe_interrupts=Y: VFIO runs without it, unsafely"
                                 : "";
  if (in.files.interrupts.find("IR-") != std::string::npos)
    return {"interrupt_remapping", State::ok, "on: " + in.paths.proc_root + "/interrupts shows IR- entries", ""};
  if (in.files.interrupts.empty())
    return {"interrupt_remapping", State::unknown, in.paths.proc_root + "/interrupts unreadable" + unsafe,
            "as root: dmesg | grep -i remapping"};
  bool supported = false;
  for (const auto& [unit, ecap] : in.files.iommu_units) {
    try {
      supported = supported || (!ecap.empty() && ((std::stoull(ecap, nullptr, 16) >> 3) & 1) != 0);  // ECAP.IR
    } catch (const std::exception&) {
    }
  }
  if (supported)
    return {"interrupt_remapping", State::unknown,
            "the IOMMU supports it (ecap IR), but no interrupt in " + in.paths.proc_root + "/interrupts is remapped" + unsafe,
            "as root: dmesg | grep -i remapping"};
  const std::vector<std::string> off = flags(in.files.cmdline, {"intremap", "nointremap"});
  if (translated_groups(in).empty())
    return {"interrupt_remapping", State::failed, "off: no IOMMU, no IR- entries in " + in.paths.proc_root + "/interrupts" + unsafe,
            "it comes with the IOMMU (see iommu); VFIO refuses devices without it"};
  return {"interrupt_remapping", State::unknown,
          "no IR- entries in " + in.paths.proc_root + "/interrupts" +
              (off.empty() ? "" : "; command line: " + join(off, " ")) + unsafe,
          off.empty() ? "as root: dmesg | grep -i remapping" : "remove " + join(off, " ") + " from the kernel command line"};
}

Check check_vfio_pci(const Input& in) {
  const std::string driver = in.paths.sysfs_root + "/bus/pci/drivers/vfio-pci";
  if (in.files.vfio_pci_driver) return {"vfio_pci", State::ok, "loaded (" + driver + ")", ""};
  if (in.files.vfio_pci_builtin) return {"vfio_pci", State::ok, "built into the kernel", ""};
  if (!in.files.vfio_pci_module.empty())
    return {"vfio_pci", State::ok, "available, not loaded: " + in.files.vfio_pci_module,
            ""};  // numacma vfio bind says modprobe when it needs it
  if (in.files.modules_dir.empty())
    return {"vfio_pci", State::unknown, "not loaded (" + driver + " absent); the kernel release is unknown",
            "modprobe vfio-pci"};
  return {"vfio_pci", State::failed,
          "not loaded (" + driver + " absent) and no vfio-pci module under " + in.files.modules_dir,
          "install this kernel's modules (Debian: apt-get install linux-image-" + in.files.osrelease +
              "), then modprobe vfio-pci"};
}

Check check_dev_vfio(const Input& in) {
  const std::string node = in.paths.dev_root + "/vfio/vfio";
  if (!in.files.dev_vfio)
    return {"dev_vfio", State::failed, node + " does not exist: VFIO is not loaded", "modprobe vfio-pci"};
  if (!in.files.dev_vfio_error.empty())
    return {"dev_vfio", State::failed, in.files.dev_vfio_error, "run as root, or chmod 0666 " + node};
  std::vector<std::string> rw, refused;
  for (const auto& [group, err] : in.files.dev_vfio_groups) (err.empty() ? rw : refused).push_back(group);
  if (in.files.dev_vfio_groups.empty())
    return {"dev_vfio", State::ok, node + " read-write; no group node yet (numacma vfio bind BDF makes one)", ""};
  const std::string detail = node + " read-write; groups read-write: " + (rw.empty() ? "none" : join(rw, " ")) +
                             (refused.empty() ? "" : "; refused: " + join(refused, " "));
  if (rw.empty())
    return {"dev_vfio", State::failed, detail,
            "run as root, or give this user the groups' nodes (a udev rule: SUBSYSTEM==\"vfio\", GROUP=\"vfio\", "
            "MODE=\"0660\")"};
  return {"dev_vfio", State::ok, detail, ""};
}

Check check_memlock(const Input& in) {
  std::istringstream lines(in.files.limits);
  std::string soft, hard;
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("Max locked memory", 0) == 0) {
      const std::vector<std::string> w = words(line.substr(17));
      if (w.size() >= 2) soft = w[0], hard = w[1];
    }
  if (has_cap(in.files.status, kCapIpcLock)) return {"memlock", State::ok, "CAP_IPC_LOCK: locking is not limited", ""};
  if (soft.empty()) return {"memlock", State::unknown, in.paths.proc_root + "/self/limits unreadable", "ulimit -l"};
  if (soft == "unlimited") return {"memlock", State::ok, "RLIMIT_MEMLOCK unlimited", ""};
  const auto bytes = [](const std::string& v) { return v == "unlimited" ? ~0ULL : std::stoull(v); };
  std::uint64_t s = 0, h = 0;
  try {
    s = bytes(soft), h = bytes(hard);
  } catch (const std::exception&) {
    return {"memlock", State::unknown, "RLIMIT_MEMLOCK '" + soft + "'", "ulimit -l"};
  }
  const std::string detail = "RLIMIT_MEMLOCK " + human_size(s) + " (hard " + (h == ~0ULL ? "unlimited" : human_size(h)) + ")";
  if (s >= kMemlockEnough) return {"memlock", State::ok, detail, ""};
  return {"memlock", State::failed, detail + ": pools larger than that cannot be locked or mapped for a device",
          "ulimit -l unlimited (as root), LimitMEMLOCK=infinity in a systemd unit, or a memlock line in "
          "/etc/security/limits.conf"};
}

Check check_pagemap(const Input& in) {
  const int probe = in.files.pagemap_readable;
  const bool readable = probe >= 0 ? probe == 1 : has_cap(in.files.status, kCapSysAdmin);
  const std::string how = probe >= 0 ? "read from this process's /proc/self/pagemap"
                                     : "CapEff of " + in.paths.proc_root + "/self/status";
  if (readable) return {"pagemap", State::ok, "physical addresses readable (" + how + ")", ""};
  return {"pagemap", State::failed, "physical addresses hidden: every frame reads 0 without CAP_SYS_ADMIN (" + how + ")",
          "run as root, or use VFIO (--vfio BDF): its IOVAs need no physical address"};
}

Check check_kernel_cma(const Input& in) {
  const std::string total = field(in.files.meminfo, "CmaTotal"), free = field(in.files.meminfo, "CmaFree");
  const std::vector<std::string> boot = flags(in.files.cmdline, {"cma", "cma_pernuma", "numa_cma"});
  std::string d = total.empty() ? "no CmaTotal in " + in.paths.proc_root + "/meminfo" : "CmaTotal " + total;
  if (!free.empty()) d += " (CmaFree " + free + ")";
  d += in.files.kernel_cma.empty() ? "; no area under " + in.paths.sysfs_root + "/kernel/mm/cma"
                                   : "; areas: " + join(in.files.kernel_cma);
  d += boot.empty() ? "; no cma= on the command line" : "; command line: " + join(boot, " ");
  return {"kernel_cma", State::ok, d + " (numacma reserves its own areas and does not need it)", ""};
}

Check check_pools(const Input& in) {
  if (!in.pools) return {"shared_pools", State::unknown, in.pools.error().message, ""};
  if (in.pools->empty())
    return {"shared_pools", State::ok, "none under " + in.run_dir + "/pools (numacma reserve NAME PARAMS makes one)", ""};
  return {"shared_pools", State::ok,
          std::to_string(in.pools->size()) + " under " + in.run_dir + "/pools: " + join(*in.pools) +
              " (numacma status)",
          ""};
}

const Check* find(const Report& r, const std::string& name) {
  for (const Check& c : r.checks)
    if (c.name == name) return &c;
  return nullptr;
}

}  // namespace

const char* state_name(State s) noexcept {
  switch (s) {
    case State::ok: return "ok";
    case State::failed: return "failed";
    case State::unknown: return "unknown";
    case State::note: return "note";
  }
  return "unknown";
}

std::string hugepages_fix(const topo::Topology& t, const std::string& sysfs_root) {
  std::vector<std::string> lines;
  for (const topo::NodeInfo& n : t.nodes()) {
    if (!n.has_memory) continue;
    std::uint64_t free = 0, total_2m = 0;
    for (const topo::HugePages& h : n.hugepages) {
      free += h.free;
      if (h.page_bytes == k2M) total_2m = h.total;
    }
    if (free > 0) continue;
    // 512 (1 GiB) more, or an eighth of a small node's memory (at least one).
    const std::uint64_t add = std::max<std::uint64_t>(1, std::min<std::uint64_t>(512, n.mem.total_bytes / 8 / k2M));
    lines.push_back("echo " + std::to_string(total_2m + add) + " > " + sysfs_root + "/devices/system/node/node" +
                    std::to_string(n.id) + "/hugepages/hugepages-2048kB/nr_hugepages");
  }
  return join(lines, "; ");
}

std::string iommu_fix(const std::string& cpuinfo, const std::string& cmdline) {
  const std::vector<std::string> off = flags(cmdline, {"intel_iommu=off", "amd_iommu=off", "iommu=off"});
  const std::string grub = " to the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, update-grub, reboot)";
  const std::string remove = off.empty() ? "" : "remove " + join(off, " ") + " from the command line; ";
  switch (cpu_of(cpuinfo)) {
    case Cpu::intel: return remove + "enable VT-d in the firmware and add intel_iommu=on" + grub;
    case Cpu::amd: return remove + "enable AMD-Vi (IOMMU) in the firmware and add amd_iommu=on" + grub;
    case Cpu::arm64:
      return remove + "the SMMU must be described by the firmware (ACPI IORT or device tree) and its driver "
                      "(arm-smmu-v3) loaded; iommu.passthrough=0 keeps host devices translated too";
    case Cpu::unknown: break;
  }
  return remove + "add intel_iommu=on (Intel) or amd_iommu=on (AMD)" + grub;
}

Report diagnose(const Input& in) {
  Report r;
  bool any_free = false;
  r.checks.push_back(check_nodes(in));
  r.checks.push_back(check_hugepages(in, any_free));
  r.checks.push_back(check_hugetlbfs(in));
  r.checks.push_back(check_iommu(in));
  r.checks.push_back(check_interrupt_remapping(in));
  r.checks.push_back(check_vfio_pci(in));
  r.checks.push_back(check_dev_vfio(in));
  r.checks.push_back(check_memlock(in));
  r.checks.push_back(check_pagemap(in));
  r.checks.push_back(check_kernel_cma(in));
  r.checks.push_back(check_pools(in));

  const auto passed = [&](const char* name) { return find(r, name)->state == State::ok; };
  r.via_vfio = passed("iommu") && find(r, "vfio_pci")->ok() && passed("dev_vfio");
  r.via_physical = passed("pagemap") && any_free;
  const std::string where = in.fixture ? "on this fixture" : "on this host now";
  if (r.dma_usable()) {
    std::vector<std::string> how;
    if (r.via_vfio) how.push_back("through VFIO (numacma vfio bind BDF, then --vfio BDF: IOVAs)");
    if (r.via_physical)
      how.push_back("with physical addresses (backing hugetlb or auto; the IOMMU off or in passthrough)");
    r.summary = "yes: a device could DMA to numacma memory " + where + ", " + join(how, " or ");
    if (find(r, "memlock")->state == State::failed) r.summary += "; but see memlock";
    if (r.via_vfio && find(r, "interrupt_remapping")->state == State::failed)
      r.summary += "; but see interrupt_remapping";
    return r;
  }
  const Check& hp = *find(r, "hugepages");
  std::string physical = !any_free ? hp.fix : "";  // "as root: echo N > .../nr_hugepages"
  if (!passed("pagemap")) physical += (physical.empty() ? "" : ", then ") + std::string("run numacma as root");
  std::vector<std::string> vfio;  // each fix once: vfio_pci and dev_vfio may both say modprobe
  for (const char* c : {"iommu", "vfio_pci", "dev_vfio"}) {
    const Check& k = *find(r, c);
    const bool said = std::any_of(vfio.begin(), vfio.end(), [&](const std::string& f) {
      return f.find(k.fix) != std::string::npos;
    });
    if (!k.ok() && !k.fix.empty() && !said) vfio.push_back(k.fix);
  }
  r.summary = "no: no device could DMA to numacma memory " + where + ". For physical addresses: " +
              (physical.empty() ? "see the failed checks" : physical) + ". Or for VFIO: " +
              (vfio.empty() ? "see the failed checks" : join(vfio, "; then ")) + ".";
  return r;
}

std::string doctor_text(const Input& in, const Report& r) {
  std::string out = "numacma doctor: " +
                    std::string(in.fixture ? "a FIXTURE, not this host" : "this host") + " (sysfs " +
                    in.paths.sysfs_root + ", proc " + in.paths.proc_root + ", dev " + in.paths.dev_root +
                    ", modules " + in.paths.modules_root + ")\n\n";
  std::size_t width = 0;
  for (const Check& c : r.checks) width = std::max(width, c.name.size());
  for (const Check& c : r.checks) {
    std::string mark = c.state == State::failed ? "FAILED" : state_name(c.state);
    out += mark + std::string(9 - mark.size(), ' ') + c.name + std::string(width - c.name.size() + 2, ' ') +
           c.detail + "\n";
    if (!c.fix.empty() && c.state != State::ok) out += std::string(9 + width + 2, ' ') + "fix: " + c.fix + "\n";
  }
  return out + "\ndma_usable: " + r.summary + "\n";
}

nlohmann::ordered_json doctor_json(const Input& in, const Report& r) {
  using ojson = nlohmann::ordered_json;
  ojson checks = ojson::array(), paths = ojson::array();
  for (const Check& c : r.checks) {
    ojson o;
    o["name"] = c.name;
    o["ok"] = c.ok();
    o["detail"] = c.detail;
    o["fix"] = c.state == State::ok ? "" : c.fix;
    o["state"] = state_name(c.state);
    checks.push_back(std::move(o));
  }
  if (r.via_vfio) paths.push_back("vfio");
  if (r.via_physical) paths.push_back("physical");
  ojson j;
  j["checks"] = std::move(checks);
  j["dma_usable"] = r.dma_usable();
  j["dma_paths"] = std::move(paths);
  j["summary"] = r.summary;
  j["fixture"] = in.fixture;
  j["sysfs_root"] = in.paths.sysfs_root;
  j["proc_root"] = in.paths.proc_root;
  j["dev_root"] = in.paths.dev_root;
  j["modules_root"] = in.paths.modules_root;
  return j;
}

}  // namespace numacma::cli::doctor
