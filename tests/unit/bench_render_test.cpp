// The benchmarks' one renderer (bench/lib/rows.hpp, render.cpp): rows -> a
// text table and JSON lines; a skipped peer prints null timings, a missed
// target shows as missed; and the row builders of some benchmarks over
// made-up reports (no benchmark runs here, no timing is asserted).
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "bench.hpp"

namespace {

using numacma::bench::Json;
namespace b = numacma::bench;

std::vector<Json> lines(const std::string& text) {
  std::vector<Json> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(Json::parse(l));
  return out;
}

/** An alloc-like section: numacma measured, dpdk skipped. */
b::Output two_peers() {
  b::Section s;
  s.intro = {"numacma bench demo: two peers", ""};
  s.configurations_title = "configurations";
  b::Row n;
  n.bench = "demo";
  n.cases = {b::col("peer", "numacma", "numacma"), b::col("size", 4096, "4 KiB"), b::json_col("hidden", 7),
             b::text_col("shown", "text only")};
  n.peer = "numacma";
  n.config = "Pool::create(cma=1G, backing sim)";
  n.median_ns = 123.456;
  n.p99_ns = 234.567;
  n.ratio = 1.0;
  b::Row d = n;
  d.cases[0] = b::col("peer", "dpdk", "dpdk");
  d.peer = "dpdk";
  d.config = "rte_malloc_socket, align 64";
  d.skipped = true;
  d.reason = "no EAL";
  s.rows = {n, d};
  s.outro = {"the end"};
  return {{s}};
}

TEST(BenchRender, TextTable) {
  const std::string t = b::render_text(two_peers());
  EXPECT_EQ(t,
            "numacma bench demo: two peers\n"
            "\n"
            "configurations:\n"
            "  numacma  Pool::create(cma=1G, backing sim)\n"
            "  dpdk     rte_malloc_socket, align 64\n"
            "\n"
            "peer     size   shown      median ns  p99 ns  ratio  note\n"
            "numacma  4 KiB  text only  123.5      234.6   1.00x\n"
            "dpdk     4 KiB  text only  -          -       -      skipped: no EAL\n"
            "\n"
            "the end\n");
}

TEST(BenchRender, JsonLinesSkippedPeerHasNullTimings) {
  const std::vector<Json> rows = lines(b::render_json(two_peers()));
  ASSERT_EQ(rows.size(), 2u);
  const Json& n = rows[0];
  EXPECT_EQ(n.dump(),
            R"({"bench":"demo","peer":"numacma","size":4096,"hidden":7,"median_ns":123.5,"p99_ns":234.6,)"
            R"j("ratio":1.0,"skipped":false,"config":"Pool::create(cma=1G, backing sim)"})j");
  const Json& d = rows[1];
  EXPECT_TRUE(d["median_ns"].is_null()) << d;
  EXPECT_TRUE(d["p99_ns"].is_null()) << d;
  EXPECT_TRUE(d["ratio"].is_null()) << d;
  EXPECT_EQ(d["skipped"], true);
  EXPECT_EQ(d["reason"], "no EAL");
  EXPECT_EQ(d["config"], "rte_malloc_socket, align 64");
  EXPECT_FALSE(d.contains("shown")) << "a text-only column is not in JSON: " << d;
  EXPECT_FALSE(d.contains("target")) << d;
}

TEST(BenchRender, MissedTargetShowsAsMissed) {
  b::Section s;
  b::Row r;
  r.bench = "demo";
  r.cases = {b::col("case", "big", "big")};
  r.median_ns = 2000;
  r.p99_ns = 3000;
  r.ratio = 2.0;
  r.target = b::ratio_target("<=", 1.5);
  r.met = false;
  r.note = "see below";
  b::Row ok = r;
  ok.cases = {b::col("case", "small", "small")};
  ok.ratio = 1.0;
  ok.met = true;
  ok.note.clear();
  s.rows = {ok, r};
  const std::string t = b::render_text({{s}});
  EXPECT_NE(t.find("small  2000.0     3000.0  1.00x  target <= 1.5x: met\n"), std::string::npos) << t;
  EXPECT_NE(t.find("big    2000.0     3000.0  2.00x  target <= 1.5x: MISSED; see below\n"), std::string::npos) << t;
  const std::vector<Json> rows = lines(b::render_json({{s}}));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["met"], true);
  EXPECT_EQ(rows[1]["met"], false);
  EXPECT_EQ(rows[1]["target"], "<= 1.5x");
  // A skipped row's verdict is unknown: null, and the text says skipped.
  r.skipped = true;
  r.reason = "no host";
  s.rows = {r};
  EXPECT_TRUE(lines(b::render_json({{s}}))[0]["met"].is_null());
  EXPECT_NE(b::render_text({{s}}).find("skipped: no host"), std::string::npos);
}

