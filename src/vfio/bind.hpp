// src/vfio/bind.hpp — handing a PCI device to vfio-pci and back, through
// sysfs (the kernel's own driver_override protocol; no modprobe, no ioctl).
//
//   bind X (bound to nvme, IOMMU group 7):
//     <run>/vfio/X.driver              <- "nvme\n"    remembered for unbind
//     devices/X/driver_override        <- "vfio-pci"  only vfio-pci may take X
//     drivers/nvme/unbind              <- X           nvme lets go
//     drivers_probe                    <- X           the kernel probes: vfio-pci takes X
//     devices/X/driver -> .../vfio-pci ?              verified; else rolled back
//   unbind X:
//     drivers/vfio-pci/unbind          <- X           (when bound to vfio-pci)
//     devices/X/driver_override        <- "\n"        cleared
//     remembered nvme: driver_override <- "nvme", drivers_probe <- X,
//                      driver_override <- "\n", the remembered file removed
//     none remembered: drivers_probe   <- X           whatever driver the kernel picks
//
// Before anything is written, bind refuses a device the machine uses
// (in_use.hpp: a disk of it mounted, used as swap or held by dm/md/LVM, an
// interface of it up or with addresses or routes), naming each use;
// BindOptions::force binds it anyway, except when the root file system is
// on it: that is never unbound.
//
// Paths are under BindOptions::sysfs_root (<root>/bus/pci/...); <run> is
// $NUMACMA_RUN_DIR, default /run/numacma. A device can be used through VFIO
// only when every device of its IOMMU group is bound to vfio-pci or to no
// driver (PCI bridges and pci-stub excepted): bind names the others that
// are not, and does not bind them itself.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "numacma/result.hpp"
#include "vfio/in_use.hpp"

namespace numacma::vfio {

/** Writes text to a sysfs file. The real one is os::write_file; a test
 *  passes one that records each write and plays the kernel's part in a
 *  fake tree (re-pointing the driver link when drivers_probe is written). */
using SysfsWrite = std::function<Status(const std::string& path, const std::string& text)>;

struct BindOptions {
  std::string sysfs_root = "/sys";
  /** Where the previous driver is remembered; "" means $NUMACMA_RUN_DIR,
   *  else /run/numacma. The file is <run_dir>/vfio/<bdf>.driver. */
  std::string run_dir;
  SysfsWrite write;  ///< empty: os::write_file
  /** Where mountinfo, swaps and the routes are read (in_use.hpp). */
  std::string proc_root = "/proc";
  /** Bind although the device is in use (its users lose it now). Never
   *  when the root file system is on it. */
  bool force = false;
  InterfaceAddresses addresses;  ///< empty: getifaddrs; tests pass their own
};

/** A device of the same IOMMU group that keeps the group from being viable. */
struct GroupMember {
  std::string bdf;
  std::string driver;
};

struct BindReport {
  std::string bdf;            ///< lowercase "0000:05:00.0"
  std::string from;           ///< the driver before; "" when none
  std::string to;             ///< the driver after; "" when none
  int iommu_group = -1;       ///< -1: the device has none
  std::string dev;            ///< "/dev/vfio/<group>"; "" without a group
  bool changed = false;       ///< false: nothing had to be done
  /** bind: other devices of the group bound to a driver other than
   *  vfio-pci (bridges and pci-stub left out): the group is not viable
   *  until they are bound to vfio-pci too (or unbound). */
  std::vector<GroupMember> blocking;
  std::string note;           ///< one more sentence the user needs; "" when none
  /** What used the device when it was bound with force (Use::what); empty
   *  when nothing did. */
  std::vector<std::string> in_use;
};

/** The devices of IOMMU group `group` (under <root>/kernel/iommu_groups)
 *  other than `self` that keep the group from being viable: bound to a
 *  driver other than vfio-pci, pci-stub, or a PCI bridge's. Errors: the
 *  group's device list cannot be read. */
Result<std::vector<GroupMember>> group_blockers(const std::string& root, int group,
                                                std::string_view self);

/** $NUMACMA_RUN_DIR, or /run/numacma when unset. */
std::string default_run_dir();

/** REQUIRES: nothing; a malformed BDF is invalid_argument. Errors:
 *  not_found (no such device, naming the path), unsupported (no IOMMU group:
 *  the IOMMU is off; vfio-pci not loaded), busy (in use, naming every use:
 *  in_use_message; nothing written), permission ("needs root: ..."),
 *  io_error (vfio-pci did not take the device; the previous driver is
 *  restored and the message says what the device is bound to now). */
Result<BindReport> bind(std::string_view bdf, const BindOptions& options = {});

/** Gives the device back to the driver remembered by bind (or to whatever
 *  driver the kernel picks when none was remembered) and clears
 *  driver_override. When the remembered driver does not take the device
 *  (not loaded), the file is kept for the next unbind and `note` says so. */
Result<BindReport> unbind(std::string_view bdf, const BindOptions& options = {});

}  // namespace numacma::vfio
