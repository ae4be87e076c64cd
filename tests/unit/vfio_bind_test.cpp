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

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void put(const fs::path& p, const std::string& text) {
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
        fs::create_symlink("../../../../kernel/iommu_groups/" + std::to_string(g->second),
                           sys.dev(text) / "iommu_group");
    }
    return {};
  }
};

using Log = std::vector<std::pair<std::string, std::string>>;
const std::string kOverride = "bus/pci/devices/" + kX + "/driver_override";

}  // namespace

TEST(VfioBind, BindsThroughDriverOverrideAndRemembersTheDriver) {
  FakeSysfs sys;
  sys.driver("nvme");
  sys.driver("vfio-pci");
  sys.device(kX, 7, "nvme");
  Kernel k(sys);
  k.native[kX] = "nvme";  // probing without the override gives it back to nvme
  auto r = vfio::bind("0000:05:00.0", k.options());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->bdf, kX);
  EXPECT_EQ(r->from, "nvme");
  EXPECT_EQ(r->to, "vfio-pci");
  EXPECT_EQ(r->iommu_group, 7);
  EXPECT_EQ(r->dev, "/dev/vfio/7");
  EXPECT_TRUE(r->changed);
  EXPECT_TRUE(r->blocking.empty());
  EXPECT_EQ(sys.driver_of(kX), "vfio-pci");
  EXPECT_EQ(k.log, (Log{{kOverride, "vfio-pci"},
                        {"bus/pci/drivers/nvme/unbind", kX},
                        {"bus/pci/drivers_probe", kX}}));
  EXPECT_EQ(slurp(sys.memo(kX)), "nvme\n");
}

TEST(VfioBind, UpperCaseBdfIsTheSameDevice) {
  FakeSysfs sys;
  sys.driver("vfio-pci");
  sys.device("0000:af:00.0", 3, "vfio-pci");
  auto r = vfio::bind("0000:AF:00.0", sys.options());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->bdf, "0000:af:00.0");
}

TEST(VfioBind, DeviceWithoutADriverIsBoundAndAnEarlierMemoKept) {
  // A bind that failed half-way left the device without a driver; the memo
  // it wrote is the only record of the driver to restore.
  FakeSysfs sys;
  sys.driver("vfio-pci");
  sys.device(kX, 7, "");
  put(sys.memo(kX), "nvme\n");
  Kernel k(sys);
  auto r = vfio::bind(kX, k.options());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->from, "");
  EXPECT_EQ(r->to, "vfio-pci");
  EXPECT_EQ(k.log, (Log{{kOverride, "vfio-pci"}, {"bus/pci/drivers_probe", kX}}));
  EXPECT_EQ(slurp(sys.memo(kX)), "nvme\n");
}

TEST(VfioBind, AlreadyBoundIsNothingToDo) {
  FakeSysfs sys;
  sys.driver("vfio-pci");
  sys.device(kX, 7, "vfio-pci");
  Kernel k(sys);
  auto r = vfio::bind(kX, k.options());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->changed);
  EXPECT_EQ(r->from, "vfio-pci");
  EXPECT_EQ(r->to, "vfio-pci");
  EXPECT_TRUE(k.log.empty());
  EXPECT_FALSE(fs::exists(sys.memo(kX)));
}

TEST(VfioBind, NoSuchDeviceNamesThePath) {
  FakeSysfs sys;
  sys.driver("vfio-pci");
  Kernel k(sys);
  auto r = vfio::bind("0000:09:00.0", k.options());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::not_found);
  EXPECT_NE(r.error().message.find((sys.root / "bus/pci/devices/0000:09:00.0").string()),
            std::string::npos)
      << r.error().message;
  EXPECT_TRUE(k.log.empty());
}

