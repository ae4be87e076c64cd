// The CLI's conventions, each command alike (docs/cli.md "Conventions"):
// --version, help, bare numacma, the unknown-command list from the command
// table, the "numacma CMD:" prefix of every parse error, sizes in IEC units
// in tables and messages, lspci's leading zeros in topo, errno text for
// files, and reserve of nothing exiting 1. The CLI runs as a subprocess.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
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


}  // namespace

TEST(CliConventions, VersionIsTheProjects) {
  for (const char* flag : {"--version", "-V"}) {
    const CliRun r = run(flag);
    EXPECT_EQ(r.rc, 0) << flag;
    EXPECT_EQ(r.out, std::string("numacma ") + NUMACMA_VERSION + "\n") << flag;
    EXPECT_EQ(r.err, "") << flag;
  }
}

TEST(CliConventions, BareNumacmaAndHelpPrintTheCommandsAndExitZero) {
  const CliRun bare = run("");
  EXPECT_EQ(bare.rc, 0);
  EXPECT_EQ(bare.err, "");
  for (const char* c : {"doctor", "topo", "plan", "replay", "demo", "bench", "vfio", "nvme-selftest", "reserve",
                        "release", "reap", "status", "help"})
    EXPECT_TRUE(std::regex_search(bare.out, std::regex("\n  " + std::string(c) + " "))) << c << "\n" << bare.out;
  EXPECT_EQ(run("help").out, bare.out);
  EXPECT_EQ(run("--help").out, bare.out);
  const CliRun demo = run("help demo");
  EXPECT_EQ(demo.rc, 0);
  EXPECT_TRUE(has(demo.out, "Usage: numacma demo")) << demo.out;
  EXPECT_TRUE(has(demo.out, "--example")) << demo.out;
  EXPECT_EQ(demo.out, run("demo --help").out);
  const CliRun bind = run("help vfio bind");
  EXPECT_EQ(bind.rc, 0);
  EXPECT_TRUE(has(bind.out, "Usage: numacma vfio bind")) << bind.out;
  const CliRun bad = run("help frob");
  EXPECT_EQ(bad.rc, 2);
  EXPECT_EQ(bad.err.rfind("numacma help: unknown command 'frob' (commands: doctor, topo,", 0), 0u) << bad.err;
  const CliRun bad_sub = run("help vfio frob");
  EXPECT_EQ(bad_sub.rc, 2);
  EXPECT_TRUE(has(bad_sub.err, "unknown command 'vfio frob' (commands: bind, unbind)")) << bad_sub.err;
}

TEST(CliConventions, TheUnknownCommandListIsTheCommandTable) {
  const CliRun r = run("frobnicate");
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err,
            "numacma: unknown command 'frobnicate' (commands: doctor, topo, plan, replay, demo, bench, vfio, "
            "nvme-selftest, reserve, release, reap, status, help; see numacma help)\n");
}

TEST(CliConventions, EveryParseErrorNamesItsCommand) {
  for (const char* c : {"doctor", "topo", "plan", "replay", "demo", "vfio bind", "vfio unbind", "nvme-selftest",
                        "reserve", "release", "reap", "status", "bench alloc", "bench pool", "bench scaling"}) {
    const CliRun r = run(std::string(c) + " --no-such-flag");
    EXPECT_EQ(r.rc, 2) << c << ": " << r.err;
    EXPECT_EQ(r.err.rfind("numacma " + std::string(c) + ": ", 0), 0u) << c << ": " << r.err;
  }
  const CliRun missing = run("plan");
  EXPECT_EQ(missing.err.rfind("numacma plan: ", 0), 0u) << missing.err;
  const CliRun value = run("replay --params cma=1M --policy far -");
  EXPECT_EQ(value.err.rfind("numacma replay: ", 0), 0u) << value.err;
  const CliRun top = run("--frob");
  EXPECT_EQ(top.rc, 2);
  EXPECT_EQ(top.err.rfind("numacma: ", 0), 0u) << top.err;
}

