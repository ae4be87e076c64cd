// tools/numacma/status_svg.cpp — `numacma status --svg`: the machine and a
// shared pool as one picture (status_render.hpp).
//
//   numacma pool NAME: params (backing, policy)    the whole title, wrapped
//   +- node 0 ---------+  +- node 1 ---------+      (at most 4 node boxes a row,
//   | memory, CPUs     |  | ...              |       then the next row)
//   | PCI devices      |  |                  |
//   +------------------+  +------------------+  +- no node ----------+
//   reserved  64 MiB       pernuma1  16 MiB      | devices without one |
//   [##==....###......]    [====............]   one strip per area: its pages
//   distances (matrix)                           left to right, free grey,
//   legend: holders                              runs in their holder's colour
//
// Pixel positions are integers computed from page numbers, so the output is
// the same bytes for the same status.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

#include "cli_util.hpp"
#include "status_render.hpp"

namespace numacma::cli {
namespace {

constexpr int kMargin = 16;
constexpr int kColW = 320;       // a node's column, and each strip's width
constexpr int kGap = 24;
constexpr int kLine = 15;        // text line height
constexpr int kStripH = 18;
constexpr int kAreaH = 2 * kLine + kStripH + 14;
constexpr int kCell = 36;        // distance matrix cell
constexpr std::size_t kPerRow = 4;  // node columns in a row: 8 nodes are two rows, not one
constexpr int kTitleCharW = 9;   // a 14 px bold monospace character, rounded up
constexpr const char* kFree = "#e0e0e0";
constexpr const char* kUnknown = "#555555";

std::string holder_colour(std::size_t i) {
  static const char* const kPalette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                         "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#17becf"};
  if (i < std::size(kPalette)) return kPalette[i];
  // Past the palette: hues a golden angle apart, darker than the free grey.
  return "hsl(" + std::to_string((i * 137) % 360) + ",55%,45%)";
}

/** The fill of a holder's runs: its colour, or its hatch when it is dead. */
std::string holder_fill(const PoolStatus& st, int h) {
  if (h < 0 || static_cast<std::size_t>(h) >= st.holders.size()) return kUnknown;
  if (!st.holders[h].alive) return "url(#dead" + std::to_string(h) + ")";
  return holder_colour(h);
}

std::string holder_label(const PoolStatus& st, int h) {
  if (h < 0 || static_cast<std::size_t>(h) >= st.holders.size()) return "unknown holder";
  const HolderStatus& x = st.holders[h];
  return "pid " + std::to_string(x.pid) + " " + x.comm + (x.alive ? "" : " (dead)");
}

/** A few PCI classes by name; "" for the rest (the hex class is shown). */
std::string pci_class_name(std::uint32_t code) {
  switch (code >> 8) {
    case 0x0108: return "NVMe";
    case 0x0106: return "SATA";
    case 0x0200: return "Ethernet";
    case 0x0207: return "InfiniBand";
    case 0x0300: return "VGA";
    case 0x0302: return "3D";
    case 0x0600: return "host bridge";
    case 0x0601: return "ISA bridge";
    case 0x0604: return "PCI bridge";
    case 0x0806: return "IOMMU";
    case 0x0c03: return "USB";
    case 0x1200: return "accelerator";
    default: break;
  }
  switch (code >> 16) {
    case 0x01: return "storage";
    case 0x02: return "network";
    case 0x03: return "display";
    case 0x06: return "bridge";
    case 0x0b: return "processor";
    case 0x12: return "accelerator";
    default: return "";
  }
}

/** The pixel span [x0, x0 + w) of pages [first, first + n) of an area of
 *  `total` pages drawn `width` pixels wide: never 0 wide, never past the end. */
std::pair<int, int> span(std::uint64_t first, std::uint64_t n, std::uint64_t total, int width) {
  using u128 = unsigned __int128;
  const std::uint64_t end = std::min(total, first + n);
  int x0 = static_cast<int>(u128{first} * width / total);
  int x1 = static_cast<int>((u128{end} * width + total - 1) / total);
  x0 = std::min(x0, width - 1);
  x1 = std::max(x1, x0 + 1);
  return {x0, std::min(x1, width) - x0};
}

class Svg {
 public:
  void raw(const std::string& s) { body_ += s; }
  void text(int x, int y, const std::string& s, const std::string& extra = "") {
    body_ += "<text x=\"" + std::to_string(x) + "\" y=\"" + std::to_string(y) + "\"" +
             (extra.empty() ? "" : " " + extra) + ">" + xml_escape(s) + "</text>\n";
  }
  void rect(int x, int y, int w, int h, const std::string& fill, const std::string& extra = "",
            const std::string& title = "") {
    body_ += "<rect x=\"" + std::to_string(x) + "\" y=\"" + std::to_string(y) + "\" width=\"" +
             std::to_string(w) + "\" height=\"" + std::to_string(h) + "\" fill=\"" + fill + "\"" +
             (extra.empty() ? "" : " " + extra);
    body_ += title.empty() ? "/>\n" : "><title>" + xml_escape(title) + "</title></rect>\n";
  }
  const std::string& body() const { return body_; }

