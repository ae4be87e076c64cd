// The text outputs of `numacma status` (tools/numacma/status_render.hpp) over
// a hand-built status: the JSON contract, the tables, and the Prometheus text
// format as a scraper parses it.
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "status_render.hpp"
#include "status_sample.hpp"

using namespace numacma;
using namespace status_sample;
using numacma::cli::status_json;
using numacma::cli::status_prometheus;
using numacma::cli::status_text;

namespace {

std::vector<std::string> keys(const nlohmann::ordered_json& o) {
  std::vector<std::string> k;
  for (auto it = o.begin(); it != o.end(); ++it) k.push_back(it.key());
  return k;
}
std::vector<std::string> first(std::vector<std::string> v, std::size_t n) {
  v.resize(std::min(n, v.size()));
  return v;
}

}  // namespace

// ---- JSON -------------------------------------------------------------------

TEST(StatusJson, ContractedKeysFirstAndInOrder) {
  const auto j = status_json(sample());
  EXPECT_EQ(first(keys(j), 4), (std::vector<std::string>{"pool", "areas", "holders", "nodes"}));
  EXPECT_EQ(j["pool"], "dpdk");
  ASSERT_EQ(j["areas"].size(), 2u);
  EXPECT_EQ(first(keys(j["areas"][0]), 9),
            (std::vector<std::string>{"name", "node", "pages", "used", "maxchunk", "segments",
                                      "alloc_pages_success", "alloc_pages_fail",
                                      "release_pages_success"}));
  ASSERT_EQ(j["holders"].size(), 2u);
  EXPECT_EQ(first(keys(j["holders"][0]), 4),
            (std::vector<std::string>{"pid", "comm", "alive", "pages"}));
  ASSERT_EQ(j["nodes"].size(), 2u);
  EXPECT_EQ(first(keys(j["nodes"][0]), 7),
            (std::vector<std::string>{"node", "local", "fallback", "pages", "other_node", "default",
                                      "failed"}));
}

TEST(StatusJson, Values) {
  const auto j = status_json(sample());
  const auto& r = j["areas"][0];
  EXPECT_EQ(r["name"], "reserved");
  EXPECT_EQ(r["node"], 0);
  EXPECT_EQ(r["pages"], 16384);
  EXPECT_EQ(r["used"], 1040);
  EXPECT_EQ(r["maxchunk"], 16384 - 1040);
  EXPECT_EQ(r["segments"], 1);
  EXPECT_EQ(r["alloc_pages_success"], 1040);
  EXPECT_EQ(r["alloc_pages_fail"], 3);
  EXPECT_EQ(r["release_pages_success"], 7);
  EXPECT_EQ(r["bytes"], 16384ull * 4096);
  EXPECT_EQ(r["recoveries"], 2);
  EXPECT_EQ(r["reaped_pages"], 64);
  EXPECT_EQ(r["longest_segment"], 16384);

  const auto& h = j["holders"][0];
  EXPECT_EQ(h["pid"], 4242);
  EXPECT_EQ(h["comm"], "l3fwd");
  EXPECT_EQ(h["alive"], true);
  EXPECT_EQ(h["pages"], (nlohmann::ordered_json{{"reserved", 1024}, {"pernuma2", 1}}));
  EXPECT_EQ(h["pages_total"], 1025);
  EXPECT_EQ(h["buffers"], 3);
  EXPECT_EQ(h["start_time"], 99);
  EXPECT_EQ(j["holders"][1]["alive"], false);
  EXPECT_EQ(j["holders"][1]["comm"], "ev\"il\\<x>&\n");

  const auto& n = j["nodes"][0];
  EXPECT_EQ(n["node"], 0);
  EXPECT_EQ(n["local"], 5);
  EXPECT_EQ(n["fallback"], 3);  // other_node + default
  EXPECT_EQ(n["pages"], 9);
  EXPECT_EQ(n["other_node"], 1);
  EXPECT_EQ(n["default"], 2);
  EXPECT_EQ(n["failed"], 1);
  EXPECT_EQ(n["numastat"]["numa_hit"], 1000);
  EXPECT_EQ(n["numastat"]["other_node"], 13);
  EXPECT_EQ(n["hugepages_total"], 1024);
  EXPECT_EQ(n["hugepages_free"], 1000);
  // -1 (unreadable) is null.
  const auto& none = j["nodes"][1];
  EXPECT_EQ(none["node"], -1);
  EXPECT_TRUE(none["numastat"]["numa_hit"].is_null());
  EXPECT_TRUE(none["hugepages_total"].is_null());

  EXPECT_EQ(j["mode"], "0660");
  EXPECT_EQ(j["gid"], 1001);
  EXPECT_EQ(j["sysfs_root"], "/sys");
  EXPECT_EQ(keys(j).back(), "sysfs_root");  // after the contracted keys
  // The dump round-trips through a plain (sorted) json.
  EXPECT_EQ(nlohmann::json::parse(j.dump())["areas"][1]["name"], "pernuma2");
}