TEST(CliConventions, SizesInTablesAreIecUnits) {
  CliRun r = run("plan " + kArm + " cma=16M cma_pernuma=4M");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "5 area(s), 32 MiB in all")) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("reserved +default +0 +16 MiB "))) << r.out;
  EXPECT_FALSE(std::regex_search(r.out, std::regex(" [0-9]+[KMG] "))) << r.out;
  r = run("topo " + kArm);
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\n0 +64 GiB +0-31 +2 MiB: 1024/1024  1 GiB: 0/0\n"))) << r.out;
  r = run("replay --backing sim " + kArm + " --params 'cma=2M cma_pernuma=1M' -", "alloc a 2 64K\nfree a\n");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(has(r.out, "dma 0x2000000000  64 KiB  local")) << r.out;
  // The areas table: sizes, never page counts (pernuma2: 1 MiB rounded to a 2 MiB
  // pageblock, 64 KiB allocated and released).
  EXPECT_TRUE(std::regex_search(r.out, std::regex("pernuma2 +pernuma +2 +sim +0x2000000000 +2 MiB +0 B +2 MiB +1 +2 MiB "
                                                  "+64 KiB +0 B +64 KiB\n")))
      << r.out;
}

TEST(CliConventions, TopoKeepsLspcisLeadingZeros) {
  // vm1's host bridge is 8086:0d57 (class 0x060000): 4 hex digits each, as lspci shows them.
  const CliRun r = run("topo --sysfs-root " + kData + "/vm1");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\n0000:00:00\\.0 +-1 \\(none\\) +0x8086:0x0d57 +0x060000 ")))
      << r.out;
  // JSON keeps the numbers as they were: "0xd57".
  const json j = json::parse(run("topo --json --sysfs-root " + kData + "/vm1").out);
  EXPECT_EQ(j["pci"][0]["device"], "0xd57");
}

TEST(CliConventions, ReservingNothingExitsOne) {
  RunDir d("nothing");
  const CliRun r = run("reserve r cma=0 --backing sim " + kArm);
  EXPECT_EQ(r.rc, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.err, "numacma reserve: 'cma=0' plans no area, so there is nothing to reserve")) << r.err;
  EXPECT_EQ(run("status --json").out, "[]\n");
}

TEST(CliConventions, FileErrorsSayWhy) {
  CliRun r = run("replay --params cma=1M --backing sim " + kArm + " /nonexistent.trace");
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, "numacma replay: trace: open(/nonexistent.trace): No such file or directory\n");
  RunDir d("files");
  r = run("reserve r --config /nonexistent.conf " + kArm);
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, "numacma reserve: --config: open(/nonexistent.conf): No such file or directory\n");
  r = run("bench alloc --quick --peer numacma --plot /nonexistent/a.svg");
  if (!has(r.err, "built without benchmarks")) {
    EXPECT_EQ(r.rc, 1);
    EXPECT_TRUE(has(r.err, "--plot: open(/nonexistent/a.svg, O_CREAT): No such file or directory")) << r.err;
  }
}

// A fixture is a fixture: over any tree but /sys, auto means sim and a real
// backing is refused, in every pool command.
TEST(CliConventions, AFixtureMeansSimulatedMemory) {
  CliRun r = run("replay --json --backing auto --params cma=4M " + kArm + " -", "alloc a 0 4K\n");
  ASSERT_EQ(r.rc, 0) << r.err;
  const json stats = json::parse(r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1));  // the last line
  ASSERT_EQ(stats["op"], "stats") << r.out;
  EXPECT_EQ(stats["areas"][0]["backing"], "sim") << "auto over a fixture";
  for (const char* cmd : {"demo --backing anon", "demo --backing hugetlb", "replay --params cma=1M --backing anon",
                          "bench alloc --quick --peer numacma --backing anon"}) {
    r = run(std::string(cmd) + " " + kArm + (has(cmd, "replay") ? " -" : ""), "alloc a 0 4K\n");
    if (has(r.err, "built without benchmarks")) continue;
    EXPECT_NE(r.rc, 0) << cmd;
    // bench: the reason is numacma's row (stdout), the failure on stderr.
    EXPECT_TRUE(has(r.out + r.err, "is a fixture, not this machine")) << cmd << ": " << r.out << r.err;
  }
  RunDir d("fixture");
  r = run("reserve r cma=8M --backing hugetlb " + kArm);
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_TRUE(has(r.err, "is a fixture")) << r.err;
  ASSERT_EQ(run("reserve r cma=8M " + kArm).rc, 0);  // auto: sim
  EXPECT_EQ(json::parse(run("status r --json").out)["backing"], "sim");
}
