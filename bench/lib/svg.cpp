// bench/lib/svg.cpp — `numacma bench alloc|pool --plot FILE.svg`: a self-made
// SVG grouped bar chart. alloc: one group per size, one bar per peer; pool: one
// group per (object, threads, cross), one bar per peer (ns per alloc+free pair,
// median), log10 scale; skipped peers get a "skipped" label. The legend names
// each peer's configuration in short.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "bench.hpp"

namespace numacma::bench {

namespace {

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string size_label(std::size_t s) {
  if (s % (1u << 20) == 0) return std::to_string(s >> 20) + "M";
  if (s % 1024 == 0) return std::to_string(s >> 10) + "K";
  return std::to_string(s);
}

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else o += c;
  }
  return o;
}

/** One bar: the median (and p99) of a peer in a group; skipped: no bar. */
struct Bar {
  std::string group, series;
  double median = 0, p99 = 0;
  bool skipped = false;
};

std::string grouped_svg(const std::string& title, const std::string& xlabel, const std::vector<Bar>& bars,
                        const std::map<std::string, std::string>& legend_notes) {
  std::vector<std::string> groups, series;
  double lo = 1e30, hi = 0;
  for (const Bar& b : bars) {
    if (std::find(groups.begin(), groups.end(), b.group) == groups.end()) groups.push_back(b.group);
    if (std::find(series.begin(), series.end(), b.series) == series.end()) series.push_back(b.series);
    if (!b.skipped && b.median > 0) {
      lo = std::min(lo, b.median);
      hi = std::max(hi, b.median);
    }
  }
  if (hi <= 0) lo = 1, hi = 10;
  const double dmin = std::floor(std::log10(lo)), dmax = std::max(dmin + 1, std::ceil(std::log10(hi)));
  const double W = 1000, H = 480, left = 80, right = 290, top = 50, bottom = 70;
  const double pw = W - left - right, ph = H - top - bottom;
  auto y_of = [&](double ns) { return top + ph - (std::log10(ns) - dmin) / (dmax - dmin) * ph; };
  // One colour per peer in both charts; an unknown series gets one by its place.
  static const std::map<std::string, const char*> kPeerColors = {
      {"numacma", "#1f77b4"},      {"dpdk", "#d62728"},  {"dpdk-align64", "#ff9896"}, {"dpdk-memzone", "#9467bd"},
      {"dpdk-mempool", "#d62728"}, {"glibc", "#2ca02c"}, {"libnuma", "#ff7f0e"}};
  static const char* const kColors[] = {"#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  auto color = [&](std::size_t p) {
    const auto it = kPeerColors.find(series[p]);
    return it != kPeerColors.end() ? it->second : kColors[p % (sizeof kColors / sizeof kColors[0])];
  };

  std::string s;
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt("%.0f", W) + "\" height=\"" +
       fmt("%.0f", H) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + fmt("%.0f", W / 2) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">" + esc(title) +
       "</text>\n";
  // Axis and decade grid lines.
  for (double d = dmin; d <= dmax; d += 1) {
    const double y = y_of(std::pow(10, d));
    s += "<line x1=\"" + fmt("%.1f", left) + "\" x2=\"" + fmt("%.1f", left + pw) + "\" y1=\"" +
         fmt("%.1f", y) + "\" y2=\"" + fmt("%.1f", y) + "\" stroke=\"#ddd\"/>\n";
    s += "<text x=\"" + fmt("%.1f", left - 6) + "\" y=\"" + fmt("%.1f", y + 4) +
         "\" text-anchor=\"end\">" + fmt("%.0f", std::pow(10, d)) + " ns</text>\n";
  }
  s += "<line x1=\"" + fmt("%.1f", left) + "\" x2=\"" + fmt("%.1f", left) + "\" y1=\"" + fmt("%.1f", top) +
       "\" y2=\"" + fmt("%.1f", top + ph) + "\" stroke=\"black\"/>\n";
  s += "<line x1=\"" + fmt("%.1f", left) + "\" x2=\"" + fmt("%.1f", left + pw) + "\" y1=\"" +
       fmt("%.1f", top + ph) + "\" y2=\"" + fmt("%.1f", top + ph) + "\" stroke=\"black\"/>\n";
  const double gw = pw / static_cast<double>(std::max<std::size_t>(groups.size(), 1));
  const double bw = gw * 0.8 / static_cast<double>(std::max<std::size_t>(series.size(), 1));
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const double gx = left + g * gw + gw * 0.1;
    // A group label may have two lines, split at '|'.
    const std::size_t bar = groups[g].find('|');
    s += "<text x=\"" + fmt("%.1f", left + g * gw + gw / 2) + "\" y=\"" + fmt("%.1f", top + ph + 18) +
         "\" text-anchor=\"middle\">" + esc(groups[g].substr(0, bar)) + "</text>\n";
    if (bar != std::string::npos)
      s += "<text x=\"" + fmt("%.1f", left + g * gw + gw / 2) + "\" y=\"" + fmt("%.1f", top + ph + 32) +
           "\" text-anchor=\"middle\" font-size=\"10\">" + esc(groups[g].substr(bar + 1)) + "</text>\n";
    for (std::size_t p = 0; p < series.size(); ++p) {
      const double x = gx + p * bw;
      for (const Bar& a : bars) {
        if (a.group != groups[g] || a.series != series[p]) continue;
        if (a.skipped || a.median <= 0) {
          s += "<text x=\"" + fmt("%.1f", x + bw / 2) + "\" y=\"" + fmt("%.1f", top + ph - 4) +
               "\" text-anchor=\"start\" font-size=\"9\" transform=\"rotate(-90 " + fmt("%.1f", x + bw / 2) +
               " " + fmt("%.1f", top + ph - 4) + ")\">skipped</text>\n";
          continue;
        }
        const double y = std::min(y_of(a.median), top + ph - 1);
        s += "<rect x=\"" + fmt("%.1f", x) + "\" y=\"" + fmt("%.1f", y) + "\" width=\"" +
             fmt("%.1f", bw * 0.92) + "\" height=\"" + fmt("%.1f", top + ph - y) + "\" fill=\"" +
             color(p) + "\"><title>" + esc(a.series) + " " + esc(a.group) + ": " + fmt("%.0f", a.median) +
             " ns (p99 " + fmt("%.0f", a.p99) + ")</title></rect>\n";
        s += "<text x=\"" + fmt("%.1f", x + bw / 2) + "\" y=\"" + fmt("%.1f", y - 3) +
             "\" text-anchor=\"middle\" font-size=\"8\">" + fmt("%.0f", a.median) + "</text>\n";
      }
    }
  }
  s += "<text x=\"" + fmt("%.1f", left + pw / 2) + "\" y=\"" + fmt("%.1f", H - 12) +
       "\" text-anchor=\"middle\">" + esc(xlabel) + "</text>\n";
  for (std::size_t p = 0; p < series.size(); ++p) {
    const double y = top + 10 + p * 34;
    s += "<rect x=\"" + fmt("%.1f", left + pw + 20) + "\" y=\"" + fmt("%.1f", y) +
         "\" width=\"12\" height=\"12\" fill=\"" + color(p) + "\"/>\n";
    s += "<text x=\"" + fmt("%.1f", left + pw + 38) + "\" y=\"" + fmt("%.1f", y + 10) + "\">" +
         esc(series[p]) + "</text>\n";
    const auto note = legend_notes.find(series[p]);
    if (note != legend_notes.end())
      s += "<text x=\"" + fmt("%.1f", left + pw + 38) + "\" y=\"" + fmt("%.1f", y + 24) +
           "\" font-size=\"10\" fill=\"#555\">" + esc(note->second) + "</text>\n";
  }
  s += "</svg>\n";
  return s;
}

}  // namespace

