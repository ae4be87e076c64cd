// The sysfs side of the fake VFIO kernel (vfio_fake_kernel.hpp): a temporary
// sysfs tree (a copy of tests/data/vm1 plus PCI devices with IOMMU groups and
// drivers) for the container to read.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace fakevfio {

namespace fs = std::filesystem;

/** A temporary copy of tests/data/vm1 (one node, node 0, like this host) with
 *  extra PCI devices: iommu_group and driver links as the kernel makes them,
 *  kernel/iommu_groups/<N>/{reserved_regions,devices/}. Removed on destruction. */
class SysfsTree {
 public:
  SysfsTree() {
    static int seq = 0;
    top_ = fs::temp_directory_path() /
           ("numacma-vfio-" + std::to_string(::getpid()) + "-" + std::to_string(seq++));
    fs::remove_all(top_);
    fs::create_directories(top_);
    root_ = top_ / "sys";
    fs::copy(fs::path(NUMACMA_TEST_DATA) / "vm1", root_,
             fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    fs::create_directories(root_ / "kernel/iommu_groups");
  }
  ~SysfsTree() {
    std::error_code ec;
    fs::remove_all(top_, ec);
  }
  SysfsTree(const SysfsTree&) = delete;
  SysfsTree& operator=(const SysfsTree&) = delete;

  std::string root() const { return root_.string(); }
  fs::path dev_dir(const std::string& bdf) const { return root_ / "bus/pci/devices" / bdf; }

  /** A PCI device on `node`; group < 0: no iommu_group link; driver "": unbound.
   *  A new group gets the x86 MSI window as its reserved region. */
  void add_device(const std::string& bdf, int group, const std::string& driver = "vfio-pci", int node = 0) {
    const fs::path d = dev_dir(bdf);
    fs::create_directories(d);
    put(d / "numa_node", std::to_string(node) + "\n");
    put(d / "vendor", "0x1b36\n");
    put(d / "device", "0x0010\n");
    put(d / "class", "0x010802\n");
    if (group >= 0) {
      const fs::path g = root_ / "kernel/iommu_groups" / std::to_string(group);
      if (!fs::exists(g)) {
        fs::create_directories(g / "devices");
        put(g / "reserved_regions", "0x00000000fee00000 0x00000000feefffff msi\n");
      }
      fs::create_directory_symlink("../../../../bus/pci/devices/" + bdf, g / "devices" / bdf);
      fs::create_directory_symlink("../../../../kernel/iommu_groups/" + std::to_string(group), d / "iommu_group");
    }
    if (!driver.empty()) set_driver(bdf, driver);
  }
  void set_driver(const std::string& bdf, const std::string& driver) {
    const fs::path d = dev_dir(bdf);
    fs::remove(d / "driver");
    const fs::path drv = root_ / "bus/pci/drivers" / driver;
    fs::create_directories(drv);
    if (!fs::exists(fs::symlink_status(drv / bdf)))
      fs::create_directory_symlink("../../../../bus/pci/devices/" + bdf, drv / bdf);
    fs::create_directory_symlink("../../../../bus/pci/drivers/" + driver, d / "driver");
  }
  /** The device's VFIO cdev as the kernel lists it (CONFIG_VFIO_DEVICE_CDEV):
   *  bus/pci/devices/BDF/vfio-dev/vfioN/dev. */
  void add_cdev(const std::string& bdf, const std::string& name) {
    const fs::path d = dev_dir(bdf) / "vfio-dev" / name;
    fs::create_directories(d);
    put(d / "dev", "511:" + name.substr(4) + "\n");
  }
  /** Node 0's 2 MiB hugepages as the tree says (the hugetlb backing reads
   *  how many are free from the topology; the pages themselves are this host's). */
  void set_hugepages_2m(long total, long free) {
    const fs::path d = root_ / "devices/system/node/node0/hugepages/hugepages-2048kB";
    put(d / "nr_hugepages", std::to_string(total) + "\n");
    put(d / "free_hugepages", std::to_string(free) + "\n");
  }
  /** The group is VFIO's no-IOMMU group: kernel/iommu_groups/<N>/name. */
  void set_noiommu_group(int group) {
    put(root_ / "kernel/iommu_groups" / std::to_string(group) / "name", "vfio-noiommu\n");
  }
  /** vfio's enable_unsafe_noiommu_mode parameter ("Y" or "N"). */
  void set_noiommu_mode(bool on) {
    const fs::path d = root_ / "module/vfio/parameters";
    fs::create_directories(d);
    put(d / "enable_unsafe_noiommu_mode", on ? "Y\n" : "N\n");
  }
  void set_reserved_regions(int group, const std::string& text) {
    put(root_ / "kernel/iommu_groups" / std::to_string(group) / "reserved_regions", text);
  }

 private:
  static void put(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::trunc) << text; }
  fs::path top_, root_;
};

}  // namespace fakevfio