TEST(StatusText, TablesNameEverything) {
  const std::string t = status_text(sample());
  EXPECT_NE(t.find("pool dpdk: cma=64M cma_pernuma=16M"), std::string::npos) << t;
  EXPECT_NE(t.find("mode 0660"), std::string::npos);
  EXPECT_NE(t.find("reserved 4 MiB, pernuma2 4 KiB"), std::string::npos) << t;  // held, as sizes
  // Sizes, never page counts, in the tables: reserved is 64 MiB, pernuma2 4 GiB
  // with 4 KiB used, 4 GiB less a page free (one decimal: not whole).
  EXPECT_NE(t.find("64 MiB"), std::string::npos) << t;
  EXPECT_NE(t.find("4 GiB"), std::string::npos) << t;
  EXPECT_NE(t.find("4.0 GiB"), std::string::npos) << t;
  EXPECT_EQ(t.find("16384"), std::string::npos) << t;
  EXPECT_EQ(t.find("1048575"), std::string::npos) << t;
  EXPECT_NE(t.find("DEAD"), std::string::npos);
  EXPECT_NE(t.find("1000/1024"), std::string::npos) << t;
  EXPECT_NE(t.find("maxchunk"), std::string::npos);
  PoolStatus empty = sample();
  empty.holders.clear();
  EXPECT_NE(status_text(empty).find("holders: none"), std::string::npos);
}

// ---- Prometheus ---------------------------------------------------------------

namespace {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  std::string value;
};

/** Parses the text format as a scraper would; fails the test on any line
 *  out of shape, a sample before its family's HELP and TYPE, a family
 *  declared twice or split. */
std::vector<Sample> parse_exposition(const std::string& text) {
  std::vector<Sample> out;
  std::set<std::string> declared, closed;
  std::string family, help_of;
  const std::regex name_re("[a-zA-Z_:][a-zA-Z0-9_:]*");
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t nl = text.find('\n', pos);
    EXPECT_NE(nl, std::string::npos) << "last line without a newline";
    if (nl == std::string::npos) break;
    const std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.rfind("# HELP ", 0) == 0) {
      const std::string name = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(std::regex_match(name, name_re)) << line;
      EXPECT_TRUE(declared.insert(name).second) << "family declared twice: " << name;
      if (!family.empty()) closed.insert(family);
      help_of = name;
      family = "";
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      const std::string rest = line.substr(7);
      const std::string name = rest.substr(0, rest.find(' '));
      const std::string type = rest.substr(rest.find(' ') + 1);
      EXPECT_EQ(name, help_of) << "TYPE without its HELP: " << line;
      EXPECT_TRUE(type == "counter" || type == "gauge") << line;
      if (type == "counter") {
        EXPECT_TRUE(name.size() > 6 && name.substr(name.size() - 6) == "_total") << name;
      }
      family = name;
      continue;
    }
    if (line[0] == '#') continue;  // any other comment: a scraper skips it
    Sample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    EXPECT_EQ(s.name, family) << "sample outside its family: " << line;
    EXPECT_FALSE(closed.count(s.name)) << "family split: " << line;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const std::size_t eq = line.find('=', i);
        const std::string key = line.substr(i, eq - i);
        EXPECT_TRUE(std::regex_match(key, name_re)) << line;
        EXPECT_EQ(line[eq + 1], '"') << line;
        std::string value;
        std::size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            ++j;
            EXPECT_TRUE(line[j] == '\\' || line[j] == '"' || line[j] == 'n') << line;
            value += line[j] == 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        s.labels[key] = value;
        i = j + 1;
        if (line[i] == ',') ++i;
      }
      ++i;
    }
    EXPECT_EQ(line[i], ' ') << line;
    s.value = line.substr(i + 1);
    EXPECT_TRUE(std::regex_match(s.value, std::regex("-?[0-9]+"))) << line;
    out.push_back(s);
  }
  return out;
}

