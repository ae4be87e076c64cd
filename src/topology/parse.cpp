// src/topology/parse.cpp — the sysfs text parsers (pure: text in, value out).
//
//   cpulist    "0-3,8,10-11\n"            -> {0,1,2,3,8,10,11}
//   distance   "10 21 21\n"               -> {10,21,21}
//   meminfo    "Node 0 MemTotal: 1024 kB" -> bytes
//   numa_node  "-1\n"                     -> -1
//   hugepages  "hugepages-2048kB"         -> 2097152
//   links      "../../../bus/pci/drivers/nvme" -> "nvme"
//              "../../../kernel/iommu_groups/7" -> 7
//   bdf        "0000:05:00.0"             -> itself (lowercased)
//
// Each rejects junk with an Errc::invalid_argument naming what it saw. They
// are fuzzed (tests/fuzz/sysfs_fuzz.cpp), so nothing here may crash or loop
// on any input.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>

#include "topology/topology.hpp"

namespace numacma::topo {

namespace {

constexpr int kMaxId = 1 << 20;

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) out += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
  return out + (s.size() > 64 ? "..." : "");
}

Error bad(const char* what, std::string_view text) {
  return make_error(Errc::invalid_argument, std::string(what) + ": '" + shown(text) + "'");
}

/** A non-negative decimal int in [0, kMaxId]. */
bool parse_id(std::string_view s, int& out) {
  if (s.empty() || s.size() > 8) return false;
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() && v >= 0 && v <= kMaxId && (out = v, true);
}

}  // namespace

Result<std::vector<int>> parse_cpulist(std::string_view text) {
  const std::string_view t = trim(text);
  std::vector<int> out;
  if (t.empty()) return out;
  std::size_t pos = 0;
  while (pos <= t.size()) {
    const std::size_t comma = std::min(t.find(',', pos), t.size());
    const std::string_view item = t.substr(pos, comma - pos);
    const std::size_t dash = item.find('-');
    int lo = 0, hi = 0;
    if (dash == std::string_view::npos) {
      if (!parse_id(item, lo)) return bad("cpulist: bad cpu id", item);
      hi = lo;
    } else if (!parse_id(item.substr(0, dash), lo) || !parse_id(item.substr(dash + 1), hi)) {
      return bad("cpulist: bad range", item);
    }
    if (hi < lo) return bad("cpulist: reversed range", item);
    if (out.size() + static_cast<std::size_t>(hi - lo) > static_cast<std::size_t>(kMaxId))
      return bad("cpulist: too many cpus", t);
    for (int c = lo; c <= hi; ++c) out.push_back(c);
    if (comma == t.size()) break;
    pos = comma + 1;
    if (pos == t.size()) return bad("cpulist: trailing comma", t);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<std::vector<int>> parse_distance_row(std::string_view text) {
  std::vector<int> out;
  std::string_view t = trim(text);
  if (t.empty()) return bad("distance: empty row", text);
  while (!t.empty()) {
    std::size_t end = 0;
    while (end < t.size() && !std::isspace(static_cast<unsigned char>(t[end]))) ++end;
    int v = 0;
    if (!parse_id(t.substr(0, end), v) || v > 255) return bad("distance: bad value", t.substr(0, end));
    out.push_back(v);
    if (out.size() > 4096) return bad("distance: row too long", text);
    t = trim(t.substr(end));
  }
  return out;
}

Result<std::uint64_t> parse_u64(std::string_view text) {
  std::string_view t = trim(text);
  int base = 10;
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
    t.remove_prefix(2);
    base = 16;
  }
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v, base);
  if (t.empty() || ec != std::errc() || p != t.data() + t.size())
    return bad("not an unsigned integer", text);
  return v;
}

Result<MemInfo> parse_node_meminfo(std::string_view text) {
  MemInfo m;
  bool have_total = false;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view line = trim(text.substr(pos, nl - pos));
    pos = nl + 1;
    // "Node <n> <Key>: <value> kB"
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = trim(line.substr(0, colon));
    const std::size_t sp = key.rfind(' ');
    if (sp != std::string_view::npos) key = key.substr(sp + 1);
    if (key != "MemTotal" && key != "MemFree") continue;
    std::string_view val = trim(line.substr(colon + 1));
    std::uint64_t mult = 1;
    if (val.size() >= 2 && (val.substr(val.size() - 2) == "kB" || val.substr(val.size() - 2) == "KB")) {
      mult = 1024;
      val = trim(val.substr(0, val.size() - 2));
    }
    Result<std::uint64_t> v = parse_u64(val);
    if (!v || *v > std::numeric_limits<std::uint64_t>::max() / mult)
      return bad("meminfo: bad value", line);
    if (key == "MemTotal") {
      m.total_bytes = *v * mult;
      have_total = true;
    } else {
      m.free_bytes = *v * mult;
    }
  }
  if (!have_total) return bad("meminfo: no MemTotal line", text);
  return m;
}

