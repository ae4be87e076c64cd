// src/vfio/in_use_scan.cpp — reads what in_use.hpp decides on: the device's
// block devices and interfaces from sysfs, and the kernel's tables from
// proc, every read through src/os.
#include <cctype>
#include <deque>
#include <set>

#include "os/os.hpp"
#include "topology/topology.hpp"
#include "vfio/in_use.hpp"

namespace numacma::vfio {

namespace {

// A disk of a SCSI host behind a USB controller sits about ten directories
// below the PCI function; a device with more than kMaxDirs directories
// under it is refused rather than checked in part.
constexpr int kMaxDepth = 16;
constexpr std::size_t kMaxDirs = 100000;
constexpr std::size_t kMaxStack = 256;  // holders followed up the stack

std::string trimmed(const std::string& s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

/** "block", "net", ... from the directory's subsystem link; "" when none. */
std::string subsystem_of(const std::string& dir) {
  Result<std::string> target = os::read_link(dir + "/subsystem");
  if (!target) return {};
  Result<std::string> name = topo::parse_link_name(*target);
  return name ? *name : std::string();
}

BlockDev read_block(const std::string& dir, const std::string& name, const std::string& holds) {
  BlockDev b;
  b.name = name;
  b.holds = holds;
  if (Result<std::string> dev = os::read_file(dir + "/dev")) b.dev = trimmed(*dev);
  if (Result<std::vector<std::string>> h = os::list_dir(dir + "/holders")) b.holders = std::move(*h);
  return b;
}

NetIf read_net(const std::string& dir, const std::string& name) {
  NetIf n;
  n.name = name;
  if (Result<std::string> flags = os::read_file(dir + "/flags"))
    if (Result<std::uint64_t> v = topo::parse_u64(*flags)) n.flags = *v;
  if (Result<std::string> st = os::read_file(dir + "/operstate")) n.operstate = trimmed(*st);
  return n;
}

struct Walk {
  Facts& facts;
  std::set<std::string> seen_blocks;
  std::size_t dirs = 0;
};

/** Every directory below `dir` (links not followed) that is a block device
 *  or a network interface. A disk's partitions are directories inside it. */
Status walk(const std::string& dir, int depth, Walk& w) {
  if (depth > kMaxDepth) return {};
  Result<std::vector<std::string>> subs = os::list_subdirs(dir);
  if (!subs) return depth == 0 ? Status(std::move(subs).error()) : Status();
  for (const std::string& name : *subs) {
    if (++w.dirs > kMaxDirs)
      return make_error(Errc::io_error, "more than " + std::to_string(kMaxDirs) +
                                            " directories below the device in sysfs: not checked");
    const std::string sub = dir + "/" + name;
    const std::string kind = subsystem_of(sub);
    if (kind == "net") {
      w.facts.nets.push_back(read_net(sub, name));
      continue;
    }
    if (kind == "block" && w.seen_blocks.insert(name).second)
      w.facts.blocks.push_back(read_block(sub, name, ""));
    if (Status s = walk(sub, depth + 1, w); !s) return s;
  }
  return {};
}

/** A file of proc, "" when the kernel has none (no swap, no IPv6). */
Result<std::string> read_optional(const std::string& path) {
  Result<std::string> t = os::read_file(path);
  if (!t && t.error().code == Errc::not_found) return std::string();
  return t;
}

}  // namespace

Result<Facts> read_facts(const std::string& bdf, const InUseOptions& o) {
  Facts f;
  Walk w{f, {}, 0};
  const std::string dev_dir = o.sysfs_root + "/bus/pci/devices/" + bdf;
  if (Status s = walk(dev_dir, 0, w); !s)
    return make_error(s.error().code, "cannot tell whether " + bdf + " is in use: " + s.error().message);

  // A path of a multipath namespace (nvme0c0n1, hidden) stands for the
  // head the system uses (nvme0n1, under devices/virtual): the head and
  // its partitions are the device's too.
  const std::size_t own = f.blocks.size();
  for (std::size_t i = 0; i < own; ++i) {
    const std::string head = nvme_head_of(f.blocks[i].name);
    if (head.empty() || w.seen_blocks.count(head) != 0) continue;
    const std::string head_dir = o.sysfs_root + "/class/block/" + head;
    if (!os::exists(head_dir)) continue;
    w.seen_blocks.insert(head);
    f.blocks.push_back(read_block(head_dir, head, ""));
    if (Status s = walk(head_dir, 1, w); !s)
      return make_error(s.error().code, "cannot tell whether " + bdf + " is in use: " + s.error().message);
  }

  // Up the stack: dm-0 holding nvme0n1p3, and whatever holds dm-0.
  std::deque<std::pair<std::string, std::string>> todo;  // (holder, the device it holds)
  for (const BlockDev& b : f.blocks)
    for (const std::string& h : b.holders) todo.emplace_back(h, b.name);
  while (!todo.empty() && f.blocks.size() < kMaxStack) {
    auto [h, below] = todo.front();
    todo.pop_front();
    if (!w.seen_blocks.insert(h).second) continue;
    BlockDev b = read_block(o.sysfs_root + "/class/block/" + h, h, below);
    for (const std::string& up : b.holders) todo.emplace_back(up, h);
    f.blocks.push_back(std::move(b));
  }

  if (!f.blocks.empty()) {
    Result<std::string> mi = os::read_file(o.proc_root + "/self/mountinfo");
    if (!mi)
      return make_error(mi.error().code, "cannot tell whether " + bdf + "'s disks are mounted: " +
                                             mi.error().message);
    Result<std::vector<MountEntry>> mounts = parse_mountinfo(*mi);
    if (!mounts) return std::move(mounts).error();
    f.mounts = std::move(*mounts);
    Result<std::string> sw = read_optional(o.proc_root + "/swaps");
    if (!sw) return std::move(sw).error();
    Result<std::vector<SwapEntry>> swaps = parse_swaps(*sw);
    if (!swaps) return std::move(swaps).error();
    f.swaps = std::move(*swaps);
  }
  if (!f.nets.empty()) {
    for (const char* file : {"/net/route", "/net/ipv6_route"}) {
      Result<std::string> t = read_optional(o.proc_root + file);
      if (!t) return std::move(t).error();
      Result<std::vector<RouteEntry>> r =
          std::string(file) == "/net/route" ? parse_route(*t) : parse_ipv6_route(*t);
      if (!r) return std::move(r).error();
      f.routes.insert(f.routes.end(), r->begin(), r->end());
    }
    if (o.addresses) {
      Result<std::vector<IfAddress>> a = o.addresses();
      if (!a) return std::move(a).error();
      f.addresses = std::move(*a);
    } else {
      Result<std::vector<os::InterfaceAddress>> a = os::interface_addresses();
      if (!a) return std::move(a).error();
      for (os::InterfaceAddress& x : *a) f.addresses.push_back({std::move(x.ifname), std::move(x.address)});
    }
  }
  return f;
}

Result<std::vector<Use>> find_uses(const std::string& bdf, const InUseOptions& o) {
  Result<Facts> f = read_facts(bdf, o);
  if (!f) return std::move(f).error();
  return decide(*f);
}

}  // namespace numacma::vfio