 private:
  std::string body_;
};

struct Column {
  int node = kNoNode;
  const topo::NodeInfo* info = nullptr;     // nullptr: not in the topology
  std::vector<const topo::PciDevice*> pci;
  std::vector<const SharedAreaStatus*> areas;
};

std::vector<Column> columns(const PoolStatus& st, const topo::Topology& t) {
  std::map<int, Column> by_node;
  for (const topo::NodeInfo& n : t.nodes()) by_node[n.id] = Column{n.id, &n, {}, {}};
  // A device or area without a node (or on one the topology lacks) gets a
  // column too: the "no node" box, or that node's.
  const auto column = [&](int node) -> Column& {
    node = node < 0 ? kNoNode : node;
    Column& c = by_node[node];
    c.node = node;
    return c;
  };
  for (const topo::PciDevice& d : t.pci_devices()) column(d.numa_node).pci.push_back(&d);
  for (const SharedAreaStatus& a : st.areas) column(a.area.node).areas.push_back(&a);
  std::vector<Column> out;
  for (auto& [node, c] : by_node)
    if (node >= 0) out.push_back(std::move(c));
  if (auto it = by_node.find(kNoNode); it != by_node.end()) out.push_back(std::move(it->second));
  return out;
}

std::string device_line(const topo::PciDevice& d) {
  const std::string cls = pci_class_name(d.class_code);
  char id[24];
  std::snprintf(id, sizeof id, "%04x:%04x", d.vendor & 0xffff, d.device & 0xffff);
  return d.bdf + " " + (cls.empty() ? hex(d.class_code) : cls) + " " + id + (d.driver.empty() ? "" : " " + d.driver);
}

std::vector<std::string> node_lines(const Column& c, const PoolStatus& st) {
  std::vector<std::string> lines;
  if (c.node < 0) {
    lines = {"no node", "devices and areas without a NUMA node"};
    for (const topo::PciDevice* d : c.pci) lines.push_back(device_line(*d));
    return lines;
  }
  lines.push_back("node " + std::to_string(c.node));
  if (c.info == nullptr) {
    lines.push_back("(not in the topology)");
    for (const topo::PciDevice* d : c.pci) lines.push_back(device_line(*d));
    return lines;
  }
  std::string mem = c.info->has_memory ? "memory " + human_size(c.info->mem.total_bytes) : "no memory";
  for (const SharedNodeStatus& n : st.nodes)
    if (n.alloc.node == c.node && n.hugepages_total >= 0)
      mem += ", 2 MiB hugepages " + std::to_string(std::max<std::int64_t>(n.hugepages_free, 0)) + "/" +
             std::to_string(n.hugepages_total) + " free";
  lines.push_back(mem);
  lines.push_back("CPUs " + cpulist_text(c.info->cpus));
  if (c.pci.empty()) lines.push_back("no PCI devices");
  for (const topo::PciDevice* d : c.pci) lines.push_back(device_line(*d));
  return lines;
}

/** `text` in lines of at most `chars` characters, broken at spaces; a word
 *  longer than that is a line of its own (the caller widens the picture). */
std::vector<std::string> wrap(const std::string& text, std::size_t chars) {
  std::vector<std::string> lines{""};
  std::size_t from = 0;
  while (from < text.size()) {
    std::size_t to = text.find(' ', from);
    if (to == std::string::npos) to = text.size();
    const std::string word = text.substr(from, to - from);
    if (!lines.back().empty() && lines.back().size() + 1 + word.size() > chars) lines.emplace_back();
    lines.back() += (lines.back().empty() ? "" : " ") + word;
    from = to + 1;
  }
  return lines;
}

void draw_area(Svg& svg, const PoolStatus& st, const SharedAreaStatus& s, int x, int y) {
  const AreaReport& a = s.area;
  svg.text(x, y + kLine - 3,
           a.name + "  " + human_pages(a.pages) + (a.backing.empty() ? "" : "  " + a.backing),
           "font-weight=\"bold\"");
  svg.text(x, y + 2 * kLine - 3,
           "used " + human_pages(a.used) + ", largest free " + human_pages(a.maxchunk) + ", " +
               std::to_string(a.segments) + " seg");
  const int sy = y + 2 * kLine;
  svg.rect(x, sy, kColW, kStripH, kFree, "class=\"strip\" data-area=\"" + xml_escape(a.name) + "\"",
           a.name + ": " + human_pages(a.pages - std::min(a.used, a.pages)) + " free");
  if (a.pages != 0) {
    // Contiguous runs of one holder are drawn as one rectangle.
    for (std::size_t i = 0; i < s.runs.size();) {
      const SharedRun& r = s.runs[i];
      std::uint64_t end = r.first_page + r.pages;
      std::size_t j = i + 1;
      for (; j < s.runs.size() && s.runs[j].holder == r.holder && s.runs[j].first_page == end; ++j)
        end += s.runs[j].pages;
      if (r.first_page < a.pages) {
        const auto [rx, rw] = span(r.first_page, end - r.first_page, a.pages, kColW);
        svg.rect(x + rx, sy, rw, kStripH, holder_fill(st, r.holder),
                 "class=\"run\" data-holder=\"" + std::to_string(r.holder) + "\"",
                 holder_label(st, r.holder) + ": pages " + std::to_string(r.first_page) + "-" +
                     std::to_string(end - 1) + " (" + human_pages(end - r.first_page) + ")");
      }
      i = j;
    }
  }
  svg.rect(x, sy, kColW, kStripH, "none", "stroke=\"#888888\"");
}

}  // namespace

