// numacma bench through the CLI: the JSON rows' shape (no timing
// assertions), the table and plot, and the benches on a shared pool.
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
#include <utility>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "cli_run.hpp"

using nlohmann::json;

namespace {

using cli_run::CliRun;
using cli_run::run;

const std::string kData = NUMACMA_TEST_DATA;

}  // namespace

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
