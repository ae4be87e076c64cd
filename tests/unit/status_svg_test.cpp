// `numacma status --svg` (tools/numacma/status_svg.cpp) over a hand-built
// status and the arm64-4n fixture: well-formed XML with a node box per node,
// the distance matrix, a strip per area, a colour per holder and no run
// narrower than a pixel.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "status_render.hpp"
#include "status_sample.hpp"

using namespace numacma;
using namespace status_sample;
using numacma::cli::status_svg;

namespace {

/** A strict-enough XML well-formedness check: balanced tags, one root,
 *  quoted attributes without '<', and '&' only in the predefined entities. */
::testing::AssertionResult well_formed(const std::string& x) {
  std::vector<std::string> stack;
  std::size_t i = 0;
  int roots = 0;
  auto entity_ok = [&](std::size_t at) {
    for (const char* e : {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"})
      if (x.compare(at, std::strlen(e), e) == 0) return true;
    return false;
  };
  if (x.rfind("<?xml", 0) == 0) i = x.find("?>") + 2;
  while (i < x.size()) {
    if (x[i] != '<') {
      if (x[i] == '&' && !entity_ok(i)) return ::testing::AssertionFailure() << "bare & at " << i;
      if (x[i] == '>') return ::testing::AssertionFailure() << "bare > at " << i;
      if (stack.empty() && x[i] != '\n' && x[i] != ' ')
        return ::testing::AssertionFailure() << "text outside the root at " << i;
      ++i;
      continue;
    }
    const std::size_t end = x.find('>', i);
    if (end == std::string::npos) return ::testing::AssertionFailure() << "unclosed tag at " << i;
    std::string tag = x.substr(i + 1, end - i - 1);
    i = end + 1;
    if (tag[0] == '/') {
      if (stack.empty() || stack.back() != tag.substr(1))
        return ::testing::AssertionFailure() << "</" << tag.substr(1) << "> closes "
                                             << (stack.empty() ? "nothing" : stack.back());
      stack.pop_back();
      continue;
    }
    const bool empty = tag.back() == '/';
    if (empty) tag.pop_back();
    const std::string name = tag.substr(0, tag.find_first_of(" \n"));
    // Attributes: name="value" pairs.
    std::size_t a = name.size();
    while (a < tag.size()) {
      while (a < tag.size() && (tag[a] == ' ' || tag[a] == '\n')) ++a;
      if (a >= tag.size()) break;
      const std::size_t eq = tag.find('=', a);
      if (eq == std::string::npos || tag[eq + 1] != '"')
        return ::testing::AssertionFailure() << "unquoted attribute in <" << tag << ">";
      const std::size_t close = tag.find('"', eq + 2);
      if (close == std::string::npos) return ::testing::AssertionFailure() << "open quote in <" << tag << ">";
      const std::string value = tag.substr(eq + 2, close - eq - 2);
      if (value.find('<') != std::string::npos) return ::testing::AssertionFailure() << "< in " << tag;
      a = close + 1;
    }
    if (stack.empty()) ++roots;
    if (!empty) stack.push_back(name);
  }
  if (!stack.empty()) return ::testing::AssertionFailure() << "<" << stack.back() << "> never closed";
  if (roots != 1) return ::testing::AssertionFailure() << roots << " root elements";
  return ::testing::AssertionSuccess();
}

/** Every <rect ... class="run" ...>'s attributes. */
std::vector<std::map<std::string, std::string>> elements(const std::string& svg, const std::string& cls) {
  std::vector<std::map<std::string, std::string>> out;
  const std::regex attr("([a-z-]+)=\"([^\"]*)\"");
  for (std::size_t p = svg.find("<rect "); p != std::string::npos; p = svg.find("<rect ", p + 1)) {
    const std::string tag = svg.substr(p, svg.find('>', p) - p);
    if (tag.find("class=\"" + cls + "\"") == std::string::npos) continue;
    std::map<std::string, std::string> m;
    for (auto it = std::sregex_iterator(tag.begin(), tag.end(), attr); it != std::sregex_iterator(); ++it)
      m[(*it)[1]] = (*it)[2];
    out.push_back(m);
  }
  return out;
}

}  // namespace

TEST(StatusSvg, WellFormedWithNodesAreasHoldersAndDistances) {
  const topo::Topology t = arm64();
  const std::string svg = status_svg(sample(), t);
  ASSERT_TRUE(well_formed(svg)) << svg;
  EXPECT_EQ(svg, status_svg(sample(), t));  // deterministic

  EXPECT_EQ(elements(svg, "node").size(), 4u);
  const auto strips = elements(svg, "strip");
  ASSERT_EQ(strips.size(), 2u);
  EXPECT_EQ(strips[0].at("data-area"), "reserved");
  EXPECT_EQ(strips[1].at("data-area"), "pernuma2");
  // Every PCI device named, with its class where known.
  for (const char* bdf : {"0000:00:00.0", "0000:74:00.0", "0000:7a:00.0", "0000:80:00.0",
                          "0000:81:00.0", "0000:bd:00.0"})
    EXPECT_NE(svg.find(bdf), std::string::npos) << bdf;
  EXPECT_NE(svg.find("0000:81:00.0 NVMe 144d:a80a nvme"), std::string::npos);
  // The distance matrix, 4 x 4.
  EXPECT_EQ(count(svg, "class=\"distance\""), 16);
  EXPECT_NE(svg.find("data-from=\"1\" data-to=\"3\">24<"), std::string::npos);
  // Escaped comm; the dead holder hatched and marked.
  EXPECT_NE(svg.find("ev&quot;il\\&lt;x&gt;&amp;"), std::string::npos);
  EXPECT_NE(svg.find("(dead)"), std::string::npos);
  EXPECT_NE(svg.find("<pattern id=\"dead1\""), std::string::npos);
}

TEST(StatusSvg, AColourPerHolderAndRunsAtLeastOnePixel) {
  PoolStatus st = sample();
  for (int i = 0; i < 14; ++i) {  // past the palette
    HolderStatus h;
    h.pid = 1000 + i;
    h.comm = "w";
    h.comm += std::to_string(i);
    h.alive = true;
    st.holders.push_back(h);
    st.areas[1].runs.push_back({std::uint64_t(i) * 3, 1, static_cast<int>(st.holders.size()) - 1});
  }
  const std::string svg = status_svg(st, arm64());
  ASSERT_TRUE(well_formed(svg));
  std::set<std::string> fills;
  const auto legend = elements(svg, "legend-holder");
  ASSERT_EQ(legend.size(), st.holders.size());
  for (const auto& l : legend) fills.insert(l.at("fill"));
  EXPECT_EQ(fills.size(), st.holders.size());
  EXPECT_FALSE(fills.count("#e0e0e0"));  // no holder drawn as free

  const auto runs = elements(svg, "run");
  // reserved: holder 0's two adjacent runs merge; pernuma2: 1 + 14 single pages.
  EXPECT_EQ(runs.size(), 2u + 15u);
  for (const auto& r : runs) {
    const int x = std::stoi(r.at("x")), w = std::stoi(r.at("width"));
    EXPECT_GE(w, 1);
    EXPECT_LE((x - 16) % (320 + 24) + w, 320) << "past its strip: x " << x << " width " << w;
    if (r.at("data-holder") != "0" && r.at("data-holder") != "1") {
      EXPECT_EQ(r.at("fill"), legend[std::stoi(r.at("data-holder"))].at("fill"));
    }
  }
  // The last page of a million-page area: 1 px at the strip's right end.
  bool last = false;
  for (const auto& r : runs)
    if (r.at("data-holder") == "0" && std::stoi(r.at("width")) == 1 &&
        std::stoi(r.at("x")) == 16 + 2 * (320 + 24) + 319)
      last = true;
  EXPECT_TRUE(last) << svg;
}

TEST(StatusSvg, AnAreaOnANodeTheTopologyLacksGetsItsColumn) {
  PoolStatus st = sample();
  st.areas.push_back(area("numa9", 9, 256, {}));
  st.areas.push_back(area("smmu", kNoNode, 0, {}));
  const std::string svg = status_svg(st, arm64());
  ASSERT_TRUE(well_formed(svg));
  EXPECT_EQ(elements(svg, "node").size(), 6u);
  EXPECT_NE(svg.find("(not in the topology)"), std::string::npos);
  EXPECT_EQ(elements(svg, "strip").size(), 4u);
}

TEST(StatusSvg, PythonParsesIt) {
  if (std::system("python3 -c 'import xml.dom.minidom' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "no python3 with xml.dom.minidom";
  const std::string path = ::testing::TempDir() + "status_svg_" + std::to_string(::getpid()) + ".svg";
  std::ofstream(path) << status_svg(sample(), arm64());
  const std::string cmd = "python3 -c 'import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); "
                          "assert d.documentElement.tagName == \"svg\"' " + path;
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  std::remove(path.c_str());
}

namespace {

topo::Topology fixture(const char* name) {
  auto t = topo::Topology::from_sysfs(std::string(NUMACMA_TEST_DATA) + "/" + name);
  EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().message);
  return std::move(t).value();
}

/** The text of every <text class="title">, in order. */
std::vector<std::string> title_lines(const std::string& svg) {
  std::vector<std::string> out;
  const std::string open = "class=\"title\"";
  for (std::size_t p = svg.find(open); p != std::string::npos; p = svg.find(open, p + 1)) {
    const std::size_t from = svg.find('>', p) + 1;
    out.push_back(svg.substr(from, svg.find("</text>", from) - from));
  }
  return out;
}

int svg_width(const std::string& svg) {
  const std::size_t p = svg.find("<svg ");
  return std::stoi(svg.substr(svg.find("width=\"", p) + 7));
}

}  // namespace

TEST(StatusSvg, TheTitleIsWhole) {
  PoolStatus st = sample();
  st.params = "cma=64M cma_pernuma=16M numa_cma=0:8M,1:8M,2:8M,3:8M,4:8M,5:8M,6:8M,7:8M "
              "numa_cma=8:8M,9:8M,10:8M,11:8M,12:8M,13:8M,14:8M,15:8M,16:8M,17:8M,18:8M,19:8M";
  const std::string svg = status_svg(st, arm64());
  ASSERT_TRUE(well_formed(svg));
  const std::vector<std::string> lines = title_lines(svg);
  ASSERT_GT(lines.size(), 1u) << "a long title wraps";
  std::string joined;
  for (const std::string& l : lines) {
    joined += (joined.empty() ? "" : " ") + l;
    EXPECT_LE(16 * 2 + static_cast<int>(l.size()) * 9, svg_width(svg)) << "past the right edge: " << l;
  }
  EXPECT_EQ(joined, "numacma pool dpdk: " + st.params + " (backing hugetlb, policy kernel)");
  EXPECT_NE(svg.find("<title>numacma pool dpdk: " + st.params), std::string::npos);
  // A word longer than the picture widens it rather than being cut.
  st.params = "cma=64M " + std::string(200, 'x');
  const std::string wide = status_svg(st, arm64());
  EXPECT_GE(svg_width(wide), 16 * 2 + 200 * 9);
  EXPECT_NE(wide.find(std::string(200, 'x')), std::string::npos);
}

TEST(StatusSvg, DevicesWithoutANodeGetTheNoNodeBox) {
  // x86-2s: 0000:00:1f.0 has numa_node -1.
  const std::string svg = status_svg(sample(), fixture("x86-2s"));
  ASSERT_TRUE(well_formed(svg));
  bool no_node = false;
  for (const auto& n : elements(svg, "node")) no_node = no_node || n.at("data-node") == "-1";
  EXPECT_TRUE(no_node) << svg;
  const std::size_t box = svg.find(">no node<");
  ASSERT_NE(box, std::string::npos);
  EXPECT_NE(svg.find("0000:00:1f.0", box), std::string::npos) << "the device is drawn in its box";
}

TEST(StatusSvg, EightNodesWrapIntoRowsOfFour) {
  const std::string svg = status_svg(sample(), fixture("epyc-8n"));
  ASSERT_TRUE(well_formed(svg));
  std::map<std::string, int> per_row;
  for (const auto& n : elements(svg, "node")) ++per_row[n.at("data-row")];
  EXPECT_EQ(per_row, (std::map<std::string, int>{{"0", 4}, {"1", 4}}));
  EXPECT_EQ(svg_width(svg), 16 * 2 + 4 * (320 + 24) - 24);
  EXPECT_EQ(count(svg, "class=\"distance\""), 64);
}

TEST(StatusSvg, SizesAreHuman) {
  const std::string svg = status_svg(sample(), arm64());
  EXPECT_NE(svg.find("reserved  64 MiB  hugetlb-2M"), std::string::npos);
  EXPECT_NE(svg.find("used 4.1 MiB, largest free 59.9 MiB, 1 seg"), std::string::npos) << svg;
  EXPECT_NE(svg.find("pernuma2  4 GiB"), std::string::npos);
  EXPECT_NE(svg.find("3 buffers, 4.0 MiB"), std::string::npos);  // 1025 pages: 4 MiB and a page, one decimal
  EXPECT_NE(svg.find("memory 64 GiB"), std::string::npos);
  EXPECT_EQ(svg.find(" pages free"), std::string::npos);
  EXPECT_EQ(svg.find("16384"), std::string::npos);
}