TEST(BenchRender, SkippedFieldUnitsAndTextOnlySections) {
  b::Section s;
  s.json_unit = s.text_unit = b::Unit::ms;
  s.json_quantum = 0.01;
  b::Row r;
  r.bench = "demo";
  r.cases = {b::col("who", "mmap", "mmap")};
  r.median_ns = 1.23456e6;
  r.p99_ns = 2e6;
  r.skipped_field = b::SkippedField::when_skipped;
  r.json_config = false;
  s.rows = {r};
  b::Section text_only;
  text_only.json = false;
  text_only.timings = false;
  text_only.rows = {r};
  const std::vector<Json> rows = lines(b::render_json({{s, text_only}}));
  ASSERT_EQ(rows.size(), 1u) << "a text-only section prints no JSON";
  EXPECT_EQ(rows[0].dump(), R"({"bench":"demo","who":"mmap","median_ms":1.23,"p99_ms":2.0})");
  r.skipped = true;
  r.reason = "x";
  r.skipped_field = b::SkippedField::never;
  s.rows = {r};
  const Json j = lines(b::render_json({{s}}))[0];
  EXPECT_FALSE(j.contains("skipped")) << j;
  EXPECT_TRUE(j["median_ms"].is_null()) << j;
  const std::string t = b::render_text({{text_only}});
  EXPECT_EQ(t, "who\nmmap\n");
}

TEST(BenchRender, ScalingRowsCarryTheTarget) {
  b::ScalingReport r;
  r.small.area_bytes = 64ULL << 20;
  r.large.area_bytes = 64ULL << 30;
  r.small.median_ns = 50;
  r.large.median_ns = 100;
  r.ratio = 2.0;
  r.cpu = 3;
  const b::Output out = b::scaling_output({}, r);
  const std::vector<Json> rows = lines(b::render_json(out));
  ASSERT_EQ(rows.size(), 2u);
  for (const char* k : {"bench", "area_bytes", "blocks", "holes", "used_pct", "metadata_bytes", "refill_pct",
                        "median_ns", "p99_ns", "ratio", "cpu"})
    EXPECT_TRUE(rows[1].contains(k)) << k;
  EXPECT_FALSE(rows[1].contains("skipped"));
  EXPECT_EQ(rows[0]["ratio"], 1.0);
  EXPECT_FALSE(rows[0].contains("target"));
  EXPECT_EQ(rows[1]["target"], b::ratio_target("<=", b::kScalingMaxRatio));
  EXPECT_EQ(rows[1]["met"], false);
  const std::string t = b::render_text(out);
  EXPECT_NE(t.find("target <= 1.5x: MISSED"), std::string::npos) << t;
  EXPECT_NE(t.find("measured on CPU 3"), std::string::npos) << t;
}

TEST(BenchRender, PoolJsonKeepsItsFieldsAndTheSummaryIsTextOnly) {
  b::PoolBenchOptions o;
  o.objects = {64};
  o.peers = {"numacma", "dpdk-mempool"};
  b::PoolBenchReport r;
  for (auto [threads, cross] : {std::pair{1u, false}, std::pair{2u, false}, std::pair{2u, true}}) {
    b::PoolBenchResult x;
    x.peer = "numacma";
    x.object = 64;
    x.threads = threads;
    x.cross = cross;
    x.median_ns = threads == 1 ? 10 : 20;  // 2 x 10 / 20 = 1.0x: under the target
    x.ratio = 1;
    x.config = "DmaPool";
    r.results.push_back(x);
    x.peer = "dpdk-mempool";
    x.skipped = true;
    x.reason = "no DPDK";
    r.results.push_back(x);
  }
  const b::Output out = b::pool_output(o, r);
  const std::vector<Json> rows = lines(b::render_json(out));
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[0].dump(), R"({"bench":"pool","peer":"numacma","object":64,"threads":1,"cross":false,)"
                            R"("median_ns":10.0,"p99_ns":0.0,"ratio":1.0,"config":"DmaPool"})");
  EXPECT_EQ(rows[1]["skipped"], true);
  EXPECT_TRUE(rows[1]["median_ns"].is_null());
  const std::string t = b::render_text(out);
  EXPECT_NE(t.find("2-thread throughput relative to one thread"), std::string::npos) << t;
  EXPECT_NE(t.find("target >= 1.8x: MISSED"), std::string::npos) << t;
}

TEST(BenchRender, SharedUnavailableSaysSkippedOnce) {
  b::SharedReport r;
  b::SharedAllocResult a;
  a.setup = "private";
  a.size = a.align = 4096;
  a.skipped = a.unavailable = true;
  a.reason = "no hugetlbfs";
  r.alloc = {a, a};
  b::SharedRecoveryResult rec;
  rec.what = "reap";
  rec.skipped = rec.unavailable = true;
  rec.reason = "no hugetlbfs";
  r.recovery = {rec};
  const b::Output out = b::shared_output({}, r);
  const std::string t = b::render_text(out);
  EXPECT_NE(t.find("alloc: skipped: no hugetlbfs"), std::string::npos) << t;
  EXPECT_NE(t.find("recovery: skipped: no hugetlbfs"), std::string::npos) << t;
  EXPECT_EQ(t.find("median ns"), std::string::npos) << "no table when every row is unavailable: " << t;
  const std::vector<Json> rows = lines(b::render_json(out));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2]["case"], "recovery");
  EXPECT_TRUE(rows[2]["median_ns"].is_null());
  EXPECT_FALSE(rows[2].contains("ratio"));
  EXPECT_TRUE(rows[2]["met"].is_null());
}

}  // namespace
