// src/vfio/bind.cpp — see bind.hpp for the sequence of sysfs writes.
//
// Every write goes through Ctx::write, so that a permission error says
// "needs root" with the file, and so that tests can stand in for the kernel.
// A bind that fails after the device let go of its driver is rolled back:
// leaving an NVMe without any driver is worse than the error itself.
#include "vfio/bind.hpp"

#include <algorithm>
#include <cctype>

#include "numacma/numacma.hpp"
#include "os/dirs.hpp"
#include "os/os.hpp"
#include "topology/topology.hpp"

namespace numacma::vfio {

namespace {

constexpr const char* kVfioPci = "vfio-pci";

/** "vfio-pci" -> 'vfio-pci', "\n" -> '\n' (for messages). */
std::string quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\n' ? std::string("\\n") : std::string(1, c);
  return out + "'";
}

std::string or_none(const std::string& driver) {
  return driver.empty() ? std::string("no driver") : driver;
}

std::string trimmed(const std::string& s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

/** The paths of one device, and the writer. */
struct Ctx {
  const BindOptions& o;
  std::string bdf;
  std::string dev_dir;      // <root>/bus/pci/devices/<bdf>
  std::string drivers;      // <root>/bus/pci/drivers
  std::string probe;        // <root>/bus/pci/drivers_probe
  std::string override_;    // <dev_dir>/driver_override
  std::string run;          // the run directory
  std::string memo;         // <run>/vfio/<bdf>.driver, as shown in messages

  Ctx(const BindOptions& opts, std::string b) : o(opts), bdf(std::move(b)) {
    dev_dir = o.sysfs_root + "/bus/pci/devices/" + bdf;
    drivers = o.sysfs_root + "/bus/pci/drivers";
    probe = o.sysfs_root + "/bus/pci/drivers_probe";
    override_ = dev_dir + "/driver_override";
    run = o.run_dir.empty() ? default_run_dir() : o.run_dir;
    memo = run + "/vfio/" + bdf + ".driver";
  }

  /** <run>/vfio, checked: owned by this user or root, writable by nobody
   *  else, no symbolic link followed (the memo is written as root). */
  Result<os::Fd> memo_dir(bool create) const {
    Result<os::Fd> r = os::open_trusted_dir(run, create);
    if (!r) return r;
    return os::open_dir_at(r->get(), "vfio", create, 0755);
  }
  Status write_memo(const std::string& driver) const {
    Result<os::Fd> d = memo_dir(true);
    if (!d) return std::move(d).error();
    return os::write_file_at(d->get(), bdf + ".driver", driver + "\n");
  }
  /** The memo's text; "" when there is none. */
  Result<std::string> read_memo() const {
    Result<os::Fd> d = memo_dir(false);
    if (!d) return d.error().code == Errc::not_found ? Result<std::string>(std::string()) : d.error();
    Result<std::string> t = os::read_file_at(d->get(), bdf + ".driver");
    if (!t && t.error().code == Errc::not_found) return std::string();
    return t;
  }
  Status remove_memo() const {
    Result<os::Fd> d = memo_dir(false);
    if (!d) return d.error().code == Errc::not_found ? Status() : std::move(d).error();
    return os::unlink_at(d->get(), bdf + ".driver");
  }

  Status write(const std::string& path, const std::string& text) const {
    Status s = o.write ? o.write(path, text) : os::write_file(path, text);
    if (s) return s;
    if (s.error().code == Errc::permission)
      return make_error(Errc::permission, "needs root: writing " + quoted(text) + " to " + path +
                                              " was refused (" + s.error().message +
                                              "); run numacma as root");
    return make_error(s.error().code,
                      "writing " + quoted(text) + " to " + path + ": " + s.error().message);
  }

  /** The driver bound now ("" none), from the driver link. */
  Result<std::string> driver_now() const {
    Result<topo::PciDevice> d = topo::read_pci_device(o.sysfs_root, bdf);
    if (!d) return d.error();
    return d->driver;
  }

  /** Hands the device back to `driver` (none: leaves it without one) and
   *  clears driver_override. Best effort: used on the error paths, whose
   *  message already says what went wrong. */
  void restore(const std::string& driver) const {
    (void)write(override_, "\n");
    if (driver.empty()) return;
    (void)write(override_, driver);
    (void)write(probe, bdf);
    (void)write(override_, "\n");
  }
};

/** VFIO's no-IOMMU mode is on: vfio-pci gives a device without an IOMMU a
 *  no-IOMMU group when it probes it (the kernel's drivers/vfio/group.c). */
bool noiommu_mode_on(const std::string& root) {
  Result<topo::Topology::NoIommuMode> m = topo::read_noiommu_mode(root);
  return m && *m == topo::Topology::NoIommuMode::on;
}

/** The group's node: /dev/vfio/<group>, or /dev/vfio/noiommu-<group>. */
std::string group_node(const topo::PciDevice& d) {
  return std::string("/dev/vfio/") + (d.noiommu_group ? "noiommu-" : "") + std::to_string(d.iommu_group);
}

const char* kNoIommuNote =
    "UNSAFE: a no-IOMMU group: no IOMMU isolates this device, which can read and write all of memory; "
    "only VFIO's no-IOMMU mode drives it (--iommu noiommu, as root)";

/** Fills r.blocking and r.note (group_blockers). */
void check_members(const std::string& root, BindReport& r) {
  Result<std::vector<GroupMember>> blocking = group_blockers(root, r.iommu_group, r.bdf);
  if (!blocking) {
    r.note = "could not check the other devices of group " + std::to_string(r.iommu_group) + ": " +
             blocking.error().message;
    return;
  }
  r.blocking = std::move(*blocking);
  if (r.blocking.empty()) return;
  std::string who;
  for (const GroupMember& g : r.blocking) who += (who.empty() ? "" : ", ") + g.bdf + " (" + g.driver + ")";
  r.note = "group " + std::to_string(r.iommu_group) +
           " is not viable until its other devices are bound to vfio-pci too: " + who +
           "; bind each of them (numacma vfio bind BDF) before using " + r.dev;
}

/** check_members, and the warning of a no-IOMMU group. */
void check_group(const std::string& root, BindReport& r) {
  check_members(root, r);
  if (r.dev.rfind("/dev/vfio/noiommu-", 0) == 0) r.note = kNoIommuNote + (r.note.empty() ? "" : ". " + r.note);
}

}  // namespace

/** The kernel lets a group into a container when each device has no driver,
 *  vfio-pci, or a driver that does no DMA of its own (pcieport on bridges,
 *  pci-stub). Read through the group's own links, so that a non-PCI member
 *  (ARM platform devices share groups too) is read the same way. */
Result<std::vector<GroupMember>> group_blockers(const std::string& root, int group,
                                                std::string_view self) {
  const std::string gdir = root + "/kernel/iommu_groups/" + std::to_string(group) + "/devices";
  Result<std::vector<std::string>> members = os::list_dir(gdir);
  if (!members) return std::move(members).error();
  std::vector<GroupMember> out;
  for (const std::string& m : *members) {
    if (m == self) continue;
    Result<std::string> target = os::read_link(gdir + "/" + m + "/driver");
    if (!target) continue;  // no driver: fine for viability
    Result<std::string> driver = topo::parse_link_name(*target);
    if (!driver || *driver == kVfioPci || *driver == "pci-stub") continue;
    if (Result<std::string> cls = os::read_file(gdir + "/" + m + "/class")) {
      Result<std::uint64_t> code = topo::parse_u64(*cls);
      if (code && (*code >> 8) == 0x0604) continue;  // PCI-to-PCI bridge
    }
    out.push_back({m, *driver});
  }
  return out;
}

namespace {

/** An IOMMU is registered (/sys/class/iommu is not empty): a device without
 *  a group then gets one when a driver probes it (arm64: the SMMU attaches
 *  devices at probe time, from the device tree or IORT), unlike x86, where
 *  every device behind an IOMMU has its group from the start. */
bool iommu_registered(const std::string& root) {
  Result<std::vector<std::string>> units = os::list_dir(root + "/class/iommu");
  return units && !units->empty();
}

const char* kNoGroupHint =
    ": the IOMMU is off. Boot with intel_iommu=on (Intel) or amd_iommu=on (AMD) on the kernel "
    "command line (arm64: the firmware must describe the SMMU), or use phys mode (a pool without "
    "--vfio: physical addresses from hugetlb), or, accepting that the device can then write anywhere "
    "in memory, turn VFIO's no-IOMMU mode on (vfio enable_unsafe_noiommu_mode=1) and bind it again";

}  // namespace

std::string default_run_dir() { return os::env_or("NUMACMA_RUN_DIR", "/run/numacma"); }

Result<BindReport> bind(std::string_view bdf_text, const BindOptions& o) {
  Result<std::string> bdf = topo::parse_bdf(bdf_text);
  if (!bdf) return bdf.error();
  const Ctx c(o, *bdf);
  Result<topo::PciDevice> dev = topo::read_pci_device(o.sysfs_root, *bdf);
  if (!dev) return dev.error();
  BindReport r;
  r.bdf = *bdf;
  r.from = dev->driver;
  r.iommu_group = dev->iommu_group;
  // No group: the IOMMU is off, unless one is registered and the device has
  // no driver yet (arm64), or VFIO's no-IOMMU mode is on: then vfio-pci's
  // probe gives it its group.
  const bool group_at_probe =
      r.iommu_group < 0 && ((r.from.empty() && iommu_registered(o.sysfs_root)) || noiommu_mode_on(o.sysfs_root));
  if (r.iommu_group < 0 && !group_at_probe)
    return make_error(Errc::unsupported, r.bdf + " has no IOMMU group (" + c.dev_dir +
                                             "/iommu_group is absent)" + kNoGroupHint);
  if (r.iommu_group >= 0) r.dev = group_node(*dev);
  if (r.from == kVfioPci) {
    r.to = kVfioPci;
    check_group(o.sysfs_root, r);
    return r;
  }
  // In use by this machine: refused before anything is written (force: bound
  // anyway, but never the device of the root file system).
  {
    InUseOptions io;
    io.sysfs_root = o.sysfs_root;
    io.proc_root = o.proc_root;
    io.addresses = o.addresses;
    Result<std::vector<Use>> uses = find_uses(r.bdf, io);
    if (!uses)
      return make_error(uses.error().code, uses.error().message + "; nothing was changed");
    const bool root = std::any_of(uses->begin(), uses->end(), [](const Use& u) { return u.root; });
    if (!uses->empty() && (root || !o.force)) return make_error(Errc::busy, in_use_message(r.bdf, *uses));
    for (const Use& u : *uses) r.in_use.push_back(u.what);
  }
  if (!os::exists(c.drivers + "/" + kVfioPci))
    return make_error(Errc::unsupported, "vfio-pci is not loaded: modprobe vfio-pci (" + c.drivers +
                                             "/vfio-pci does not exist)");

  // Remember the driver first: when this fails, nothing has changed yet. No
  // driver now keeps an earlier memo: it is what a failed bind left behind.
  bool wrote_memo = false;
  if (!r.from.empty()) {
    Status s = c.write_memo(r.from);
    if (!s)
      return make_error(s.error().code,
                        std::string(s.error().code == Errc::permission ? "needs root: " : "") +
                            "cannot remember " + r.bdf + "'s driver " + r.from + " in " + c.memo +
                            " (" + s.error().message +
                            "); run as root or set NUMACMA_RUN_DIR to a writable directory");
    wrote_memo = true;
  }
  auto forget = [&] {
    if (wrote_memo) (void)c.remove_memo();
  };

  if (Status s = c.write(c.override_, kVfioPci); !s) {
    forget();
    return s.error();
  }
  if (!r.from.empty()) {
    if (Status s = c.write(c.drivers + "/" + r.from + "/unbind", r.bdf); !s) {
      (void)c.write(c.override_, "\n");
      forget();
      return make_error(s.error().code, s.error().message + " (driver_override cleared; " +
                                            r.bdf + " stays with " + r.from + ")");
    }
  }
  const Status probed = c.write(c.probe, r.bdf);
  Result<std::string> now = c.driver_now();
  if (now && *now == kVfioPci && group_at_probe) {
    Result<topo::PciDevice> probed_dev = topo::read_pci_device(o.sysfs_root, r.bdf);
    r.iommu_group = probed_dev ? probed_dev->iommu_group : -1;
    if (r.iommu_group < 0) {
      (void)c.write(c.drivers + "/" + kVfioPci + "/unbind", r.bdf);
      c.restore(r.from);
      forget();
      return make_error(Errc::unsupported, r.bdf + " has no IOMMU group (" + c.dev_dir +
                                               "/iommu_group is absent) even bound to vfio-pci; "
                                               "rolled back" + kNoGroupHint);
    }
    r.dev = group_node(*probed_dev);
  }
  if (now && *now == kVfioPci) {
    r.to = kVfioPci;
    r.changed = true;
    check_group(o.sysfs_root, r);
    if (!r.in_use.empty()) {
      std::string what;
      for (const std::string& u : r.in_use) what += (what.empty() ? "" : "; ") + u;
      r.note = "bound with force although in use: " + what + (r.note.empty() ? "" : ". " + r.note);
    }
    return r;
  }

  // vfio-pci did not take it: give the device back to its driver.
  std::string what = "vfio-pci did not take " + r.bdf + ": after writing it to " + c.probe;
  what += now ? ", it is bound to " + or_none(*now)
               : ", its driver link cannot be read (" + now.error().message + ")";
  if (!probed) what += " (" + probed.error().message + ")";
  c.restore(r.from);
  forget();
  Result<std::string> after = c.driver_now();
  what += "; rolled back: driver_override cleared, now bound to " +
          (after ? or_none(*after) : "? (" + after.error().message + ")") +
          ". The kernel log (dmesg) says why vfio-pci refused it";
  return make_error(Errc::io_error, what);
}

Result<BindReport> unbind(std::string_view bdf_text, const BindOptions& o) {
  Result<std::string> bdf = topo::parse_bdf(bdf_text);
  if (!bdf) return bdf.error();
  const Ctx c(o, *bdf);
  Result<topo::PciDevice> dev = topo::read_pci_device(o.sysfs_root, *bdf);
  if (!dev) return dev.error();
  BindReport r;
  r.bdf = *bdf;
  r.from = dev->driver;
  r.iommu_group = dev->iommu_group;
  if (r.iommu_group >= 0) r.dev = "/dev/vfio/" + std::to_string(r.iommu_group);

  // The remembered driver, checked before anything is written.
  std::string remembered;
  {
    Result<std::string> text = c.read_memo();
    if (!text) return make_error(text.error().code, c.memo + ": " + text.error().message);
    if (!trimmed(*text).empty()) {
      Result<std::string> name = topo::parse_link_name(trimmed(*text));
      if (!name || *name != trimmed(*text))  // one name, no path
        return make_error(Errc::invalid_argument,
                          c.memo + ": not a driver name: " + quoted(*text) +
                              " (remove the file to let the kernel pick the driver)");
      remembered = *name;
    }
  }

  if (r.from == kVfioPci) {
    if (Status s = c.write(c.drivers + "/" + kVfioPci + "/unbind", r.bdf); !s) return s.error();
  }
  if (Status s = c.write(c.override_, "\n"); !s) return s.error();
  Status probed;
  if (!remembered.empty()) {
    if (Status s = c.write(c.override_, remembered); !s) return s.error();
    probed = c.write(c.probe, r.bdf);
    if (Status s = c.write(c.override_, "\n"); !s) return s.error();
  } else {
    probed = c.write(c.probe, r.bdf);
  }
  Result<std::string> now = c.driver_now();
  if (!now) return now.error();
  r.to = *now;
  r.changed = r.to != r.from;
  if (!remembered.empty()) {
    if (r.to == remembered) {
      if (Status s = c.remove_memo(); !s)
        r.note = "could not remove " + c.memo + ": " + s.error().message;
    } else {
      r.note = remembered + " did not take " + r.bdf + " back (is it loaded? modprobe " +
               remembered + "); it stays remembered in " + c.memo + " for the next unbind";
    }
  }
  if (!probed) r.note += (r.note.empty() ? "" : "; ") + probed.error().message;
  return r;
}

}  // namespace numacma::vfio

namespace numacma {

Status vfio_bind(std::string_view bdf, const std::string& sysfs_root) {
  VfioBindOptions o;
  o.sysfs_root = sysfs_root;
  return vfio_bind(bdf, o);
}

Status vfio_bind(std::string_view bdf, const VfioBindOptions& options) {
  vfio::BindOptions o;
  o.sysfs_root = options.sysfs_root;
  o.proc_root = options.proc_root;
  o.force = options.force;
  Result<vfio::BindReport> r = vfio::bind(bdf, o);
  if (!r) return r.error();
  return {};
}

Status vfio_unbind(std::string_view bdf, const std::string& sysfs_root) {
  vfio::BindOptions o;
  o.sysfs_root = sysfs_root;
  Result<vfio::BindReport> r = vfio::unbind(bdf, o);
  if (!r) return r.error();
  return {};
}

}  // namespace numacma
