// Output that tells the truth, through the CLI run as a subprocess:
// `numacma doctor` on host fixtures (exit 0/1 as dma_usable), `demo` naming
// the kind of address and whether a device could use it (--json
// device_usable), `demo --example`, every --pool command on the
// reservation's own sysfs root, and `status` listing every reservation with
// a broken one marked (exit 1, the others still shown).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_run.hpp"

using cli_run::CliRun;
using cli_run::RunDir;
using cli_run::has;
using cli_run::run;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kData = NUMACMA_TEST_DATA;
const std::string kArm = "--sysfs-root " + kData + "/arm64-4n";

std::string host(const std::string& name, const std::string& sysfs) {
  const std::string h = kData + "/" + name;
  return "--sysfs-root " + kData + "/" + sysfs + " --proc-root " + h + "/proc --dev-root " + h +
         "/dev --modules-root " + h + "/lib/modules";
}


}  // namespace

TEST(CliDoctor, ExitsZeroOnlyWhenADeviceCouldDma) {
  CliRun r = run("doctor --json " + host("host-vfio", "x86-2s"));
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["dma_usable"], true);
  EXPECT_EQ(j["dma_paths"], json::array({"vfio"}));
  EXPECT_EQ(j["fixture"], true);
  EXPECT_EQ(j["checks"].size(), 11u);
  r = run("doctor " + host("host-bare", "vm1"));
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.out.rfind("numacma doctor: a FIXTURE, not this host", 0), 0u) << r.out;
  EXPECT_TRUE(has(r.out, "fix: as root: echo 373 > " + kData +
                             "/vm1/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages"))
      << r.out;
  EXPECT_TRUE(has(r.out, "amd_iommu=on")) << r.out;
  r = run("doctor --json " + host("host-root", "epyc-8n"));
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(json::parse(r.out)["dma_paths"], json::array({"physical"}));
  // This host: whatever it is, the exit code is dma_usable.
  r = run("doctor --json");
  ASSERT_TRUE(r.rc == 0 || r.rc == 1) << r.err;
  j = json::parse(r.out);
  EXPECT_EQ(j["fixture"], false);
  EXPECT_EQ(r.rc == 0, j["dma_usable"].get<bool>());
  EXPECT_EQ(run("doctor --proc-root").rc, 2);
}

TEST(CliDemo, EachBufferSaysWhetherADeviceCouldUseIt) {
  CliRun r = run("demo " + kArm);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "backing sim, policy kernel, 4 node(s), 6 PCI device(s), addresses simulated")) << r.out;
  EXPECT_TRUE(has(r.out, "  address  ")) << r.out;
  // The last line: whether a device could use these addresses, and what to do.
  const std::string last = r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1);
  EXPECT_EQ(last.rfind("devices: NO device can use these addresses: they are simulated (backing sim over the fixture ", 0),
            0u)
      << last;
  r = run("demo --json " + kArm);
  json j = json::parse(r.out);
  EXPECT_EQ(j["backing"], "sim") << "auto over a fixture";
  EXPECT_EQ(j["address_kind"], "simulated");
  EXPECT_EQ(j["device_usable"], false);
  for (const json& b : j["buffers"]) EXPECT_EQ(b["device_usable"], false) << b.dump();
  EXPECT_TRUE(has(j["device"].get<std::string>(), "simulated"));

  // On this machine with anon memory: virtual addresses, and the fix named.
  r = run("demo --json --backing anon --params cma=4M");
  if (r.rc != 0) GTEST_SKIP() << "anon memory on this host: " << r.err;
  j = json::parse(r.out);
  EXPECT_EQ(j["address_kind"], "virtual_only");
  std::size_t multi_page = 0;
  for (const json& b : j["buffers"]) {
    if (b["area"] == "pages") continue;  // a single page may carry its physical address
    ++multi_page;
    EXPECT_EQ(b["device_usable"], false) << b.dump();
  }
  EXPECT_GT(multi_page, 0u);
  EXPECT_TRUE(has(j["device"].get<std::string>(), "numacma vfio bind BDF")) << j["device"];
}

