// src/os/host.hpp — what `numacma doctor` reads about a host, as raw text
// and listings (host.cpp). Nothing here decides anything: the decisions are
// pure functions of this (tools/numacma/doctor.hpp), so that the tests feed
// them fixture trees (tests/data/host-*) and hand-made facts.
//
//   <sysfs>/kernel/iommu_groups/*               IOMMU groups
//   <sysfs>/class/iommu/*/intel-iommu/ecap      Intel IOMMU units (bit 3: IR)
//   <sysfs>/bus/pci/drivers/vfio-pci            vfio-pci loaded
//   <sysfs>/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts
//   <sysfs>/kernel/mm/cma/*                     the kernel's CMA areas
//   <proc>/cmdline, meminfo, mounts, interrupts, cpuinfo, sys/kernel/osrelease
//   <proc>/self/limits, self/status             RLIMIT_MEMLOCK, CapEff
//   <modules>/<osrelease>/kernel/drivers/vfio/pci/vfio-pci.ko*, modules.builtin
//   <dev>/vfio/vfio, <dev>/vfio/<group>         access(R_OK | W_OK)
//
// Error convention as os.hpp: an unreadable file is "" with its reason in
// `unreadable` (path -> "open(...): Permission denied"), never a failure of
// the whole probe.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace numacma::os {

/** Where to look: this host's trees by default; tests point them at a fixture. */
struct HostPaths {
  std::string sysfs_root = "/sys";
  std::string proc_root = "/proc";
  std::string dev_root = "/dev";
  std::string modules_root = "/lib/modules";
};

struct HostFiles {
  /** <proc>/cmdline, meminfo, mounts, interrupts, cpuinfo, self/limits,
   *  self/status, sys/kernel/osrelease ("" when unreadable). */
  std::string cmdline, meminfo, mounts, interrupts, cpuinfo, limits, status, osrelease;
  bool iommu_groups_dir = false;            ///< <sysfs>/kernel/iommu_groups exists
  std::vector<std::string> iommu_groups;    ///< its entries
  /** <sysfs>/class/iommu entries and their intel-iommu/ecap ("" when none: AMD, SMMU). */
  std::vector<std::pair<std::string, std::string>> iommu_units;
  bool vfio_pci_driver = false;             ///< <sysfs>/bus/pci/drivers/vfio-pci exists
  std::string vfio_pci_module;              ///< the vfio-pci.ko* found under <modules>/<release>, or ""
  bool vfio_pci_builtin = false;            ///< <modules>/<release>/modules.builtin lists vfio-pci
  std::string modules_dir;                  ///< <modules>/<release> ("" when the release is unknown)
  std::string unsafe_interrupts;            ///< vfio_iommu_type1's allow_unsafe_interrupts ("" unknown)
  std::vector<std::string> kernel_cma;      ///< <sysfs>/kernel/mm/cma entries
  bool dev_vfio = false;                    ///< <dev>/vfio/vfio exists
  std::string dev_vfio_error;               ///< why it is not read-write for this user ("" when it is)
  /** <dev>/vfio/<group> and why it is not read-write ("" when it is). */
  std::vector<std::pair<std::string, std::string>> dev_vfio_groups;
  /** This process reads real frame numbers from /proc/self/pagemap: 1 yes,
   *  0 no, -1 not probed (a proc root other than /proc: a fixture, whose
   *  CapEff then stands in for the probe). */
  int pagemap_readable = -1;
  std::map<std::string, std::string> unreadable;  ///< path -> the error
};

/** Reads what HostFiles lists under `paths`. The pagemap probe (a page of
 *  this process mapped, faulted in, its frame read) runs only when
 *  proc_root is "/proc". Never fails: what cannot be read is noted. */
HostFiles read_host(const HostPaths& paths);

}  // namespace numacma::os
