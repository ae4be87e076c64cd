// src/vfio/in_use.cpp — the parsers of the kernel's tables and the decision
// whether a device is in use (in_use.hpp). Pure logic: no file is opened
// here (in_use_scan.cpp reads them), so tests feed it text.
#include "vfio/in_use.hpp"

#include <bit>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <set>

namespace numacma::vfio {

namespace {

constexpr std::uint64_t kIffUp = 0x1;  // <linux/if.h> IFF_UP: administratively up
constexpr std::size_t kListed = 4;     // names listed per kind before "and N more"

std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    const std::size_t b = i;
    while (i < line.size() && !std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i > b) out.push_back(line.substr(b, i - b));
  }
  return out;
}

std::vector<std::string_view> lines(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t b = 0;
  while (b < text.size()) {
    std::size_t e = text.find('\n', b);
    if (e == std::string_view::npos) e = text.size();
    out.push_back(text.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

/** The kernel escapes space, tab, newline and backslash in paths as \ooo. */
std::string unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const char a = s[i + 1], b = s[i + 2], c = s[i + 3];
      if (a >= '0' && a <= '3' && b >= '0' && b <= '7' && c >= '0' && c <= '7') {
        out += static_cast<char>((a - '0') * 64 + (b - '0') * 8 + (c - '0'));
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

Error bad_line(const char* file, std::size_t n, std::string_view line, const char* why) {
  std::string shown(line.substr(0, 120));
  for (char& c : shown)
    if (!std::isprint(static_cast<unsigned char>(c))) c = '?';
  return make_error(Errc::io_error, std::string(file) + " line " + std::to_string(n) + ": " + why +
                                        ": '" + shown + "'");
}

bool hex_u32(std::string_view s, std::uint32_t& out) {
  if (s.empty() || s.size() > 8) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
  return ec == std::errc() && p == s.data() + s.size();
}

/** 32 hex digits -> the address in the usual compressed form ("fe80::1"). */
bool ipv6_text(std::string_view hex32, std::string& out) {
  if (hex32.size() != 32) return false;
  std::uint32_t g[8];
  for (int i = 0; i < 8; ++i)
    if (!hex_u32(hex32.substr(static_cast<std::size_t>(i) * 4, 4), g[i])) return false;
  int best = -1, best_len = 0;  // the longest run of zero groups, at least two long
  for (int i = 0; i < 8;) {
    int j = i;
    while (j < 8 && g[j] == 0) ++j;
    if (j - i > best_len && j - i >= 2) best = i, best_len = j - i;
    i = j > i ? j : i + 1;
  }
  out.clear();
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    char b[8];
    std::snprintf(b, sizeof b, "%x", g[i]);
    out += b;
  }
  return true;
}

std::string basename_of(std::string_view path) {
  const std::size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string joined(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string out;
  for (std::size_t i = 0; i < items.size() && i < kListed; ++i) out += (i ? sep : "") + items[i];
  if (items.size() > kListed) out += " and " + std::to_string(items.size() - kListed) + " more";
  return out;
}

/** What a holder is, for the user who has to undo it. */
std::string holder_kind(const std::string& h) {
  if (h.rfind("dm-", 0) == 0) return "device-mapper: LVM, dm-crypt or multipath";
  if (h.rfind("md", 0) == 0) return "software RAID (md)";
  if (h.rfind("bcache", 0) == 0) return "bcache";
  return "";
}

}  // namespace

Result<std::vector<MountEntry>> parse_mountinfo(std::string_view text) {
  // id parent major:minor root mount-point options [optional...] - fstype source super-options
  std::vector<MountEntry> out;
  std::size_t n = 0;
  for (std::string_view line : lines(text)) {
    ++n;
    const std::vector<std::string_view> f = fields(line);
    if (f.empty()) continue;
    std::size_t dash = 6;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (dash + 2 >= f.size())  // fstype and source after the separator
      return bad_line("mountinfo", n, line, "not id parent major:minor root mount-point options ... - fstype source");
    if (f[2].find(':') == std::string_view::npos)
      return bad_line("mountinfo", n, line, "no major:minor in the third field");
    MountEntry m;
    m.dev = std::string(f[2]);
    m.mount_point = unescape(f[4]);
    m.fstype = std::string(f[dash + 1]);
    m.source = unescape(f[dash + 2]);
    out.push_back(std::move(m));
  }
  return out;
}

Result<std::vector<SwapEntry>> parse_swaps(std::string_view text) {
  std::vector<SwapEntry> out;
  std::size_t n = 0;
  for (std::string_view line : lines(text)) {
    ++n;
    const std::vector<std::string_view> f = fields(line);
    if (f.empty() || (n == 1 && f[0] == "Filename")) continue;
    if (f.size() < 2) return bad_line("swaps", n, line, "not filename type size used priority");
    out.push_back({unescape(f[0]), std::string(f[1])});
  }
  return out;
}

Result<std::vector<RouteEntry>> parse_route(std::string_view text) {
  // Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT; each
  // address a __be32 printed with %08X, so its bytes in memory order are the
  // address's: this host's byte order, which wrote the file.
  std::vector<RouteEntry> out;
  std::size_t n = 0;
  for (std::string_view line : lines(text)) {
    ++n;
    const std::vector<std::string_view> f = fields(line);
    if (f.empty() || f[0] == "Iface") continue;
    std::uint32_t dest = 0, mask = 0;
    if (f.size() < 8 || !hex_u32(f[1], dest) || !hex_u32(f[7], mask))
      return bad_line("route", n, line, "not Iface Destination Gateway Flags RefCnt Use Metric Mask ...");
    if constexpr (std::endian::native == std::endian::little) {
      dest = __builtin_bswap32(dest);
      mask = __builtin_bswap32(mask);
    }
    RouteEntry r;
    r.ifname = std::string(f[0]);
    if (dest == 0 && mask == 0) {
      r.dest = "default";
    } else {
      char b[32];
      std::snprintf(b, sizeof b, "%u.%u.%u.%u/%d", dest >> 24, (dest >> 16) & 0xff, (dest >> 8) & 0xff,
                    dest & 0xff, std::popcount(mask));
      r.dest = b;
    }
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::vector<RouteEntry>> parse_ipv6_route(std::string_view text) {
  // dest plen src srcplen nexthop metric refcnt use flags ifname (hex, no header)
  std::vector<RouteEntry> out;
  std::size_t n = 0;
  for (std::string_view line : lines(text)) {
    ++n;
    const std::vector<std::string_view> f = fields(line);
    if (f.empty()) continue;
    std::string dest;
    std::uint32_t plen = 0;
    if (f.size() < 10 || !ipv6_text(f[0], dest) || !hex_u32(f[1], plen) || plen > 128)
      return bad_line("ipv6_route", n, line, "not dest plen src srcplen nexthop metric refcnt use flags ifname");
    RouteEntry r;
    r.ifname = std::string(f[9]);
    r.dest = dest == "::" && plen == 0 ? std::string("default") : dest + "/" + std::to_string(plen);
    out.push_back(std::move(r));
  }
  return out;
}

std::string nvme_head_of(std::string_view name) {
  // nvme<subsystem>c<controller>n<namespace> -> nvme<subsystem>n<namespace>
  auto digits = [&](std::size_t& i) {
    const std::size_t b = i;
    while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) ++i;
    return i > b;
  };
  if (name.rfind("nvme", 0) != 0) return {};
  std::size_t i = 4;
  if (!digits(i)) return {};
  const std::size_t subsys_end = i;
  if (i >= name.size() || name[i] != 'c') return {};
  ++i;
  if (!digits(i)) return {};
  if (i >= name.size() || name[i] != 'n') return {};
  const std::size_t ns = i;
  ++i;
  if (!digits(i) || i != name.size()) return {};
  return std::string(name.substr(0, subsys_end)) + std::string(name.substr(ns));
}

std::vector<Use> decide(const Facts& f) {
  std::vector<Use> root, other;
  for (const BlockDev& b : f.blocks) {
    const std::string label = b.holds.empty() ? b.name : b.name + " (which holds " + b.holds + ")";
    std::vector<std::string> points;
    std::set<std::string> seen;
    bool is_root = false;
    for (const MountEntry& m : f.mounts) {
      const bool by_dev = !b.dev.empty() && m.dev == b.dev;
      const bool by_source = m.source.rfind("/dev/", 0) == 0 && basename_of(m.source) == b.name;
      if (!by_dev && !by_source) continue;
      if (m.mount_point == "/")
        is_root = true;
      else if (seen.insert(m.mount_point).second)
        points.push_back(m.mount_point);
    }
    if (is_root) root.push_back({label + " is mounted on / (root file system: never unbound)", true});
    if (!points.empty()) other.push_back({label + " is mounted on " + joined(points), false});
    for (const SwapEntry& s : f.swaps)
      if (s.filename.rfind("/dev/", 0) == 0 && basename_of(s.filename) == b.name)
        other.push_back({label + " is used as swap (" + s.filename + " in /proc/swaps)", false});
    if (b.holds.empty() && !b.holders.empty()) {
      std::string kinds;
      std::set<std::string> said;
      for (const std::string& h : b.holders)
        if (std::string k = holder_kind(h); !k.empty() && said.insert(k).second) kinds += (kinds.empty() ? "" : "; ") + k;
      other.push_back({b.name + " is held by " + joined(b.holders) + (kinds.empty() ? "" : " (" + kinds + ")"), false});
    }
  }
  for (const NetIf& n : f.nets) {
    std::vector<std::string> parts, addrs, routes;
    if (n.flags & kIffUp) parts.push_back("is up" + (n.operstate.empty() ? "" : " (operstate " + n.operstate + ")"));
    for (const IfAddress& a : f.addresses)
      if (a.ifname == n.name) addrs.push_back(a.address);
    for (const RouteEntry& r : f.routes)
      if (r.ifname == n.name) routes.push_back(r.dest);
    if (!addrs.empty())
      parts.push_back(std::string(addrs.size() == 1 ? "has address (" : "has addresses (") + joined(addrs) + ")");
    if (!routes.empty())
      parts.push_back(std::string(routes.size() == 1 ? "has route (" : "has routes (") + joined(routes) + ")");
    if (!parts.empty()) other.push_back({n.name + " " + joined(parts), false});
  }
  root.insert(root.end(), other.begin(), other.end());
  return root;
}

std::string in_use_message(const std::string& bdf, const std::vector<Use>& uses) {
  std::string out = bdf + " is in use: ";
  bool root = false;
  for (std::size_t i = 0; i < uses.size(); ++i) {
    out += (i ? "; " : "") + uses[i].what;
    root = root || uses[i].root;
  }
  if (root)
    return out + ". The root file system is on it: numacma never unbinds that device, not even with --force";
  return out + ". Stop using it first (umount, swapoff, vgchange -an or dmsetup remove, mdadm --stop, "
               "ip link set DEV down), or bind it anyway with --force if what uses it may lose it now";
}

}  // namespace numacma::vfio
