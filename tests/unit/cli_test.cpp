// The CLI's contract (DESIGN.md "CLI"): every command takes --json and
// --help; unknown flags and bad values exit 2 with a message on stderr;
// failures exit 1; JSON output matches the fixture it was read from.
#include <gtest/gtest.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

using nlohmann::json;

namespace {

struct CliRun {
  int rc = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

CliRun run(const std::string& args, const std::string& stdin_text = "") {
  static int seq = 0;
  const std::string base = ::testing::TempDir() + "cli_test_" + std::to_string(::getpid()) + "_" +
                           std::to_string(seq++);
  std::string cmd = std::string(NUMACMA_CLI) + " " + args + " 2>" + base + ".err";
  if (!stdin_text.empty()) {
    FILE* f = std::fopen((base + ".in").c_str(), "w");
    std::fputs(stdin_text.c_str(), f);
    std::fclose(f);
    cmd += " <" + base + ".in";
  } else {
    cmd += " </dev/null";
  }
  CliRun r;
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[4096];
  while (p != nullptr && std::fgets(buf, sizeof buf, p) != nullptr) r.out += buf;
  const int st = p == nullptr ? -1 : ::pclose(p);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  if (FILE* e = std::fopen((base + ".err").c_str(), "r")) {
    while (std::fgets(buf, sizeof buf, e) != nullptr) r.err += buf;
    std::fclose(e);
  }
  std::remove((base + ".err").c_str());
  std::remove((base + ".in").c_str());
  return r;
}

const std::string kData = NUMACMA_TEST_DATA;
const std::string kArm = "--sysfs-root " + kData + "/arm64-4n";

}  // namespace

TEST(Cli, HelpForEveryCommand) {
  for (const char* c : {"topo", "plan", "replay", "demo", "bench"}) {
    const CliRun r = run(std::string(c) + " --help");
    EXPECT_EQ(r.rc, 0) << c;
    EXPECT_NE(r.out.find("--json"), std::string::npos) << c << ": " << r.out;
  }
  EXPECT_EQ(run("--help").rc, 0);
}

TEST(Cli, BadUsageExitsTwoWithAMessage) {
  for (const char* args : {"", "frobnicate", "topo --bogus", "plan", "plan cma=12Q",
                           "plan numa_cma=1:", "plan numa_cma=x:4M", "plan --order-per-bit 99 cma=1M",
                           "replay --params cma=1M --policy far -", "replay --params cma=1M --backing x -",
                           "replay --params cma=1M --device-area smmu:two:64K -",
                           "replay --params cma=1M --device-area smmu:2:9Q -",
                           "replay --params cma=7Z -", "demo --size 0", "demo --size 12Q"}) {
    const CliRun r = run(args, "alloc a 0 4K\n");
    EXPECT_EQ(r.rc, 2) << "numacma " << args << "\nstdout: " << r.out << "\nstderr: " << r.err;
    EXPECT_FALSE(r.err.empty()) << "numacma " << args;
  }
}

TEST(Cli, FailuresExitOne) {
  EXPECT_EQ(run("topo --sysfs-root /nonexistent").rc, 1);
  EXPECT_EQ(run("replay --params cma=1M --backing sim " + kArm + " /nonexistent.trace").rc, 1);
  const CliRun r = run("topo --sysfs-root /nonexistent");
  EXPECT_NE(r.err.find("/nonexistent"), std::string::npos) << r.err;
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