Result<int> parse_numa_node(std::string_view text) {
  const std::string_view t = trim(text);
  if (t == "-1") return -1;
  int v = 0;
  if (!parse_id(t, v)) return bad("numa_node: not a node id", text);
  return v;
}

Result<std::uint64_t> parse_hugepage_dir(std::string_view name) {
  constexpr std::string_view pre = "hugepages-", suf = "kB";
  if (name.size() <= pre.size() + suf.size() || name.substr(0, pre.size()) != pre ||
      name.substr(name.size() - suf.size()) != suf)
    return bad("not a hugepages-<size>kB directory", name);
  const std::string_view num = name.substr(pre.size(), name.size() - pre.size() - suf.size());
  std::uint64_t kb = 0;
  auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), kb);
  if (ec != std::errc() || p != num.data() + num.size() || kb == 0 || kb > (std::uint64_t{1} << 40))
    return bad("bad hugepage size", name);
  return kb * 1024;
}

Result<std::string> parse_link_name(std::string_view target) {
  while (target.size() > 1 && target.back() == '/') target.remove_suffix(1);
  const std::size_t slash = target.rfind('/');
  const std::string_view name = slash == std::string_view::npos ? target : target.substr(slash + 1);
  if (name.empty() || name == "." || name == ".." || name.size() > 255)
    return bad("link: no name at the end of the target", target);
  for (char c : name)
    if (std::isspace(static_cast<unsigned char>(c)) || !std::isprint(static_cast<unsigned char>(c)))
      return bad("link: name with a space or control character", target);
  return std::string(name);
}

Result<int> parse_iommu_group(std::string_view target) {
  Result<std::string> name = parse_link_name(target);
  int group = 0;
  if (!name || !parse_id(*name, group)) return bad("iommu_group: not a group number", target);
  return group;
}

Result<std::string> parse_bdf(std::string_view text) {
  // DDDD:BB:DD.F, or BB:DD.F for domain 0000 (what lspci prints on a
  // one-domain machine, so what a user copies).
  constexpr std::string_view form = "xxxx:xx:xx.x";
  auto hexval = [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
           : (c >= 'a' && c <= 'f')                    ? c - 'a' + 10
           : (c >= 'A' && c <= 'F')                    ? c - 'A' + 10
                                                       : -1;
  };
  auto fail = [&] {
    return bad("not a PCI address DDDD:BB:DD.F or BB:DD.F (domain:bus:device.function, e.g. "
               "0000:05:00.0 or 05:00.0)",
               text);
  };
  std::string out(text);
  if (out.size() == form.size() - 5) out.insert(0, "0000:");
  if (out.size() != form.size()) return fail();
  for (std::size_t i = 0; i < form.size(); ++i) {
    if (form[i] != 'x') {
      if (out[i] != form[i]) return fail();
      continue;
    }
    if (hexval(out[i]) < 0) return fail();
    out[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(out[i])));
  }
  const int device = hexval(out[8]) * 16 + hexval(out[9]);
  const int function = hexval(out[11]);
  if (device > 0x1f) return bad("PCI address: device number above 1f", text);
  if (function > 7) return bad("PCI address: function number above 7", text);
  return out;
}

Result<std::uint64_t> parse_memory_block_name(std::string_view name) {
  constexpr std::string_view prefix = "memory";
  if (name.size() <= prefix.size() || name.substr(0, prefix.size()) != prefix)
    return make_error(Errc::not_found, "'" + std::string(name) + "' is not a memory block");
  std::uint64_t v = 0;
  for (char c : name.substr(prefix.size())) {
    if (c < '0' || c > '9' || v > (~std::uint64_t{0} - 9) / 10)
      return make_error(Errc::not_found, "'" + std::string(name) + "' is not a memory block");
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

Result<std::vector<MemRange>> memory_block_ranges(std::vector<std::uint64_t> indices,
                                                  std::uint64_t block_size) {
  if (block_size == 0 || (block_size & (block_size - 1)) != 0)
    return make_error(Errc::invalid_argument,
                      "memory block size " + std::to_string(block_size) + " is not a power of two");
  std::sort(indices.begin(), indices.end());
  std::vector<MemRange> out;
  for (std::uint64_t i : indices) {
    if (i > (~std::uint64_t{0} / block_size) - 1)
      return make_error(Errc::invalid_argument, "memory block " + std::to_string(i) + " is beyond 64 bits");
    const MemRange r{i * block_size, (i + 1) * block_size};
    if (!out.empty() && out.back().end >= r.start)
      out.back().end = std::max(out.back().end, r.end);
    else
      out.push_back(r);
  }
  return out;
}

}  // namespace numacma::topo
