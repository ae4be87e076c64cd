// src/os/host.cpp — read_host (host.hpp): the files `numacma doctor` judges.
#include "os/host.hpp"

#include <unistd.h>

#include <cerrno>

#include "os/errno_error.hpp"
#include "os/os.hpp"

namespace numacma::os {
namespace {

std::string read_or_note(HostFiles& h, const std::string& path) {
  Result<std::string> t = read_file(path);
  if (t) return *t;
  h.unreadable[path] = t.error().message;
  return "";
}

/** "" when this user may read and write the path, else why not. */
std::string rw_error(const std::string& path) {
  if (::access(path.c_str(), R_OK | W_OK) == 0) return "";
  return errno_error("access(" + path + ", R_OK | W_OK)", errno).message;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

HostFiles read_host(const HostPaths& p) {
  HostFiles h;
  const std::string& proc = p.proc_root;
  h.cmdline = read_or_note(h, proc + "/cmdline");
  h.meminfo = read_or_note(h, proc + "/meminfo");
  h.mounts = read_or_note(h, proc + "/mounts");
  h.interrupts = read_or_note(h, proc + "/interrupts");
  h.cpuinfo = read_or_note(h, proc + "/cpuinfo");
  h.limits = read_or_note(h, proc + "/self/limits");
  h.status = read_or_note(h, proc + "/self/status");
  h.osrelease = trim(read_or_note(h, proc + "/sys/kernel/osrelease"));

  const std::string& sys = p.sysfs_root;
  const std::string groups = sys + "/kernel/iommu_groups";
  h.iommu_groups_dir = exists(groups);
  if (Result<std::vector<std::string>> g = list_dir(groups); g) h.iommu_groups = std::move(*g);
  if (Result<std::vector<std::string>> units = list_dir(sys + "/class/iommu"); units)
    for (const std::string& u : *units) {
      const std::string ecap = sys + "/class/iommu/" + u + "/intel-iommu/ecap";
      h.iommu_units.emplace_back(u, exists(ecap) ? trim(read_or_note(h, ecap)) : "");
    }
  h.vfio_pci_driver = exists(sys + "/bus/pci/drivers/vfio-pci");
  const std::string unsafe = sys + "/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts";
  if (exists(unsafe)) h.unsafe_interrupts = trim(read_or_note(h, unsafe));
  if (Result<std::vector<std::string>> cma = list_dir(sys + "/kernel/mm/cma"); cma) h.kernel_cma = std::move(*cma);

  if (!h.osrelease.empty()) {
    h.modules_dir = p.modules_root + "/" + h.osrelease;
    const std::string dir = h.modules_dir + "/kernel/drivers/vfio/pci";
    if (Result<std::vector<std::string>> mods = list_dir(dir); mods)
      for (const std::string& m : *mods)
        if (m.rfind("vfio-pci.ko", 0) == 0 || m.rfind("vfio_pci.ko", 0) == 0) h.vfio_pci_module = dir + "/" + m;
    if (exists(h.modules_dir + "/modules.builtin")) {
      const std::string builtin = read_or_note(h, h.modules_dir + "/modules.builtin");
      h.vfio_pci_builtin = builtin.find("/vfio-pci.ko") != std::string::npos;
    }
  }

  const std::string vfio = p.dev_root + "/vfio";
  h.dev_vfio = exists(vfio + "/vfio");
  if (h.dev_vfio) h.dev_vfio_error = rw_error(vfio + "/vfio");
  if (Result<std::vector<std::string>> nodes = list_dir(vfio); nodes)
    for (const std::string& n : *nodes)
      if (n != "vfio" && n.find_first_not_of("0123456789") == std::string::npos)
        h.dev_vfio_groups.emplace_back(n, rw_error(vfio + "/" + n));

  if (proc == "/proc") h.pagemap_readable = physical_addresses_readable() ? 1 : 0;
  return h;
}

}  // namespace numacma::os