TEST(VfioBind, MalformedBdfIsRefusedBeforeAnyPath) {
  FakeSysfs sys;
  Kernel k(sys);
  for (const char* bad : {"5:00.0", "0000:05:00.0/../../x", "../../../etc", "0000:05:20.0", ""}) {
    auto r = vfio::bind(bad, k.options());
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, Errc::invalid_argument) << bad;
    auto u = vfio::unbind(bad, k.options());
    ASSERT_FALSE(u.ok()) << bad;
    EXPECT_EQ(u.error().code, Errc::invalid_argument) << bad;
  }
  EXPECT_NE(vfio::bind("5:00.0", k.options()).error().message.find("DDDD:BB:DD.F"), std::string::npos);
  EXPECT_TRUE(k.log.empty());
}

TEST(VfioBind, NoIommuGroupSaysTheIommuIsOff) {
  FakeSysfs sys;
  sys.driver("nvme");
  sys.driver("vfio-pci");
  sys.device(kX, -1, "nvme");
  Kernel k(sys);
  auto r = vfio::bind(kX, k.options());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::unsupported);
  for (const char* want : {"IOMMU is off", "intel_iommu=on", "amd_iommu=on", "phys mode"})
    EXPECT_NE(r.error().message.find(want), std::string::npos) << want << ": " << r.error().message;
  EXPECT_TRUE(k.log.empty());
  EXPECT_FALSE(fs::exists(sys.memo(kX)));
  EXPECT_EQ(sys.driver_of(kX), "nvme");
}

// arm64 (device tree or IORT): an SMMU is registered, but a device no driver
// has probed has no IOMMU group yet; vfio-pci's probe gives it one.
TEST(VfioBind, Arm64GroupComesWithTheProbe) {
  FakeSysfs sys;
  sys.driver("vfio-pci");
  sys.device(kX, -1, "");
  fs::create_directories(sys.root / "class/iommu/smmu3.0x0000000009050000");
  Kernel k(sys);
  k.group_at_probe[kX] = 3;
  auto r = vfio::bind(kX, k.options());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->iommu_group, 3);
  EXPECT_EQ(r->dev, "/dev/vfio/3");
  EXPECT_TRUE(r->changed);
  EXPECT_EQ(sys.driver_of(kX), "vfio-pci");
  EXPECT_EQ(k.log, (Log{{kOverride, "vfio-pci"}, {"bus/pci/drivers_probe", kX}}));
}

TEST(VfioBind, Arm64NoGroupEvenAfterTheProbeIsRolledBack) {
  FakeSysfs sys;
  sys.driver("vfio-pci");
  sys.device(kX, -1, "");
  fs::create_directories(sys.root / "class/iommu/smmu3.0x0000000009050000");
  Kernel k(sys);
  auto r = vfio::bind(kX, k.options());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::unsupported);
  for (const char* want : {"no IOMMU group", "rolled back", "IOMMU is off", "phys mode"})
    EXPECT_NE(r.error().message.find(want), std::string::npos) << want << ": " << r.error().message;
  EXPECT_EQ(sys.driver_of(kX), "");
  EXPECT_EQ(slurp(sys.dev(kX) / "driver_override"), "\n");
}

TEST(VfioBind, NoGroupNoDriverAndNoIommuRegisteredSaysTheIommuIsOff) {
  FakeSysfs sys;
  sys.driver("vfio-pci");
  sys.device(kX, -1, "");
  Kernel k(sys);
  auto r = vfio::bind(kX, k.options());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::unsupported);
  EXPECT_NE(r.error().message.find("IOMMU is off"), std::string::npos) << r.error().message;
  EXPECT_TRUE(k.log.empty());
}

TEST(VfioBind, VfioPciNotLoaded) {
  FakeSysfs sys;
  sys.driver("nvme");
  sys.device(kX, 7, "nvme");
  Kernel k(sys);
  auto r = vfio::bind(kX, k.options());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("vfio-pci is not loaded: modprobe vfio-pci"), std::string::npos)
      << r.error().message;
  EXPECT_TRUE(k.log.empty());
  EXPECT_FALSE(fs::exists(sys.memo(kX)));
}

