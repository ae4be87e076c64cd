// The fake sysfs of vfio_bind_test.cpp and vfio_unbind_test.cpp:
// vfio::bind / vfio::unbind over a temporary fake sysfs tree.
//
// A tree of plain files does not react to writes, so most tests pass a
// writer (BindOptions::write) that records every write and plays the
// kernel's part the way the kernel documents it:
//   drivers/<d>/unbind <- X      X's driver link goes (only if X is bound to d)
//   driver_override <- "name"    only that driver may take X; "\n" clears it
//   drivers_probe <- X           if X has no driver: the override's driver, or
//                                without one the driver whose id table matches
//                                (`native` here), takes X, if it is loaded
//                                (drivers/<d> exists) and does not refuse X
// Without the override, probing hands the device back to its native driver,
// so a bind that forgot driver_override, or wrote things in the wrong order,
// ends on the wrong driver and fails here. One test uses the real writer
// (os::write_file) on plain files: the binding cannot take there, which is
// the "did not take" error path.
// Each test file includes it once (one executable per file).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "numacma/numacma.hpp"
#include "vfio/bind.hpp"

using numacma::Errc;
using numacma::Status;
namespace fs = std::filesystem;
namespace vfio = numacma::vfio;

namespace {

const std::string kX = "0000:05:00.0";

inline std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void put(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::trunc) << text;
}

/** A writable sysfs-shaped tree: <root>/bus/pci/{devices,drivers,drivers_probe},
 *  <root>/kernel/iommu_groups, and a run directory beside it. */
struct FakeSysfs {
  fs::path top, root, run;

  FakeSysfs() {
    static int seq = 0;
    top = fs::temp_directory_path() /
          ("numacma-bind-" + std::to_string(::getpid()) + "-" + std::to_string(seq++));
    fs::remove_all(top);
    root = top / "sys";
    run = top / "run";
    put(root / "bus/pci/drivers_probe", "");
    fs::create_directories(root / "bus/pci/devices");
  }
  ~FakeSysfs() { fs::remove_all(top); }

  fs::path dev(const std::string& bdf) const { return root / "bus/pci/devices" / bdf; }

  void driver(const std::string& name) {
    put(root / "bus/pci/drivers" / name / "unbind", "");
    put(root / "bus/pci/drivers" / name / "bind", "");
  }
  void device(const std::string& bdf, int group, const std::string& drv,
              std::uint32_t cls = 0x010802) {
    char c[16];
    std::snprintf(c, sizeof c, "0x%06x\n", cls);
    put(dev(bdf) / "class", c);
    put(dev(bdf) / "numa_node", "-1\n");
    put(dev(bdf) / "driver_override", "");
    if (group >= 0) {
      fs::create_symlink("../../../../kernel/iommu_groups/" + std::to_string(group),
                         dev(bdf) / "iommu_group");
      const fs::path g = root / "kernel/iommu_groups" / std::to_string(group) / "devices";
      fs::create_directories(g);
      fs::create_symlink("../../../../bus/pci/devices/" + bdf, g / bdf);
    }
    if (!drv.empty()) link_driver(bdf, drv);
  }
  void link_driver(const std::string& bdf, const std::string& drv) {
    fs::create_symlink("../../../../bus/pci/drivers/" + drv, dev(bdf) / "driver");
  }
  /** The bound driver per the link; "" when none. */
  std::string driver_of(const std::string& bdf) const {
    std::error_code ec;
    const fs::path t = fs::read_symlink(dev(bdf) / "driver", ec);
    return ec ? std::string() : t.filename().string();
  }
  fs::path memo(const std::string& bdf) const { return run / "vfio" / (bdf + ".driver"); }

  vfio::BindOptions options() const {
    vfio::BindOptions o;
    o.sysfs_root = root.string();
    o.run_dir = run.string();
    return o;
  }
};

/** Records each write (path relative to the root, text) and reacts as the
 *  kernel would (see the file comment). */
struct Kernel {
  FakeSysfs& sys;
  std::map<std::string, std::string> native;  // bdf -> the driver whose id table matches
  std::set<std::string> refusing;             // drivers whose probe fails
  std::map<std::string, int> group_at_probe;  // bdf -> the IOMMU group a probe gives it (arm64)
  std::set<std::string> noiommu;              // of those, the no-IOMMU groups (VFIO's no-IOMMU mode)
  bool deny = false;                          // every write: EACCES (not root)
  std::vector<std::pair<std::string, std::string>> log;

  explicit Kernel(FakeSysfs& s) : sys(s) {}

  vfio::BindOptions options() {
    vfio::BindOptions o = sys.options();
    o.write = [this](const std::string& path, const std::string& text) { return write(path, text); };
    return o;
  }

  Status write(const std::string& path, const std::string& text) {
    const std::string rel = fs::path(path).lexically_relative(sys.root).string();
    if (deny)
      return numacma::make_error(Errc::permission, "open(" + path + ", O_WRONLY): Permission denied");
    if (!fs::exists(path))
      return numacma::make_error(Errc::not_found, "open(" + path + ", O_WRONLY): No such file or directory");
    log.emplace_back(rel, text);
    put(path, text);
    const fs::path p(rel);
    if (p.filename() == "unbind" && p.parent_path().parent_path() == "bus/pci/drivers") {
      const std::string drv = p.parent_path().filename().string();
      if (sys.driver_of(text) != drv)
        return numacma::make_error(Errc::io_error, "write(" + path + "): No such device");
      fs::remove(sys.dev(text) / "driver");
    } else if (rel == "bus/pci/drivers_probe") {
      if (!sys.driver_of(text).empty()) return {};  // bound already: nothing happens
      std::string over = slurp(sys.dev(text) / "driver_override");
      while (!over.empty() && (over.back() == '\n' || over.back() == ' ')) over.pop_back();
      const std::string pick = over.empty() ? native[text] : over;
      if (pick.empty() || !fs::exists(sys.root / "bus/pci/drivers" / pick)) return {};
      if (refusing.count(pick) != 0)
        return numacma::make_error(Errc::invalid_argument, "write(" + path + "): Invalid argument");
      sys.link_driver(text, pick);
      if (auto g = group_at_probe.find(text); g != group_at_probe.end())
      {
        fs::create_symlink("../../../../kernel/iommu_groups/" + std::to_string(g->second),
                           sys.dev(text) / "iommu_group");
        const fs::path gdir = sys.root / "kernel/iommu_groups" / std::to_string(g->second);
        fs::create_directories(gdir / "devices");
        if (noiommu.count(text) != 0) put((gdir / "name").string(), "vfio-noiommu\n");
      }
    }
    return {};
  }
};

using Log = std::vector<std::pair<std::string, std::string>>;
const std::string kOverride = "bus/pci/devices/" + kX + "/driver_override";

}  // namespace
