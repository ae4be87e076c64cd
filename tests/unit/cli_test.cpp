// The CLI's contract (docs/design.md "CLI"): every command takes --json and
// --help; unknown flags and bad values exit 2 with a message on stderr;
// failures exit 1; JSON output matches the fixture it was read from.
// (The vfio commands: cli_vfio_test.cpp; numacma bench: cli_bench_test.cpp.)
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
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
                           "status --svg - --json", "plan --kernel 7.1 cma=1M",
                           "plan --cma-size-pernuma cma=1M", "replay --params cma=1M --kernel 6.1 -",
                           "replay --params cma=1M --cma-size-pernuma -"}) {
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