TEST(VfioBind, RefusedProbeIsRolledBackToTheDriver) {
  FakeSysfs sys;
  sys.driver("nvme");
  sys.driver("vfio-pci");
  sys.device(kX, 7, "nvme");
  Kernel k(sys);
  k.native[kX] = "";        // only the override brings nvme back
  k.refusing.insert("vfio-pci");
  auto r = vfio::bind(kX, k.options());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::io_error);
  const std::string& m = r.error().message;
  EXPECT_NE(m.find("vfio-pci did not take " + kX), std::string::npos) << m;
  EXPECT_NE(m.find("it is bound to no driver"), std::string::npos) << m;
  EXPECT_NE(m.find("now bound to nvme"), std::string::npos) << m;
  EXPECT_EQ(sys.driver_of(kX), "nvme");
  EXPECT_EQ(slurp(sys.dev(kX) / "driver_override"), "\n");
  EXPECT_FALSE(fs::exists(sys.memo(kX)));
  EXPECT_EQ(k.log, (Log{{kOverride, "vfio-pci"},
                        {"bus/pci/drivers/nvme/unbind", kX},
                        {"bus/pci/drivers_probe", kX},
                        {kOverride, "\n"},
                        {kOverride, "nvme"},
                        {"bus/pci/drivers_probe", kX},
                        {kOverride, "\n"}}));
}

TEST(VfioBind, PlainFilesDoNotReactSoTheBindingDidNotTake) {
  // The real writer (os::write_file) into plain files: every write lands,
  // but no driver link moves, which is what a bind that did not take looks like.
  FakeSysfs sys;
  sys.driver("nvme");
  sys.driver("vfio-pci");
  sys.device(kX, 7, "nvme");
  auto r = vfio::bind(kX, sys.options());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("it is bound to nvme"), std::string::npos) << r.error().message;
  EXPECT_EQ(slurp(sys.root / "bus/pci/drivers/nvme/unbind"), kX);
  EXPECT_EQ(slurp(sys.root / "bus/pci/drivers_probe"), kX);
  EXPECT_EQ(slurp(sys.root / "bus/pci/drivers/vfio-pci/unbind"), "");
  EXPECT_FALSE(fs::exists(sys.memo(kX)));  // rolled back: nothing to restore later
}

TEST(VfioBind, NotRootSaysNeedsRootAndChangesNothing) {
  FakeSysfs sys;
  sys.driver("nvme");
  sys.driver("vfio-pci");
  sys.device(kX, 7, "nvme");
  Kernel k(sys);
  k.deny = true;
  auto r = vfio::bind(kX, k.options());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::permission);
  EXPECT_EQ(r.error().message.rfind("needs root: writing 'vfio-pci' to " +
                                        (sys.dev(kX) / "driver_override").string(), 0),
            0u)
      << r.error().message;
  EXPECT_FALSE(fs::exists(sys.memo(kX)));
  EXPECT_EQ(sys.driver_of(kX), "nvme");
  auto u = vfio::unbind(kX, k.options());
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.error().message.rfind("needs root: writing '\\n' to ", 0), 0u) << u.error().message;
}

TEST(VfioBind, UnwritableRunDirSaysSoBeforeTouchingSysfs) {
  FakeSysfs sys;
  sys.driver("nvme");
  sys.driver("vfio-pci");
  sys.device(kX, 7, "nvme");
  put(sys.run, "a file where the run directory should be");
  Kernel k(sys);
  auto r = vfio::bind(kX, k.options());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("cannot remember " + kX + "'s driver nvme"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("NUMACMA_RUN_DIR"), std::string::npos);
  EXPECT_TRUE(k.log.empty());
}