const Sample* find(const std::vector<Sample>& v, const std::string& name,
                   const std::map<std::string, std::string>& labels) {
  for (const Sample& s : v) {
    if (s.name != name) continue;
    bool all = true;
    for (const auto& [k, val] : labels) all &= s.labels.count(k) && s.labels.at(k) == val;
    if (all) return &s;
  }
  return nullptr;
}

}  // namespace

TEST(StatusPrometheus, ParsesWithTheValuesAndLabels) {
  PoolStatus other = sample();
  other.name = "spdk";
  const std::string text = status_prometheus({sample(), other});
  const std::vector<Sample> v = parse_exposition(text);
  ASSERT_FALSE(v.empty()) << text;

  // Amounts of memory in bytes (the status's 4 KiB pages converted).
  const Sample* s = find(v, "numacma_area_used_bytes", {{"pool", "dpdk"}, {"area", "reserved"}});
  ASSERT_NE(s, nullptr) << text;
  EXPECT_EQ(s->value, std::to_string(1040 * 4096));
  EXPECT_EQ(s->labels.at("node"), "0");
  s = find(v, "numacma_area_size_bytes", {{"pool", "dpdk"}, {"area", "reserved"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, std::to_string(64 << 20));
  s = find(v, "numacma_area_alloc_failed_bytes_total", {{"pool", "spdk"}, {"area", "reserved"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, std::to_string(3 * 4096));
  s = find(v, "numacma_area_reaped_bytes_total", {{"pool", "dpdk"}, {"area", "reserved"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, std::to_string(64 * 4096));
  s = find(v, "numacma_area_maxchunk_bytes", {{"pool", "dpdk"}, {"area", "pernuma2"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, std::to_string(((1ull << 20) - 1) * 4096));
  s = find(v, "numacma_area_segments", {{"pool", "dpdk"}, {"area", "pernuma2"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, "1");  // a count, not an amount

  // The dead holder's comm comes back unescaped from its label.
  s = find(v, "numacma_holder_bytes", {{"pool", "dpdk"}, {"pid", "17"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->labels.at("comm"), "ev\"il\\<x>&\n");
  EXPECT_EQ(s->labels.at("alive"), "false");
  EXPECT_EQ(s->value, std::to_string(16 * 4096));
  EXPECT_NE(text.find("comm=\"ev\\\"il\\\\<x>&\\n\""), std::string::npos) << text;

  s = find(v, "numacma_node_allocs_total", {{"pool", "dpdk"}, {"node", "0"}, {"served", "default"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, "2");
  ASSERT_NE(find(v, "numacma_node_allocs_total", {{"node", "-1"}, {"served", "pages"}}), nullptr);

  // The machine's counters once per node, without a pool; none where unreadable.
  int hits = 0;
  for (const Sample& x : v)
    if (x.name == "numacma_node_numa_hit_total") {
      ++hits;
      EXPECT_EQ(x.labels.count("pool"), 0u);
      EXPECT_EQ(x.value, "1000");
    }
  EXPECT_EQ(hits, 1);
  s = find(v, "numacma_node_other_node_total", {{"node", "0"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, "13");
  // Capacity and what is free now are two families (their sum would mean nothing).
  s = find(v, "numacma_node_hugepages_free_bytes", {{"node", "0"}, {"page_bytes", "2097152"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, std::to_string(1000ull << 21));
  s = find(v, "numacma_node_hugepages_bytes", {{"node", "0"}, {"page_bytes", "2097152"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, std::to_string(1024ull << 21));
  EXPECT_EQ(find(v, "numacma_node_hugepages_bytes", {{"node", "-1"}}), nullptr);

  EXPECT_EQ(count(text, "# HELP numacma_area_size_bytes "), 1);
  EXPECT_EQ(status_prometheus({}), "");
}

// Prometheus's naming conventions (prometheus.io/docs/practices/naming):
// base units (bytes, never pages), the unit as the suffix, counters in _total.
TEST(StatusPrometheus, NamesFollowTheConventions) {
  PoolStatus st = sample();
  const std::string text = status_prometheus({st});
  std::set<std::string> families;
  for (std::size_t p = text.find("# TYPE "); p != std::string::npos; p = text.find("# TYPE ", p + 1)) {
    const std::string rest = text.substr(p + 7, text.find('\n', p) - p - 7);
    const std::string name = rest.substr(0, rest.find(' ')), type = rest.substr(rest.find(' ') + 1);
    families.insert(name);
    EXPECT_EQ(name.rfind("numacma_", 0), 0u) << name;
    EXPECT_FALSE(std::regex_search(name, std::regex("_pages(_|$)"))) << name << ": pages are not a base unit";
    EXPECT_EQ(name.find("_2m"), std::string::npos) << name << ": a page size is a label";
    const bool total = name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0;
    EXPECT_EQ(total, type == "counter") << name << " is a " << type;
  }
  for (const char* must : {"numacma_area_size_bytes", "numacma_area_used_bytes", "numacma_area_maxchunk_bytes",
                           "numacma_area_longest_segment_bytes", "numacma_area_allocated_bytes_total",
                           "numacma_area_released_bytes_total", "numacma_holder_bytes", "numacma_node_allocs_total"})
    EXPECT_TRUE(families.count(must)) << must;
}

// A pool that could not be read: a comment line, no samples, the others whole.
TEST(StatusPrometheus, AFailedPoolIsACommentAndTheOthersStay) {
  const std::string text =
      status_prometheus({sample()}, {{"broken", Errc::corrupt, "pool 'broken': the layout's checksum\ndiffers"}});
  EXPECT_EQ(text.rfind("# numacma: pool broken skipped: pool 'broken': the layout's checksum differs\n", 0), 0u)
      << text;
  const std::vector<Sample> v = parse_exposition(text);
  EXPECT_NE(find(v, "numacma_pool_info", {{"pool", "dpdk"}}), nullptr);
  EXPECT_EQ(find(v, "numacma_pool_info", {{"pool", "broken"}}), nullptr);
  EXPECT_EQ(status_prometheus({}, {{"x", Errc::permission, "no"}}), "# numacma: pool x skipped: no\n");
}

TEST(StatusText, AFailedPoolSaysWhyInTextAndJson) {
  const numacma::cli::PoolFailure f{"broken", Errc::corrupt, "the layout's checksum differs"};
  EXPECT_EQ(numacma::cli::status_error_text(f), "pool broken: CANNOT BE READ (corrupt): the layout's checksum differs\n");
  const auto j = numacma::cli::status_error_json(f);
  EXPECT_EQ(j.dump(), R"({"pool":"broken","error":"the layout's checksum differs","code":"corrupt"})");
}
