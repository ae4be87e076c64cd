// vfio::bind over a temporary fake sysfs tree whose writer plays the
// kernel's part (vfio_bind_fake.hpp tells how): driver_override, probing,
// the memo of the driver, every refusal before any write.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "vfio_bind_fake.hpp"

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

// VFIO's no-IOMMU mode on: vfio-pci's probe gives a device without an IOMMU a
// no-IOMMU group (drivers/vfio/group.c); the bind says so, loudly.
TEST(VfioBind, NoIommuModeGivesTheGroupAtTheProbeAndTheNoteSaysUnsafe) {
  FakeSysfs sys;
  sys.driver("nvme");
  sys.driver("vfio-pci");
  sys.device(kX, -1, "nvme");
  const fs::path param = sys.root / "module/vfio/parameters/enable_unsafe_noiommu_mode";
  fs::create_directories(param.parent_path());
  std::ofstream(param) << "N\n";
  Kernel k(sys);
  k.group_at_probe[kX] = 4;
  k.noiommu.insert(kX);
  auto off = vfio::bind(kX, k.options());  // the mode off: refused as without any IOMMU
  ASSERT_FALSE(off.ok());
  EXPECT_NE(off.error().message.find("no-IOMMU mode"), std::string::npos) << off.error().message;
  EXPECT_TRUE(k.log.empty());
  std::ofstream(param, std::ios::trunc) << "Y\n";
  auto r = vfio::bind(kX, k.options());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->iommu_group, 4);
  EXPECT_EQ(r->dev, "/dev/vfio/noiommu-4");
  EXPECT_NE(r->note.find("UNSAFE"), std::string::npos) << r->note;
  EXPECT_NE(r->note.find("--iommu noiommu"), std::string::npos) << r->note;
  EXPECT_EQ(sys.driver_of(kX), "vfio-pci");
  // Bound already: the same node and warning, nothing written.
  k.log.clear();
  auto again = vfio::bind(kX, k.options());
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->dev, "/dev/vfio/noiommu-4");
  EXPECT_NE(again->note.find("UNSAFE"), std::string::npos) << again->note;
  EXPECT_TRUE(k.log.empty());
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