// The memo is written as root: a symbolic link where it goes (or where its
// directory goes) is refused, and what it points to stays untouched.
TEST(VfioBind, AMemoThatIsASymbolicLinkIsRefusedAndItsTargetUntouched) {
  FakeSysfs sys;
  sys.driver("nvme");
  sys.driver("vfio-pci");
  sys.device(kX, 7, "nvme");
  const fs::path victim = sys.top / "victim";
  put(victim, "root's own file\n");
  fs::create_directories(sys.run / "vfio");
  fs::create_symlink(victim, sys.memo(kX));
  Kernel k(sys);
  auto r = vfio::bind(kX, k.options());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("symbolic link"), std::string::npos) << r.error().message;
  EXPECT_TRUE(k.log.empty()) << "nothing written to sysfs";
  EXPECT_EQ(slurp(victim), "root's own file\n");
  // The directory itself a link: refused too.
  fs::remove(sys.memo(kX));
  fs::remove(sys.run / "vfio");
  fs::create_directory_symlink(sys.top, sys.run / "vfio");
  r = vfio::bind(kX, k.options());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("symbolic link"), std::string::npos) << r.error().message;
  EXPECT_FALSE(fs::exists(sys.top / (kX + ".driver")));
  EXPECT_EQ(vfio::unbind(kX, k.options()).error().code, Errc::permission);
}

TEST(VfioBind, GroupMembersOnOtherDriversAreNamed) {
  FakeSysfs sys;
  for (const char* d : {"nvme", "vfio-pci", "ice", "pcieport", "pci-stub"}) sys.driver(d);
  sys.device(kX, 48, "nvme");
  sys.device("0000:05:00.1", 48, "ice", 0x020000);       // blocks the group
  sys.device("0000:04:00.0", 48, "pcieport", 0x060400);  // a bridge: fine
  sys.device("0000:05:00.2", 48, "", 0x020000);          // no driver: fine
  sys.device("0000:05:00.3", 48, "pci-stub", 0x020000);  // does no DMA: fine
  sys.device("0000:05:00.4", 48, "vfio-pci", 0x020000);  // fine
  sys.device("0000:06:00.0", 49, "ice", 0x020000);       // another group
  Kernel k(sys);
  auto r = vfio::bind(kX, k.options());
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->blocking.size(), 1u);
  EXPECT_EQ(r->blocking[0].bdf, "0000:05:00.1");
  EXPECT_EQ(r->blocking[0].driver, "ice");
  EXPECT_NE(r->note.find("group 48 is not viable"), std::string::npos) << r->note;
  EXPECT_NE(r->note.find("0000:05:00.1 (ice)"), std::string::npos) << r->note;
  EXPECT_EQ(sys.driver_of("0000:05:00.1"), "ice");  // bind does not bind the others
  // Once it is bound too, the group is viable.
  fs::remove(sys.dev("0000:05:00.1") / "driver");
  sys.link_driver("0000:05:00.1", "vfio-pci");
  auto again = vfio::bind(kX, k.options());
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->changed);
  EXPECT_TRUE(again->blocking.empty());
  EXPECT_EQ(again->note, "");
}

TEST(VfioUnbind, RestoresTheRememberedDriver) {
  FakeSysfs sys;
  sys.driver("nvme");
  sys.driver("vfio-pci");
  sys.device(kX, 7, "nvme");
  Kernel k(sys);
  k.native[kX] = "";  // the kernel would pick nothing: only the remembered name brings nvme back
  ASSERT_TRUE(vfio::bind(kX, k.options()).ok());
  k.log.clear();
  auto r = vfio::unbind(kX, k.options());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->from, "vfio-pci");
  EXPECT_EQ(r->to, "nvme");
  EXPECT_TRUE(r->changed);
  EXPECT_EQ(r->note, "");
  EXPECT_EQ(sys.driver_of(kX), "nvme");
  EXPECT_EQ(k.log, (Log{{"bus/pci/drivers/vfio-pci/unbind", kX},
                        {kOverride, "\n"},
                        {kOverride, "nvme"},
                        {"bus/pci/drivers_probe", kX},
                        {kOverride, "\n"}}));
  EXPECT_FALSE(fs::exists(sys.memo(kX)));
}