TEST(CliDemo, TheExampleMachineIsSimulatedAndSaysSo) {
  CliRun r = run("demo --example 4-node");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.rfind("numacma demo --example 4-node: a 4-node arm64 server, SIMULATED (", 0), 0u) << r.out;
  for (int n = 0; n < 4; ++n)
    EXPECT_TRUE(has(r.out, "\nnode" + std::to_string(n) + " ")) << r.out;
  EXPECT_TRUE(has(r.out, "0000:80:00.0  2            pernuma2  2")) << r.out;  // the SMMU on its own node
  EXPECT_TRUE(has(r.out, "devices: NO device can use these addresses: they are simulated, on an example machine"))
      << r.out;
  const json j = json::parse(run("demo --example 8-node --json").out);
  EXPECT_EQ(j["example"], "8-node");
  EXPECT_EQ(j["address_kind"], "simulated");
  std::size_t nodes = 0;
  for (const json& b : j["buffers"]) nodes += b["for"].get<std::string>().rfind("node", 0) == 0;
  EXPECT_EQ(nodes, 8u);
  EXPECT_EQ(run("demo --example 4-node " + kArm).rc, 2);
  EXPECT_EQ(run("demo --example 4-node --backing anon").rc, 2);
  EXPECT_EQ(run("demo --example 9-node").rc, 2);
}

// --pool: the reservation's sysfs root, in demo, status --svg and status's
// node facts; another --sysfs-root is refused rather than mixed in.
TEST(CliPool, EveryPoolCommandUsesTheReservationsRoot) {
  RunDir d("root");
  ASSERT_EQ(run("reserve q cma=16M cma_pernuma=4M --backing sim " + kArm).rc, 0);
  CliRun r = run("demo --pool q --json");
  ASSERT_EQ(r.rc, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["sysfs_root"], kData + "/arm64-4n");
  std::size_t nodes = 0;
  for (const json& b : j["buffers"]) nodes += b["for"].get<std::string>().rfind("node", 0) == 0;
  EXPECT_EQ(nodes, 4u) << "the reservation's 4 nodes, not this host's";
  r = run("demo --pool q --sysfs-root /sys");
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(has(r.err, "reservation 'q' was made over " + kData + "/arm64-4n")) << r.err;

  r = run("status q --svg -");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "data-node=\"3\"")) << "the fixture's node 3";
  EXPECT_TRUE(has(r.out, "0000:bd:00.0")) << "the fixture's devices";
  EXPECT_EQ(run("status q --svg - --sysfs-root /sys").rc, 2);
  EXPECT_EQ(run("status q --svg - " + kArm).rc, 0);

  j = json::parse(run("status q --json").out);
  EXPECT_EQ(j["sysfs_root"], kData + "/arm64-4n");
  std::size_t with_facts = 0;
  for (const json& n : j["nodes"])
    if (n["node"].get<int>() >= 0) {
      ++with_facts;
      EXPECT_EQ(n["hugepages_total"], 1024) << "the fixture's, not this host's: " << n.dump();
    }
  EXPECT_EQ(with_facts, 4u);
}

TEST(CliStatus, EveryPoolIsListedAndABrokenOneMarked) {
  RunDir d("broken");
  ASSERT_EQ(run("reserve q cma=8M --backing sim " + kArm).rc, 0);
  // A reservation whose keeper is not running: its directory without a socket.
  fs::create_directories(d.dir + "/pools/zz");
  fs::permissions(d.dir + "/pools/zz", fs::perms(0755));

  CliRun r = run("status --json");
  EXPECT_EQ(r.rc, 1);
  json j = json::parse(r.out);
  ASSERT_EQ(j.size(), 2u) << r.out;
  EXPECT_EQ(j[0]["pool"], "q");
  EXPECT_FALSE(j[0].contains("error"));
  EXPECT_EQ(j[1]["pool"], "zz");
  EXPECT_EQ(j[1]["code"], "not_found");
  EXPECT_TRUE(has(j[1]["error"].get<std::string>(), "has no keeper running")) << j[1];
  EXPECT_TRUE(has(r.err, "numacma status: 1 of 2 reservation(s) could not be read: zz")) << r.err;

  r = run("status");
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.out, "pool q: cma=8M")) << r.out;
  EXPECT_TRUE(has(r.out, "pool zz: CANNOT BE READ (not_found): ")) << r.out;

  r = run("status --prometheus");
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.out.rfind("# numacma: pool zz skipped: ", 0), 0u) << r.out;
  EXPECT_TRUE(has(r.out, "numacma_pool_info{pool=\"q\"")) << r.out;
  EXPECT_FALSE(has(r.out, "pool=\"zz\"")) << r.out;

  // A file that cannot be written says why.
  r = run("status q --svg /nonexistent/q.svg");
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(has(r.err, "numacma status: --svg: open(/nonexistent/q.svg, O_CREAT): No such file or directory"))
      << r.err;

  // Named, the broken one fails alone; the good one answers.
  EXPECT_EQ(run("status zz").rc, 1);
  EXPECT_EQ(run("status q").rc, 0);
  fs::remove_all(d.dir + "/pools/zz");
  EXPECT_EQ(run("status").rc, 0);
}
