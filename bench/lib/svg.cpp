// bench/lib/svg.cpp — `numacma bench alloc --plot FILE.svg`: a self-made SVG
// grouped bar chart. One group per size, one bar per peer (ns per alloc+free
// pair, median), log10 scale; skipped peers get a "skipped" label.
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

}  // namespace

std::string alloc_svg(const AllocReport& r) {
  std::vector<std::size_t> sizes;
  std::vector<std::string> peers;
  double lo = 1e30, hi = 0;
  for (const AllocResult& x : r.results) {
    if (std::find(sizes.begin(), sizes.end(), x.size) == sizes.end()) sizes.push_back(x.size);
    if (std::find(peers.begin(), peers.end(), x.peer) == peers.end()) peers.push_back(x.peer);
    if (!x.skipped && x.median_ns > 0) {
      lo = std::min(lo, x.median_ns);
      hi = std::max(hi, x.median_ns);
    }
  }
  if (hi <= 0) lo = 1, hi = 10;
  const double dmin = std::floor(std::log10(lo)), dmax = std::max(dmin + 1, std::ceil(std::log10(hi)));
  const double W = 860, H = 460, left = 80, right = 150, top = 50, bottom = 60;
  const double pw = W - left - right, ph = H - top - bottom;
  auto y_of = [&](double ns) { return top + ph - (std::log10(ns) - dmin) / (dmax - dmin) * ph; };
  static const char* const kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};

  std::string s;
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt("%.0f", W) + "\" height=\"" +
       fmt("%.0f", H) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + fmt("%.0f", W / 2) +
       "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">numacma bench alloc: ns per alloc+free pair "
       "(median, 1024 live buffers, log scale)</text>\n";
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
  const double gw = pw / std::max<std::size_t>(sizes.size(), 1);
  const double bw = gw * 0.8 / std::max<std::size_t>(peers.size(), 1);
  for (std::size_t g = 0; g < sizes.size(); ++g) {
    const double gx = left + g * gw + gw * 0.1;
    s += "<text x=\"" + fmt("%.1f", left + g * gw + gw / 2) + "\" y=\"" + fmt("%.1f", top + ph + 20) +
         "\" text-anchor=\"middle\">" + size_label(sizes[g]) + "</text>\n";
    for (std::size_t p = 0; p < peers.size(); ++p) {
      const double x = gx + p * bw;
      for (const AllocResult& a : r.results) {
        if (a.size != sizes[g] || a.peer != peers[p]) continue;
        if (a.skipped || a.median_ns <= 0) {
          s += "<text x=\"" + fmt("%.1f", x + bw / 2) + "\" y=\"" + fmt("%.1f", top + ph - 4) +
               "\" text-anchor=\"middle\" font-size=\"9\" transform=\"rotate(-90 " + fmt("%.1f", x + bw / 2) +
               " " + fmt("%.1f", top + ph - 4) + ")\">skipped</text>\n";
          continue;
        }
        const double y = std::min(y_of(a.median_ns), top + ph - 1);
        s += "<rect x=\"" + fmt("%.1f", x) + "\" y=\"" + fmt("%.1f", y) + "\" width=\"" +
             fmt("%.1f", bw * 0.92) + "\" height=\"" + fmt("%.1f", top + ph - y) + "\" fill=\"" +
             kColors[p % 6] + "\"><title>" + esc(a.peer) + " " + size_label(a.size) + ": " +
             fmt("%.0f", a.median_ns) + " ns (p99 " + fmt("%.0f", a.p99_ns) + ")</title></rect>\n";
        s += "<text x=\"" + fmt("%.1f", x + bw / 2) + "\" y=\"" + fmt("%.1f", y - 3) +
             "\" text-anchor=\"middle\" font-size=\"9\">" + fmt("%.0f", a.median_ns) + "</text>\n";
      }
    }
  }
  s += "<text x=\"" + fmt("%.1f", left + pw / 2) + "\" y=\"" + fmt("%.1f", H - 14) +
       "\" text-anchor=\"middle\">buffer size (aligned as SEMANTICS A6)</text>\n";
  for (std::size_t p = 0; p < peers.size(); ++p) {
    const double y = top + 10 + p * 20;
    s += "<rect x=\"" + fmt("%.1f", left + pw + 20) + "\" y=\"" + fmt("%.1f", y) +
         "\" width=\"12\" height=\"12\" fill=\"" + kColors[p % 6] + "\"/>\n";
    s += "<text x=\"" + fmt("%.1f", left + pw + 38) + "\" y=\"" + fmt("%.1f", y + 10) + "\">" +
         esc(peers[p]) + "</text>\n";
  }
  s += "</svg>\n";
  return s;
}

}  // namespace numacma::bench