TEST(VfioUnbind, WithoutAMemoTheKernelPicks) {
  FakeSysfs sys;
  sys.driver("nvme");
  sys.driver("vfio-pci");
  sys.device(kX, 7, "vfio-pci");
  put(sys.dev(kX) / "driver_override", "vfio-pci");
  Kernel k(sys);
  k.native[kX] = "nvme";
  auto r = vfio::unbind(kX, k.options());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->to, "nvme");
  EXPECT_EQ(k.log, (Log{{"bus/pci/drivers/vfio-pci/unbind", kX},
                        {kOverride, "\n"},
                        {"bus/pci/drivers_probe", kX}}));
}

TEST(VfioUnbind, RememberedDriverNotLoadedKeepsTheMemo) {
  FakeSysfs sys;
  sys.driver("vfio-pci");
  sys.device(kX, 7, "vfio-pci");
  put(sys.memo(kX), "nvme\n");
  Kernel k(sys);
  auto r = vfio::unbind(kX, k.options());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->to, "");
  EXPECT_NE(r->note.find("modprobe nvme"), std::string::npos) << r->note;
  EXPECT_EQ(slurp(sys.memo(kX)), "nvme\n");
  EXPECT_EQ(slurp(sys.dev(kX) / "driver_override"), "\n");
  // With nvme loaded, the next unbind finishes the job.
  sys.driver("nvme");
  auto again = vfio::unbind(kX, k.options());
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->from, "");
  EXPECT_EQ(again->to, "nvme");
  EXPECT_FALSE(fs::exists(sys.memo(kX)));
}

TEST(VfioUnbind, MalformedMemoIsAnErrorNamingItBeforeAnyWrite) {
  FakeSysfs sys;
  sys.driver("vfio-pci");
  sys.device(kX, 7, "vfio-pci");
  put(sys.memo(kX), "../../evil\n");
  Kernel k(sys);
  auto r = vfio::unbind(kX, k.options());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find(sys.memo(kX).string()), std::string::npos) << r.error().message;
  EXPECT_TRUE(k.log.empty());
  EXPECT_EQ(sys.driver_of(kX), "vfio-pci");
}

TEST(VfioPublicApi, BindAndUnbindWithTheRealWriter) {
  FakeSysfs sys;
  sys.driver("vfio-pci");
  sys.device(kX, 7, "vfio-pci");
  sys.device("0000:06:00.0", -1, "nvme");
  ::setenv("NUMACMA_RUN_DIR", sys.run.c_str(), 1);
  EXPECT_EQ(vfio::default_run_dir(), sys.run.string());
  EXPECT_TRUE(numacma::vfio_bind(kX, sys.root.string()).ok());  // already bound: no write
  const Status no_group = numacma::vfio_bind("0000:06:00.0", sys.root.string());
  ASSERT_FALSE(no_group.ok());
  EXPECT_EQ(no_group.error().code, Errc::unsupported);
  EXPECT_EQ(numacma::vfio_unbind("0000:07:00.0", sys.root.string()).error().code, Errc::not_found);
  // Unbind with a memo in $NUMACMA_RUN_DIR: the real writes land in the files.
  put(sys.memo(kX), "nvme\n");
  EXPECT_TRUE(numacma::vfio_unbind(kX, sys.root.string()).ok());
  EXPECT_EQ(slurp(sys.root / "bus/pci/drivers/vfio-pci/unbind"), kX);
  EXPECT_EQ(slurp(sys.root / "bus/pci/drivers_probe"), kX);
  EXPECT_TRUE(fs::exists(sys.memo(kX)));  // nvme did not take it (plain files): kept
  ::unsetenv("NUMACMA_RUN_DIR");
  EXPECT_EQ(vfio::default_run_dir(), "/run/numacma");
}
