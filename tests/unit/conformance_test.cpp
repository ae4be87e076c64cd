// Replay conformance: every tests/conformance/*.trace runs through the real
// CLI (`numacma replay --json`) and each request's decision is compared with
// the `# => ...` expectation written beside it (format: tests/conformance/README.md).
// One test per trace file, so a broken rule names its trace.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kDir = fs::path(NUMACMA_TEST_DATA).parent_path() / "conformance";

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct Request {
  int line = 0;
  std::string text;
  std::string expect;  // after "# =>"; "" = no expectation
};

std::string field_text(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  return j.dump();
}

void check_expectation(const Request& r, const json& out) {
  std::istringstream in(r.expect);
  std::string tok;
  in >> tok;
  SCOPED_TRACE("line " + std::to_string(r.line) + ": " + r.text + "\n  got: " + out.dump());
  if (tok == "ok") {
    EXPECT_EQ(out.value("ok", false), true);
  } else if (tok == "fail") {
    EXPECT_EQ(out.value("ok", true), false);
  } else {
    ADD_FAILURE() << "expectation must start with ok or fail: " << r.expect;
  }
  while (in >> tok) {
    const auto eq = tok.find('=');
    ASSERT_NE(eq, std::string::npos) << tok;
    const std::string key = tok.substr(0, eq), want = tok.substr(eq + 1);
    if (key == "dma_align" || key == "dma_max") {
      ASSERT_TRUE(out.contains("dma_addr"));
      const auto dma = std::stoull(out["dma_addr"].get<std::string>(), nullptr, 16);
      if (key == "dma_align") {
        EXPECT_EQ(dma % std::stoull(want), 0u) << "dma_addr " << out["dma_addr"];
      } else {
        const auto pages = out.value("pages", 0ULL);
        EXPECT_LE(dma + pages * 4096 - 1, std::stoull(want, nullptr, 16));
      }
      continue;
    }
    ASSERT_TRUE(out.contains(key)) << "no field " << key;
    EXPECT_EQ(field_text(out[key]), want) << "field " << key;
  }
}

void run_trace(const fs::path& trace) {
  std::ifstream f(trace);
  std::string line, sysfs = "arm64-4n", params, policy = "kernel", backing = "sim",
              arch = "x86_64",  // placement rules: the same on every host unless a trace says
      kernel = "6.12", areas;
  bool cma_size_pernuma = false;
  std::vector<std::string> dev_areas;
  std::vector<Request> reqs;
  std::string end_check;
  for (int n = 1; std::getline(f, line); ++n) {
    const std::string t = trim(line);
    if (t.rfind("#!", 0) == 0) {
      const std::string d = trim(t.substr(2));
      const auto eq = d.find('=');
      const std::string k = d.substr(0, eq == std::string::npos ? d.find(' ') : eq);
      const std::string v = eq == std::string::npos ? "" : d.substr(eq + 1);
      if (k == "sysfs") sysfs = v;
      else if (k == "params") params = v;
      else if (k == "policy") policy = v;
      else if (k == "backing") backing = v;
      else if (k == "arch") arch = v;
      else if (k == "kernel") kernel = v;
      else if (k == "cma-size-pernuma") cma_size_pernuma = true;
      else if (k == "areas") areas = v;
      else if (k == "device-area") dev_areas.push_back(v);
      else if (d.rfind("end", 0) == 0) end_check = trim(d.substr(3));
      else ADD_FAILURE() << trace << ":" << n << ": unknown directive " << d;
      continue;
    }
    if (t.empty() || t[0] == '#') continue;
    Request r;
    r.line = n;
    r.text = t;
    const auto mark = t.find("# =>");
    if (mark != std::string::npos) r.expect = trim(t.substr(mark + 4));
    reqs.push_back(r);
  }
  std::string cmd = std::string(NUMACMA_CLI) + " replay --json --sysfs-root " +
                    shell_quote(std::string(NUMACMA_TEST_DATA) + "/" + sysfs) +
                    " --backing " + backing + " --policy " + policy + " --arch " + arch + " --kernel " + kernel +
                    (cma_size_pernuma ? " --cma-size-pernuma" : "") + " --params " + shell_quote(params);
  for (const auto& d : dev_areas) cmd += " --device-area " + shell_quote(d);
  cmd += " " + shell_quote(trace.string()) + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::vector<json> outs;
  std::string raw;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p) != nullptr) raw += buf;
  const int rc = ::pclose(p);
  std::istringstream lines(raw);
  while (std::getline(lines, line)) {
    if (trim(line).empty()) continue;
    json j = json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line << "\ncommand: " << cmd;
    outs.push_back(std::move(j));
  }
  EXPECT_EQ(rc, 0) << cmd << "\n" << raw;
  ASSERT_EQ(outs.size(), reqs.size() + 1) << "one object per request plus stats\n" << raw;
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    if (!reqs[i].expect.empty()) check_expectation(reqs[i], outs[i]);
  }
  const json& stats = outs.back();
  ASSERT_EQ(stats.value("op", ""), "stats") << stats.dump();
  if (!areas.empty()) {  // "#! areas=reserved,numa0:8M,...": the pool's areas, in order, sizes where given
    std::string have;
    for (const auto& a : stats["areas"]) {
      const std::string name = a["name"].get<std::string>();
      const std::size_t colon = areas.find(name + ":");
      const bool sized = colon != std::string::npos && (colon == 0 || areas[colon - 1] == ',');
      have += (have.empty() ? "" : ",") + name +
              (sized ? ":" + std::to_string(a["pages"].get<std::uint64_t>() * 4096 >> 20) + "M" : "");
    }
    EXPECT_EQ(have, areas) << stats.dump();
  }
  if (end_check == "used=0") {
    for (const auto& a : stats["areas"]) {
      EXPECT_EQ(a["used"].get<std::uint64_t>(), 0u) << a.dump();
      EXPECT_EQ(a["maxchunk"], a["pages"]) << a.dump();
      EXPECT_EQ(a["alloc_pages_success"], a["release_pages_success"]) << a.dump();
    }
  }
}

}  // namespace

class Conformance : public ::testing::TestWithParam<std::string> {};

TEST_P(Conformance, DecisionsMatchTheRules) { run_trace(kDir / GetParam()); }

std::vector<std::string> traces() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(kDir))
    if (e.path().extension() == ".trace") out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

INSTANTIATE_TEST_SUITE_P(Traces, Conformance, ::testing::ValuesIn(traces()),
                         [](const auto& info) {
                           std::string n = info.param.substr(0, info.param.size() - 6);
                           for (char& c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });
