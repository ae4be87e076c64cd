// The CLI's vfio side (cli_test.cpp has the contract of every command):
// topo's IOMMU groups and drivers, `vfio bind` refusals and exit codes (the
// group members in the way, a device in use, a fake tree that does not
// react), and --vfio on the pool commands.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "cli_run.hpp"

using nlohmann::json;

namespace {

using cli_run::CliRun;
using cli_run::run;

const std::string kData = NUMACMA_TEST_DATA;
const std::string kArm = "--sysfs-root " + kData + "/arm64-4n";

}  // namespace

TEST(Cli, UnknownCommandListsVfio) {
  const CliRun r = run("frobnicate");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find(", vfio"), std::string::npos) << r.err;
}

TEST(Cli, TopoShowsIommuGroupsAndDrivers) {
  const CliRun r = run("topo --json --sysfs-root " + kData + "/x86-2s");
  ASSERT_EQ(r.rc, 0) << r.err;
  const json j = json::parse(r.out);
  std::map<std::string, json> pci;
  for (const auto& d : j["pci"]) pci[d["bdf"].get<std::string>()] = d;
  ASSERT_EQ(pci.size(), 5u) << r.out;
  EXPECT_EQ(pci["0000:17:00.0"]["iommu_group"], 13);
  EXPECT_EQ(pci["0000:17:00.0"]["driver"], "nvme");
  EXPECT_EQ(pci["0000:98:00.1"]["driver"], "vfio-pci");
  EXPECT_EQ(pci["0000:00:00.0"]["driver"], "");
  EXPECT_EQ(pci["0000:17:00.0"]["numa_node"], 0);   // the fields that were there stay
  EXPECT_EQ(pci["0000:17:00.0"]["class"], "0x10802");
  const CliRun none = run("topo --json --sysfs-root " + kData + "/vm1");
  ASSERT_EQ(none.rc, 0) << none.err;
  const json none_j = json::parse(none.out);  // kept alive: the loop reads into it
  for (const auto& d : none_j["pci"]) EXPECT_EQ(d["iommu_group"], -1) << d.dump();
  const CliRun t = run("topo " + kArm);
  ASSERT_EQ(t.rc, 0);
  EXPECT_NE(t.out.find("iommu group  driver"), std::string::npos) << t.out;
  std::istringstream in(t.out);
  std::string line, nvme, smmu;
  while (std::getline(in, line)) {
    if (line.rfind("0000:81:00.0", 0) == 0) nvme = line;
    if (line.rfind("0000:80:00.0", 0) == 0) smmu = line;
  }
  auto words = [](const std::string& l) {
    std::istringstream w(l);
    std::vector<std::string> out;
    for (std::string x; w >> x;) out.push_back(x);
    return out;
  };
  // device, node, vendor:device, class, iommu group, driver
  EXPECT_EQ(words(nvme), (std::vector<std::string>{"0000:81:00.0", "2", "0x144d:0xa80a", "0x010802", "5", "nvme"}));
  EXPECT_EQ(words(smmu), (std::vector<std::string>{"0000:80:00.0", "2", "0x19e5:0xa12f", "0x080600", "-", "-"}));
}

TEST(Cli, VfioBindAlreadyBoundNamesTheGroupMembersInTheWay) {
  // 0000:98:00.1 is bound to vfio-pci, its group-mate 0000:98:00.0 to ice:
  // nothing is written (the fixture stays as it is), and the group is named.
  const std::string x86 = "--sysfs-root " + kData + "/x86-2s";
  const CliRun r = run("vfio bind --json " + x86 + " 0000:98:00.1");
  ASSERT_EQ(r.rc, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["bdf"], "0000:98:00.1");
  EXPECT_EQ(j["from"], "vfio-pci");
  EXPECT_EQ(j["to"], "vfio-pci");
  EXPECT_EQ(j["changed"], false);
  EXPECT_EQ(j["iommu_group"], 48);
  EXPECT_EQ(j["dev"], "/dev/vfio/48");
  EXPECT_EQ(j["group_viable"], false);
  EXPECT_EQ(j["blocking"], json::parse(R"([{"bdf":"0000:98:00.0","driver":"ice"}])"));
  // The short form lspci prints is the same device, reported in the long form.
  const CliRun short_form = run("vfio bind --json " + x86 + " 98:00.1");
  ASSERT_EQ(short_form.rc, 0) << short_form.err;
  EXPECT_EQ(json::parse(short_form.out), j);
  const CliRun t = run("vfio bind " + x86 + " 0000:98:00.1");
  ASSERT_EQ(t.rc, 0) << t.err;
  EXPECT_NE(t.out.find("0000:98:00.1: already bound to vfio-pci, nothing to do (group 48, /dev/vfio/48)"),
            std::string::npos) << t.out;
  EXPECT_NE(t.out.find("note: group 48 is not viable"), std::string::npos) << t.out;
}

TEST(Cli, VfioBindFailuresExitOne) {
  const CliRun no_group = run("vfio bind --sysfs-root " + kData + "/vm1 0000:00:01.0");
  EXPECT_EQ(no_group.rc, 1);
  EXPECT_NE(no_group.err.find("the IOMMU is off"), std::string::npos) << no_group.err;
  const CliRun no_dev = run("vfio unbind --sysfs-root " + kData + "/x86-2s 0000:05:00.0");
  EXPECT_EQ(no_dev.rc, 1);
  EXPECT_NE(no_dev.err.find("x86-2s/bus/pci/devices/0000:05:00.0"), std::string::npos) << no_dev.err;
  const CliRun no_vfio = run("vfio bind --sysfs-root " + kData + "/arm64-4n 0000:81:00.0");
  EXPECT_EQ(no_vfio.rc, 1);
  EXPECT_NE(no_vfio.err.find("modprobe vfio-pci"), std::string::npos) << no_vfio.err;
}