std::string status_svg(const PoolStatus& st, const topo::Topology& t) {
  const std::vector<Column> cols = columns(st, t);
  const std::size_t per_row = std::max<std::size_t>(1, std::min(cols.size(), kPerRow));
  int width = kMargin * 2 + static_cast<int>(per_row) * (kColW + kGap) - kGap;
  width = std::max(width, kMargin * 2 + static_cast<int>(t.nodes().size() + 1) * kCell);
  Svg svg;
  int y = kMargin;

  // The title in full, wrapped to the picture's width (widened for a word
  // longer than that): never cut.
  const std::string title = "numacma pool " + st.name + ": " + st.params + " (backing " + st.backing +
                            ", policy " + st.policy + ")";
  for (const std::string& l : wrap(title, static_cast<std::size_t>((width - 2 * kMargin) / kTitleCharW))) {
    width = std::max(width, kMargin * 2 + static_cast<int>(l.size()) * kTitleCharW);
    y += 18;
    svg.text(kMargin, y, l, "class=\"title\" font-size=\"14\" font-weight=\"bold\"");
  }
  y += 10;

  // Node boxes in rows of at most kPerRow; in a row, all as tall as the tallest.
  for (std::size_t first = 0; first < cols.size(); first += per_row) {
    const std::size_t last = std::min(cols.size(), first + per_row);
    std::vector<std::vector<std::string>> lines;
    std::size_t most = 0, most_areas = 0;
    for (std::size_t i = first; i < last; ++i) {
      lines.push_back(node_lines(cols[i], st));
      most = std::max(most, lines.back().size());
      most_areas = std::max(most_areas, cols[i].areas.size());
    }
    const int box_h = static_cast<int>(most) * kLine + 10;
    for (std::size_t i = first; i < last; ++i) {
      const int x = kMargin + static_cast<int>(i - first) * (kColW + kGap);
      const std::vector<std::string>& ls = lines[i - first];
      svg.rect(x, y, kColW, box_h, "#f7f7f7",
               "class=\"node\" data-node=\"" + std::to_string(cols[i].node) + "\" data-row=\"" +
                   std::to_string(first / per_row) + "\" stroke=\"#333333\" rx=\"4\"");
      for (std::size_t l = 0; l < ls.size(); ++l)
        svg.text(x + 8, y + static_cast<int>(l + 1) * kLine, ls[l], l == 0 ? "font-weight=\"bold\"" : "");
      int ay = y + box_h + 8;
      for (const SharedAreaStatus* a : cols[i].areas) {
        draw_area(svg, st, *a, x, ay);
        ay += kAreaH;
      }
    }
    y += box_h + 8 + static_cast<int>(most_areas) * kAreaH + 8;
  }

  // The distance matrix of the topology's nodes.
  const auto& nodes = t.nodes();
  svg.text(kMargin, y + kLine, "distances", "font-weight=\"bold\"");
  y += kLine + 6;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    svg.text(kMargin + static_cast<int>(i + 1) * kCell, y + kLine, std::to_string(nodes[i].id),
             "font-weight=\"bold\"");
    svg.text(kMargin, y + static_cast<int>(i + 2) * kLine, std::to_string(nodes[i].id),
             "font-weight=\"bold\"");
    for (std::size_t j = 0; j < nodes.size(); ++j) {
      const int d = t.distance(nodes[i].id, nodes[j].id);
      svg.text(kMargin + static_cast<int>(j + 1) * kCell, y + static_cast<int>(i + 2) * kLine,
               d < 0 ? "-" : std::to_string(d),
               "class=\"distance\" data-from=\"" + std::to_string(nodes[i].id) + "\" data-to=\"" +
                   std::to_string(nodes[j].id) + "\"" + (i == j ? " fill=\"#888888\"" : ""));
    }
  }
  y += static_cast<int>(nodes.size() + 1) * kLine + 12;

  // Legend: free, every holder, and "unknown" when a run names no holder.
  bool unknown = false;
  for (const SharedAreaStatus& a : st.areas)
    for (const SharedRun& r : a.runs)
      unknown |= r.holder < 0 || static_cast<std::size_t>(r.holder) >= st.holders.size();
  svg.text(kMargin, y + kLine, "holders", "font-weight=\"bold\"");
  y += kLine + 4;
  auto entry = [&](const std::string& fill, const std::string& label, const std::string& attrs) {
    svg.rect(kMargin, y + 2, 14, 12, fill, attrs + " stroke=\"#888888\"");
    svg.text(kMargin + 20, y + 12, label);
    y += kLine + 2;
  };
  entry(kFree, "free", "class=\"legend-free\"");
  for (std::size_t h = 0; h < st.holders.size(); ++h) {
    std::uint64_t pages = 0;
    for (const auto& [area, n] : st.holders[h].pages) pages += n;
    entry(holder_fill(st, static_cast<int>(h)),
          holder_label(st, static_cast<int>(h)) + ": " + std::to_string(st.holders[h].buffers) +
              " buffers, " + human_pages(pages),
          "class=\"legend-holder\" data-holder=\"" + std::to_string(h) + "\"");
  }
  if (st.holders.empty()) {
    svg.text(kMargin + 20, y + 12, "none");
    y += kLine + 2;
  }
  if (unknown) entry(kUnknown, "unknown holder (a run names no holder)", "class=\"legend-unknown\"");
  const int height = y + kMargin;

  std::string defs;
  for (std::size_t h = 0; h < st.holders.size(); ++h) {
    if (st.holders[h].alive) continue;
    defs += "<pattern id=\"dead" + std::to_string(h) +
            "\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\" "
            "patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#ffffff\"/>"
            "<rect width=\"3\" height=\"6\" fill=\"" + holder_colour(h) + "\"/></pattern>\n";
  }
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) +
         "\" height=\"" + std::to_string(height) + "\" viewBox=\"0 0 " + std::to_string(width) + " " +
         std::to_string(height) + "\" font-family=\"monospace\" font-size=\"11\">\n";
  out += "<title>" + xml_escape(title) + "</title>\n";
  out += "<defs>\n" + defs + "</defs>\n";
  out += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
  out += svg.body();
  out += "</svg>\n";
  return out;
}

}  // namespace numacma::cli
