// The CLI's contract (docs/design.md "CLI"): every command takes --json and
// --help; unknown flags and bad values exit 2 with a message on stderr;
// failures exit 1; JSON output matches the fixture it was read from.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <sys/wait.h>
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

TEST(Cli, HelpForEveryCommand) {
  for (const char* c : {"doctor", "topo", "plan", "replay", "demo", "bench", "vfio", "vfio bind",
                        "vfio unbind", "status"}) {
    const CliRun r = run(std::string(c) + " --help");
    EXPECT_EQ(r.rc, 0) << c;
    EXPECT_NE(r.out.find("--json"), std::string::npos) << c << ": " << r.out;
  }
  EXPECT_EQ(run("--help").rc, 0);
}

TEST(Cli, BadUsageExitsTwoWithAMessage) {
  for (const char* args : {"frobnicate", "topo --bogus", "plan", "plan cma=12Q",
                           "plan numa_cma=1:", "plan numa_cma=x:4M", "plan --order-per-bit 99 cma=1M",
                           "replay --params cma=1M --policy far -", "replay --params cma=1M --backing x -",
                           "replay --params cma=1M --device-area smmu:two:64K -",
                           "replay --params cma=1M --device-area smmu:2:9Q -",
                           "replay --params cma=7Z -", "demo --size 0", "demo --size 12Q",
                           "vfio", "vfio bind", "vfio frob 0000:05:00.0", "vfio bind 5:00.0",
                           "vfio unbind 0000:05:00.8", "replay --params cma=1M --vfio 5:0.0 -",
                           "demo --vfio 0000:05:00.0/..", "status --json --prometheus",
                           "status --svg - --json"}) {
    const CliRun r = run(args, "alloc a 0 4K\n");
    EXPECT_EQ(r.rc, 2) << "numacma " << args << "\nstdout: " << r.out << "\nstderr: " << r.err;
    EXPECT_EQ(r.err.rfind("numacma", 0), 0u) << "numacma " << args << ": " << r.err;
  }
}

TEST(Cli, FailuresExitOne) {
  EXPECT_EQ(run("topo --sysfs-root /nonexistent").rc, 1);
  EXPECT_EQ(run("replay --params cma=1M --backing sim " + kArm + " /nonexistent.trace").rc, 1);
  const CliRun r = run("topo --sysfs-root /nonexistent");
  EXPECT_NE(r.err.find("/nonexistent"), std::string::npos) << r.err;
}

TEST(Cli, StatusOfNoReservationExitsOneNamingIt) {
  const std::string dir = ::testing::TempDir() + "cli_status_" + std::to_string(::getpid());
  ::setenv("NUMACMA_RUN_DIR", dir.c_str(), 1);
  const CliRun r = run("status nosuchpool");
  ::unsetenv("NUMACMA_RUN_DIR");
  EXPECT_EQ(r.rc, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("no reservation named nosuchpool under " + dir + "/pools"), std::string::npos)
      << r.err;
}

TEST(Cli, TopoJsonMatchesTheFixture) {
  const CliRun r = run("topo --json " + kArm);
  ASSERT_EQ(r.rc, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_EQ(j["nodes"].size(), 4u);
  EXPECT_EQ(j["distances"][0], json({10, 12, 20, 22}));
  EXPECT_EQ(j["distances"][2], json({20, 22, 10, 12}));
  bool smmu = false;
  for (const auto& d : j["pci"])
    if (d["bdf"] == "0000:80:00.0") smmu = d["numa_node"] == 2;
  EXPECT_TRUE(smmu) << r.out;
  EXPECT_EQ(j["nodes"][1]["hugepages"][0]["free"], 1024);
}

TEST(Cli, TopoTablesWithoutJson) {
  const CliRun r = run("topo " + kArm);
  ASSERT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("distances"), std::string::npos);
  EXPECT_NE(r.out.find("0000:80:00.0  2"), std::string::npos) << r.out;
}