TEST(Cli, VfioBindRefusesADeviceInUseAndForceGoesOnButNotForTheRootDisk) {
  // The fixture machine (tests/data/make_in_use_fixture.py) has no vfio-pci:
  // a bind that gets past the in-use check stops at "not loaded", so nothing
  // is ever written into the committed tree.
  const std::string m = "--sysfs-root " + kData + "/in-use/sys --proc-root " + kData + "/in-use/proc ";
  const CliRun lvm = run("vfio bind " + m + "0000:02:00.0");
  EXPECT_EQ(lvm.rc, 1);
  EXPECT_NE(lvm.err.find("numacma vfio bind: 0000:02:00.0 is in use: nvme1n1p1 is held by dm-0 (device-mapper: "
                         "LVM, dm-crypt or multipath); dm-0 (which holds nvme1n1p1) is mounted on /srv. Stop "
                         "using it first"),
            std::string::npos)
      << lvm.err;
  EXPECT_NE(lvm.err.find("--force"), std::string::npos) << lvm.err;
  const CliRun forced = run("vfio bind --force " + m + "02:00.0");
  EXPECT_EQ(forced.rc, 1);
  EXPECT_NE(forced.err.find("vfio-pci is not loaded"), std::string::npos) << "past the check: " << forced.err;
  for (const char* force : {"", "--force "}) {
    const CliRun root = run(std::string("vfio bind ") + force + m + "0000:01:00.0");
    EXPECT_EQ(root.rc, 1);
    EXPECT_NE(root.err.find("0000:01:00.0 is in use: nvme0n1p2 is mounted on / (root file system: never "
                            "unbound); nvme0n1p1 is mounted on /boot/efi; nvme0n1p3 is used as swap"),
              std::string::npos)
        << root.err;
    EXPECT_NE(root.err.find("not even with --force"), std::string::npos) << root.err;
  }
  const CliRun free_disk = run("vfio bind " + m + "0000:03:00.0");
  EXPECT_EQ(free_disk.rc, 1);
  EXPECT_NE(free_disk.err.find("vfio-pci is not loaded"), std::string::npos) << free_disk.err;
  EXPECT_NE(run("vfio bind --help").out.find("--force"), std::string::npos);
  EXPECT_EQ(run("vfio unbind --force 0000:03:00.0").rc, 2) << "unbind has no --force";
}

TEST(Cli, VfioBindOnAFakeTreeThatDoesNotReact) {
  // Plain files take the writes but no driver link moves: the CLI reports
  // that vfio-pci did not take the device and the rollback, and exits 1.
  namespace fs = std::filesystem;
  const fs::path top = fs::path(::testing::TempDir()) / ("cli-vfio-" + std::to_string(::getpid()));
  fs::remove_all(top);
  const fs::path root = top / "sys", dev = root / "bus/pci/devices/0000:05:00.0";
  fs::create_directories(dev);
  fs::create_directories(root / "kernel/iommu_groups/7/devices");
  fs::create_directories(root / "bus/pci/drivers/vfio-pci");
  fs::create_directories(root / "bus/pci/drivers/nvme");
  for (const fs::path& f : {dev / "driver_override", root / "bus/pci/drivers_probe",
                            root / "bus/pci/drivers/nvme/unbind", root / "bus/pci/drivers/vfio-pci/unbind"})
    std::ofstream{f};
  fs::create_symlink("../../../../kernel/iommu_groups/7", dev / "iommu_group");
  fs::create_symlink("../../../../bus/pci/devices/0000:05:00.0", root / "kernel/iommu_groups/7/devices/0000:05:00.0");
  fs::create_symlink("../../../../bus/pci/drivers/nvme", dev / "driver");
  ::setenv("NUMACMA_RUN_DIR", (top / "run").c_str(), 1);
  const CliRun r = run("vfio bind --sysfs-root " + root.string() + " 0000:05:00.0");
  ::unsetenv("NUMACMA_RUN_DIR");
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.err.find("vfio-pci did not take 0000:05:00.0"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("rolled back"), std::string::npos) << r.err;
  std::ifstream unbind(root / "bus/pci/drivers/nvme/unbind");
  std::string written;
  std::getline(unbind, written);
  EXPECT_EQ(written, "0000:05:00.0");
  EXPECT_FALSE(fs::exists(top / "run/vfio/0000:05:00.0.driver"));
  fs::remove_all(top);
}

TEST(Cli, VfioOptionOnPoolCommands) {
  for (const char* c : {"replay", "demo"}) {
    const CliRun h = run(std::string(c) + " --help");
    EXPECT_NE(h.out.find("--vfio"), std::string::npos) << c;
  }
  // Two of the same: refused after parsing, which also shows that "-" after
  // --vfio BDF is still the trace, not another BDF.
  const CliRun r = run("replay --params cma=1M --vfio 0000:05:00.0 --vfio 0000:05:00.0 -", "alloc a 0 4K\n");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--vfio 0000:05:00.0 given twice"), std::string::npos) << r.err;
  const CliRun bad = run("replay --params cma=1M --vfio 5:00.0 -", "alloc a 0 4K\n");
  EXPECT_EQ(bad.rc, 2);
  EXPECT_NE(bad.err.find("DDDD:BB:DD.F"), std::string::npos) << bad.err;
  // The short form is the same device: given twice with the long one, refused as twice.
  const CliRun twice = run("replay --params cma=1M --vfio 05:00.0 --vfio 0000:05:00.0 -", "alloc a 0 4K\n");
  EXPECT_EQ(twice.rc, 2);
  EXPECT_NE(twice.err.find("--vfio 0000:05:00.0 given twice"), std::string::npos) << twice.err;
}