std::string alloc_svg(const AllocReport& r) {
  std::vector<Bar> bars;
  for (const AllocResult& x : r.results)
    bars.push_back({size_label(x.size), x.peer, x.median_ns, x.p99_ns, x.skipped});
  const std::map<std::string, std::string> notes = {
      {"numacma", "alloc_coherent, align A6, contiguous"},
      {"dpdk", "rte_malloc_socket, align A6"},
      {"dpdk-align64", "rte_malloc_socket, align 64"},
      {"dpdk-memzone", "memzone IOVA_CONTIG, align A6"},
      {"glibc", "posix_memalign, align A6"},
      {"libnuma", "numa_alloc_onnode, page-aligned"},
  };
  return grouped_svg("numacma bench alloc: ns per alloc+free pair (median, 1024 live buffers, log scale)",
                     "buffer size (aligned as rule A6 unless the legend says otherwise)", bars, notes);
}

std::string pool_svg(const PoolBenchReport& r) {
  std::vector<Bar> bars;
  for (const PoolBenchResult& x : r.results) {
    const std::string obj = x.object % 1024 == 0 ? std::to_string(x.object >> 10) + " KiB"
                                                  : std::to_string(x.object) + " B";
    const std::string g = obj + "|" +
                          (x.threads == 1 ? std::string("1 thread") : x.cross ? std::string("2 cross") : std::string("2 threads"));
    bars.push_back({g, x.peer, x.median_ns, x.p99_ns, x.skipped});
  }
  const std::map<std::string, std::string> notes = {
      {"numacma", "DmaPool, align 64, one pool"},
      {"dpdk-mempool", "rte_mempool, cache 256 per lcore"},
      {"glibc", "malloc / free"},
  };
  return grouped_svg("numacma bench pool: ns per alloc+free pair (median, 1024 live per thread, log scale)",
                     "object size and threads (2 cross: each thread frees the other's objects)", bars, notes);
}

}  // namespace numacma::bench
