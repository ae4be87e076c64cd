// bench/lib/render.cpp — the one renderer of the benchmarks' rows (rows.hpp):
// a text table per section with the text around it, or one JSON object a line.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "rows.hpp"

namespace numacma::bench {

Column col(const std::string& key, const Json& value, const std::string& text) { return {key, value, key, text}; }
Column json_col(const std::string& key, const Json& value) { return {key, value, "", ""}; }
Column text_col(const std::string& header, const std::string& text) { return {"", nullptr, header, text}; }

std::string num(double v, const char* f) {
  char b[48];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string size_text(std::uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (u < 6 && (bytes >> (10 * (u + 1))) != 0) ++u;
  const std::uint64_t unit = std::uint64_t{1} << (10 * u);
  if (bytes % unit == 0) return std::to_string(bytes / unit) + " " + kUnits[u];
  const double v = static_cast<double>(bytes) / static_cast<double>(unit);
  return v >= 1023.95 && u < 6 ? num(v / 1024, "%.1f ") + kUnits[u + 1] : num(v, "%.1f ") + kUnits[u];
}

double round_to(double v, double q) {
  const double scale = std::round(1.0 / q);
  return std::round(v * scale) / scale;
}

std::string ratio_target(const char* op, double ratio) { return std::string(op) + " " + num(ratio, "%.1fx"); }

namespace {

const char* unit_name(Unit u) { return u == Unit::ns ? "ns" : u == Unit::us ? "us" : "ms"; }
double in_unit(double ns, Unit u) { return u == Unit::ns ? ns : u == Unit::us ? ns / 1e3 : ns / 1e6; }

bool has_ratio(const Section& s) {
  return std::any_of(s.rows.begin(), s.rows.end(), [](const Row& r) { return r.ratio.has_value(); });
}

/** The note cell: skipped and why, else the target's verdict and the row's note. */
std::string note_text(const Row& r) {
  if (r.skipped) return "skipped: " + r.reason;
  std::string t;
  if (!r.target.empty()) t = "target " + r.target + (r.met ? ": met" : ": MISSED");
  if (!r.note.empty()) t += (t.empty() ? "" : "; ") + r.note;
  return t;
}

/** Columns padded to their widest cell, two spaces apart; trailing spaces removed. */
std::string table_text(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string text;
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    text += line + "\n";
  }
  return text;
}

std::string section_text(const Section& s) {
  std::string t;
  for (const std::string& l : s.intro) t += l + "\n";
  if (!s.table || s.rows.empty()) {
    for (const std::string& l : s.outro) t += l + "\n";
    return t;
  }
  if (!s.configurations_title.empty()) {
    std::vector<std::string> peers;
    std::size_t w = 0;
    for (const Row& r : s.rows)
      if (!r.peer.empty() && std::find(peers.begin(), peers.end(), r.peer) == peers.end()) {
        peers.push_back(r.peer);
        w = std::max(w, r.peer.size());
      }
    t += s.configurations_title + ":\n";
    for (const std::string& p : peers)
      for (auto it = s.rows.rbegin(); it != s.rows.rend(); ++it)
        if (it->peer == p) {
          t += "  " + p + std::string(w - p.size() + 2, ' ') + (it->config.empty() ? "-" : it->config) + "\n";
          break;
        }
    t += "\n";
  }
  const bool ratio = has_ratio(s);
  const bool notes = std::any_of(s.rows.begin(), s.rows.end(), [](const Row& r) { return !note_text(r).empty(); });
  std::vector<std::vector<std::string>> cells;
  std::vector<std::string> head;
  const Row& first = s.rows.front();
  for (const Column& c : first.cases)
    if (!c.header.empty()) head.push_back(c.header);
  if (s.timings) {
    head.push_back(std::string("median ") + unit_name(s.text_unit));
    head.push_back(std::string("p99 ") + unit_name(s.text_unit));
  }
  if (ratio) head.push_back(s.ratio_header);
  for (const Column& c : first.extra)
    if (!c.header.empty()) head.push_back(c.header);
  if (notes) head.push_back("note");
  cells.push_back(head);
  const char* f = s.text_unit == Unit::ms ? "%.2f" : "%.1f";
  for (const Row& r : s.rows) {
    std::vector<std::string> line;
    for (const Column& c : r.cases)
      if (!c.header.empty()) line.push_back(c.text);
    if (s.timings) {
      line.push_back(r.skipped ? "-" : num(in_unit(r.median_ns, s.text_unit), f));
      line.push_back(r.skipped ? "-" : num(in_unit(r.p99_ns, s.text_unit), f));
    }
    if (ratio) line.push_back(r.skipped || !r.ratio ? "-" : num(*r.ratio, "%.2fx"));
    for (const Column& c : r.extra)
      if (!c.header.empty()) line.push_back(c.text);
    if (notes) line.push_back(note_text(r));
    cells.push_back(std::move(line));
  }
  t += table_text(cells);
  if (!s.outro.empty()) t += "\n";
  for (const std::string& l : s.outro) t += l + "\n";
  return t;
}

}  // namespace

Json row_json(const Row& r, const Section& s) {
  Json j;
  j["bench"] = r.bench;
  for (const Column& c : r.cases)
    if (!c.key.empty()) j[c.key] = c.value;
  if (s.timings) {
    const std::string u = unit_name(s.json_unit);
    if (r.skipped) {
      j["median_" + u] = nullptr;
      j["p99_" + u] = nullptr;
    } else {
      j["median_" + u] = round_to(in_unit(r.median_ns, s.json_unit), s.json_quantum);
      j["p99_" + u] = round_to(in_unit(r.p99_ns, s.json_unit), s.json_quantum);
    }
  }
  if (r.ratio) {
    if (r.skipped) j["ratio"] = nullptr;
    else j["ratio"] = round_to(*r.ratio, 0.001);
  }
  for (const Column& c : r.extra)
    if (!c.key.empty()) j[c.key] = c.value;
  if (r.skipped_field == SkippedField::always || (r.skipped_field == SkippedField::when_skipped && r.skipped))
    j["skipped"] = r.skipped;
  if (r.skipped) j["reason"] = r.reason;
  if (r.json_config) j["config"] = r.config;
  if (!r.target.empty()) {
    j["target"] = r.target;
    if (r.skipped) j["met"] = nullptr;
    else j["met"] = r.met;
  }
  return j;
}

std::string render_text(const Output& out) {
  std::string t;
  for (std::size_t i = 0; i < out.sections.size(); ++i) {
    if (i > 0) t += "\n";
    t += section_text(out.sections[i]);
  }
  return t;
}

std::string render_json(const Output& out) {
  std::string t;
  for (const Section& s : out.sections)
    if (s.json)
      for (const Row& r : s.rows) t += row_json(r, s).dump() + "\n";
  return t;
}

}  // namespace numacma::bench