TEST(Cli, PlanJsonNamesAreasAndWhatCannotBePlaced) {
  const CliRun r = run("plan --json --sysfs-root " + kData + "/memless-3n cma=64M cma_pernuma=16M numa_cma=2:8M");
  ASSERT_EQ(r.rc, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_EQ(j["areas"].size(), 3u) << r.out;
  EXPECT_EQ(j["areas"][0]["name"], "reserved");
  EXPECT_EQ(j["areas"][0]["node"], 0);
  EXPECT_EQ(j["areas"][2]["name"], "pernuma1");
  ASSERT_EQ(j["not_placed"].size(), 1u);
  EXPECT_EQ(j["not_placed"][0]["name"], "numa2");
  EXPECT_NE(j["not_placed"][0]["reason"].get<std::string>().find("no memory"), std::string::npos);
}

TEST(Cli, PlanNotesANumaCmaNodeGivenTwice) {
  const std::string note =
      "numa_cma: node 1 given twice: 4 MiB overridden by 8 MiB, as the kernel does";
  CliRun r = run("plan --json " + kArm + " numa_cma=1:4M,2:2M,1:8M");
  ASSERT_EQ(r.rc, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_EQ(j["notes"].size(), 1u) << r.out;
  EXPECT_EQ(j["notes"][0], note);
  std::size_t numa1 = 0;
  for (const auto& a : j["areas"])
    if (a["name"] == "numa1") {
      ++numa1;
      EXPECT_EQ(a["bytes"], 8u << 20) << r.out;
    }
  EXPECT_EQ(numa1, 1u) << r.out;
  EXPECT_EQ(json::parse(run("plan --json " + kArm + " numa_cma=1:4M").out)["notes"], json::array());
  r = run("plan " + kArm + " numa_cma=1:4M,1:8M");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("note: " + note), std::string::npos) << r.out;
}

TEST(Cli, ReplayFromStdinAndBadLinesGoOn) {
  const CliRun r = run("replay --json --backing sim " + kArm + " --params 'cma=2M cma_pernuma=1M' -",
                    "alloc a 2 64K\nbogus line\nfree a\n");
  ASSERT_EQ(r.rc, 0) << r.err;
  std::istringstream in(r.out);
  std::string line;
  std::vector<json> objs;
  while (std::getline(in, line)) objs.push_back(json::parse(line));
  ASSERT_EQ(objs.size(), 4u) << r.out;
  EXPECT_EQ(objs[0]["area"], "pernuma2");
  EXPECT_EQ(objs[1]["op"], "error");
  EXPECT_EQ(objs[1]["line"], 2);
  EXPECT_EQ(objs[2]["area"], "pernuma2");
  EXPECT_EQ(objs[3]["op"], "stats");
}

TEST(Cli, ReplayReadableOutput) {
  const CliRun r = run("replay --backing sim " + kArm + " --params 'cma=2M cma_pernuma=1M' -",
                    "alloc a 2 64K\nfree a\n");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("pernuma2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("alloc_ok"), std::string::npos) << r.out;
}

TEST(Cli, DemoOnTheFourNodeFixture) {
  const CliRun r = run("demo --json --backing sim " + kArm);
  ASSERT_EQ(r.rc, 0) << r.err << r.out;
  const json j = json::parse(r.out);
  EXPECT_TRUE(j["all_returned"].get<bool>());
  bool smmu_local = false;
  std::size_t per_node = 0;
  for (const auto& b : j["buffers"]) {
    EXPECT_TRUE(b["ok"].get<bool>()) << b.dump();
    if (b["for"] == "0000:80:00.0") smmu_local = b["area"] == "pernuma2" && b["node"] == 2;
    if (b["for"].get<std::string>().rfind("node", 0) == 0) ++per_node;
  }
  EXPECT_TRUE(smmu_local) << r.out;
  EXPECT_EQ(per_node, 4u);
}

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

TEST(Cli, NvmeSelftestDestructiveNeedsYesAndSaysWhatItWouldOverwrite) {
  for (const char* bdf : {"0000:05:00.0", "05:00.0"}) {
    const CliRun r = run(std::string("nvme-selftest --destructive ") + bdf);
    EXPECT_EQ(r.rc, 2) << r.err;
    EXPECT_NE(r.err.find("numacma nvme-selftest: --destructive overwrites LBAs 0-63 of namespace 1 of "
                         "0000:05:00.0 with a test pattern and does not restore them"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("add --yes"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }
  const CliRun h = run("nvme-selftest --help");
  EXPECT_NE(h.out.find("--destructive"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("--yes"), std::string::npos) << h.out;
}

TEST(Cli, NvmeSelftestJsonSaysTheModeAndThatNothingWasLostWhenItCouldNotStart) {
  // No such device here: the pool cannot be made, nothing is read or
  // written, so nothing is announced and the data is intact.
  const CliRun r = run("nvme-selftest ff:1f.7 --json");
  EXPECT_EQ(r.rc, 1);
  const json j = json::parse(r.out);
  EXPECT_EQ(j["op"], "result");
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["mode"], "restore");
  EXPECT_EQ(j["nsid"], 1);
  EXPECT_EQ(j["restored"], true);
  EXPECT_EQ(j["unrestored"], json::array());
  EXPECT_EQ(j["lbas_written"], 0);
  EXPECT_NE(j["error"].get<std::string>().find("0000:ff:1f.7"), std::string::npos) << r.out;
  EXPECT_EQ(r.err.find("LBAs"), std::string::npos) << "nothing to announce: " << r.err;
  const CliRun d = run("nvme-selftest ff:1f.7 --json --destructive --yes");
  EXPECT_EQ(d.rc, 1);
  EXPECT_EQ(json::parse(d.out)["mode"], "destructive");
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

// ---- numacma bench: the JSON rows' shape (no timing assertions) ----------------

namespace {

/** One JSON object per line of `out`. */
std::vector<json> json_lines(const std::string& out) {
  std::vector<json> rows;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

bool built_without_bench(const CliRun& r) {
  return r.rc == 1 && r.err.find("built without benchmarks") != std::string::npos;
}

}  // namespace

TEST(CliBench, AllocRowsNameAlignmentAndConfiguration) {
  const CliRun r = run("bench alloc --quick --json");
  if (built_without_bench(r)) GTEST_SKIP() << "built without bench/";
  ASSERT_EQ(r.rc, 0) << r.err;
  const std::vector<json> rows = json_lines(r.out);
  const std::vector<std::string> peers = {"numacma",      "numacma-nozero", "dpdk",  "dpdk-align64", "dpdk-zmalloc",
                                          "dpdk-memzone", "glibc",          "libnuma"};
  const std::vector<std::size_t> sizes = {4096, 16384, 65536, 262144};
  ASSERT_EQ(rows.size(), peers.size() * sizes.size()) << r.out;
  std::map<std::pair<std::string, std::size_t>, json> by;
  for (const json& j : rows) {
    EXPECT_EQ(j["bench"], "alloc");
    ASSERT_TRUE(j["align"].is_number_unsigned()) << j;
    ASSERT_TRUE(j["config"].is_string()) << j;
    EXPECT_FALSE(j["config"].get<std::string>().empty()) << j;
    by[{j["peer"].get<std::string>(), j["size"].get<std::size_t>()}] = j;
  }
  for (std::size_t size : sizes) {
    const std::size_t a6 = size;  // A6 for 4K..256K: the size itself
    for (const std::string& p : peers) {
      ASSERT_TRUE(by.count({p, size})) << p << " " << size << "\n" << r.out;
      const json& j = by[{p, size}];
      const std::size_t align = j["align"];
      const std::size_t want = p == "dpdk-align64" || p == "dpdk-zmalloc" ? 64u : p == "libnuma" ? 4096u : a6;
      EXPECT_EQ(align, want) << j;
      if (j["skipped"] == true) {
        EXPECT_TRUE(p.rfind("dpdk", 0) == 0 || p == "libnuma") << "only DPDK and libnuma may be skipped: " << j;
        EXPECT_TRUE(j["reason"].is_string()) << j;
        EXPECT_TRUE(j["median_ns"].is_null()) << j;
      } else {
        EXPECT_GT(j["median_ns"].get<double>(), 0) << j;
        EXPECT_GT(j["ratio"].get<double>(), 0) << j;
      }
    }
    const json& mz = by[{"dpdk-memzone", size}];
    const std::string cfg = mz["config"];
    if (mz["skipped"] != true || cfg.find("rte_memzone") != std::string::npos) {
      EXPECT_NE(cfg.find("RTE_MEMZONE_IOVA_CONTIG"), std::string::npos) << cfg;
    }
    const json& own = by[{"numacma", size}];
    EXPECT_EQ(own["ratio"], 1.0) << own;
    // The zeroing's cost shows beside it; DPDK's zeroing allocator is the peer for it.
    EXPECT_NE(own["config"].get<std::string>().find("zeroed"), std::string::npos) << own;
    const json& nozero = by[std::make_pair(std::string("numacma-nozero"), size)];
    EXPECT_NE(nozero["config"].get<std::string>().find("NOT zeroed"), std::string::npos) << nozero;
    const json& z = by[std::make_pair(std::string("dpdk-zmalloc"), size)];
    if (z["skipped"] != true) {
      EXPECT_NE(z["config"].get<std::string>().find("rte_zmalloc_socket"), std::string::npos) << z;
    }
  }
}

TEST(CliBench, AllocTakesTheNewPeerNames) {
  const CliRun r = run("bench alloc --quick --json --peer dpdk-align64 --peer dpdk-memzone");
  if (built_without_bench(r)) GTEST_SKIP() << "built without bench/";
  ASSERT_EQ(r.rc, 0) << r.err;
  std::set<std::string> peers;
  for (const json& j : json_lines(r.out)) peers.insert(j["peer"].get<std::string>());
  const std::set<std::string> want = {"numacma", "dpdk-align64", "dpdk-memzone"};
  EXPECT_EQ(peers, want) << r.out;
  EXPECT_EQ(run("bench alloc --quick --peer dpdk-mempool").rc, 2);
}

TEST(CliBench, PoolRowsCoverEveryCase) {
  const CliRun r = run("bench pool --quick --json");
  if (built_without_bench(r)) GTEST_SKIP() << "built without bench/";
  ASSERT_EQ(r.rc, 0) << r.err;
  const std::vector<json> rows = json_lines(r.out);
  const std::vector<std::string> peers = {"numacma", "dpdk-mempool", "glibc"};
  std::set<std::tuple<std::string, std::size_t, unsigned, bool>> seen;
  for (const json& j : rows) {
    std::set<std::string> keys;
    for (auto it = j.begin(); it != j.end(); ++it) keys.insert(it.key());
    const std::set<std::string> want = {"bench", "peer", "object", "threads", "cross", "median_ns", "p99_ns",
                                        "ratio", "config"};
    std::set<std::string> extra;
    std::set_difference(keys.begin(), keys.end(), want.begin(), want.end(), std::inserter(extra, extra.end()));
    const bool skipped = j.contains("skipped");
    if (skipped) {
      EXPECT_EQ(extra, (std::set<std::string>{"reason", "skipped"})) << j;
      EXPECT_EQ(j["skipped"], true) << j;
      EXPECT_EQ(j["peer"], "dpdk-mempool") << "only DPDK may be skipped: " << j;
    } else {
      EXPECT_TRUE(extra.empty()) << j;
      EXPECT_GT(j["median_ns"].get<double>(), 0) << j;
      EXPECT_GE(j["p99_ns"].get<double>(), j["median_ns"].get<double>()) << j;
      EXPECT_GT(j["ratio"].get<double>(), 0) << j;
      if (j["peer"] == "numacma") {
        EXPECT_EQ(j["ratio"], 1.0) << j;
      }
    }
    for (const char* k : {"bench", "peer", "object", "threads", "cross", "config"}) ASSERT_TRUE(j.contains(k)) << j;
    EXPECT_EQ(j["bench"], "pool");
    EXPECT_TRUE(j["cross"].is_boolean()) << j;
    EXPECT_FALSE(j["config"].get<std::string>().empty()) << j;
    const std::string config = j["config"];
    if (j["peer"] == "glibc") {
      EXPECT_NE(config.find("glibc malloc"), std::string::npos) << j;
    }
    if (j["peer"] == "dpdk-mempool" && !skipped) {
      EXPECT_NE(config.find("rte_thread_register"), std::string::npos) << j;
    }
    const unsigned threads = j["threads"];
    EXPECT_TRUE(threads == 1 || (threads == 2)) << j;
    if (threads == 1) {
      EXPECT_EQ(j["cross"], false) << j;
    }
    EXPECT_TRUE(seen.insert({j["peer"].get<std::string>(), j["object"].get<std::size_t>(), threads,
                             j["cross"].get<bool>()})
                    .second)
        << "twice: " << j;
  }
  for (const std::string& p : peers)
    for (std::size_t object : {64u, 512u, 4096u})
      for (auto [threads, cross] : {std::pair{1u, false}, std::pair{2u, false}, std::pair{2u, true}})
        EXPECT_TRUE(seen.count({p, object, threads, cross})) << p << " " << object << " " << threads << " " << cross;
  EXPECT_EQ(rows.size(), 27u) << r.out;
}

TEST(CliBench, PoolTableAndPlot) {
  const std::string svg = ::testing::TempDir() + "cli_bench_pool_" + std::to_string(::getpid()) + ".svg";
  const CliRun r = run("bench pool --quick --peer glibc --plot " + svg);
  if (built_without_bench(r)) GTEST_SKIP() << "built without bench/";
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("2-thread throughput relative to one thread"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("glibc malloc"), std::string::npos) << r.out;
  std::ifstream f(svg);
  std::stringstream text;
  text << f.rdbuf();
  EXPECT_EQ(text.str().rfind("<svg", 0), 0u) << text.str().substr(0, 200);
  EXPECT_NE(text.str().find("</svg>"), std::string::npos);
  EXPECT_NE(text.str().find("glibc"), std::string::npos);
  std::remove(svg.c_str());
  EXPECT_EQ(run("bench pool --quick --peer dpdk").rc, 2);
  EXPECT_EQ(run("bench pool --quick --backing frob").rc, 2);
}

// reserve -> status (every format) -> demo --pool -> reap -> release, with the
// exit codes of each refusal; and reserve --config FILE as the systemd unit runs it.
TEST(CliShared, ReserveStatusAttachReapRelease) {
  const std::string dir = ::testing::TempDir() + "cli_shared_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  ::setenv("NUMACMA_RUN_DIR", dir.c_str(), 1);
  const std::string topo = " --sysfs-root " + kData + "/arm64-4n";
  CliRun r = run("reserve q cma=16M cma_pernuma=4M --backing sim --policy nearest --json" + topo);
  ASSERT_EQ(r.rc, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["pool"], "q");
  EXPECT_EQ(j["areas"].size(), 5u);  // reserved + pernuma0..3
  EXPECT_EQ(run("reserve q cma=16M --backing sim" + topo).rc, 1);    // taken
  EXPECT_EQ(run("reserve bad/name cma=16M --backing sim" + topo).rc, 2);
  EXPECT_EQ(run("reserve r cma=12Q --backing sim" + topo).rc, 2);
  EXPECT_EQ(run("reserve r --backing sim" + topo).rc, 2);            // no PARAMS

  r = run("demo --pool q --json" + topo);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(json::parse(r.out)["all_returned"].get<bool>());

  r = run("status q --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  j = json::parse(r.out);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["pool"], "q");
  for (const char* k : {"name", "node", "pages", "used", "maxchunk", "segments", "alloc_pages_success",
                        "alloc_pages_fail", "release_pages_success"})
    EXPECT_TRUE(j["areas"][0].contains(k)) << k;
  EXPECT_TRUE(j["holders"].empty());  // demo detached
  std::uint64_t served = 0;
  for (const json& n : j["nodes"]) served += n["local"].get<std::uint64_t>() + n["fallback"].get<std::uint64_t>();
  EXPECT_GT(served, 0u);  // the demo's allocations, counted machine-wide
  r = run("status --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(json::parse(r.out).is_array());
  r = run("status q --prometheus");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("numacma_area_size_bytes{pool=\"q\",area=\"pernuma2\",node=\"2\"} 4194304"), std::string::npos)
      << r.out;
  const std::string svg = dir + "/q.svg";
  r = run("status q --svg " + svg + topo);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(std::filesystem::file_size(svg) > 1000);

  r = run("reap q --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["buffers"], 0);
  EXPECT_EQ(run("reap nosuch").rc, 1);
  EXPECT_EQ(run("release q").rc, 0);
  EXPECT_EQ(run("release q").rc, 1);

  const std::string conf = dir + "/c.conf";
  {
    std::ofstream f(conf);
    f << "# as /etc/numacma/NAME.conf\nparams=cma=8M\nbacking=sim\ngroup=0\n";
  }
  r = run("reserve c --config " + conf + topo);
  ASSERT_EQ(r.rc, 0) << r.err;
  r = run("status c --json");
  j = json::parse(r.out);
  EXPECT_EQ(j["backing"], "sim");
  EXPECT_EQ(j["mode"], "0660");  // group= makes it group-readable
  {
    std::ofstream f(conf);
    f << "params=cma=8M\nbogus=1\n";
  }
  r = run("reserve d --config " + conf + topo);
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("line 2"), std::string::npos) << r.err;
  EXPECT_EQ(run("release c").rc, 0);
  ::unsetenv("NUMACMA_RUN_DIR");
  std::filesystem::remove_all(dir);
}

// `bench alloc --pool NAME` and `bench pool --pool NAME` measure numacma on a
// shared pool (Pool::attach) and say so in each row's config.
TEST(CliBench, AllocAndPoolOnASharedPool) {
  const std::string dir = ::testing::TempDir() + "cli_bench_pool_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  ::setenv("NUMACMA_RUN_DIR", dir.c_str(), 1);
  const CliRun probe = run("bench alloc --quick --json --peer numacma --pool none");
  if (built_without_bench(probe)) {
    ::unsetenv("NUMACMA_RUN_DIR");
    GTEST_SKIP() << "built without bench/";
  }
  EXPECT_EQ(probe.rc, 1);  // no such reservation: numacma's rows skipped, with the reason
  ASSERT_EQ(run("reserve bq cma=1G --backing sim --sysfs-root " + kData + "/x86-2s").rc, 0);
  CliRun r = run("bench alloc --quick --json --peer numacma --pool bq");
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const json& row : json_lines(r.out)) {
    EXPECT_FALSE(row["skipped"].get<bool>()) << row.dump();
    EXPECT_NE(row["config"].get<std::string>().find("Pool::attach(bq)"), std::string::npos) << row.dump();
  }
  r = run("bench pool --quick --json --peer numacma --pool bq");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("on Pool::attach(bq)"), std::string::npos) << r.out;
  EXPECT_EQ(run("release bq").rc, 0);  // the benches detached: nothing held
  ::unsetenv("NUMACMA_RUN_DIR");
  std::filesystem::remove_all(dir);
}
