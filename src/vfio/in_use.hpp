// src/vfio/in_use.hpp — is a PCI device in use by this machine? Asked before
// `vfio bind` takes the device from its driver, as dpdk-devbind and SPDK's
// scripts/setup.sh ask: unbinding a disk under a mounted file system, active
// swap or a dm/md/LVM volume destroys data, and unbinding a NIC that carries
// traffic cuts the machine off. Nothing here writes anything.
//
//   <sysfs>/bus/pci/devices/<bdf>/ ... every directory below it (symbolic
//   links are not followed) whose `subsystem` link names:
//     block: a disk or a partition      nvme/nvme0/nvme0n1/{dev "259:0", holders/}
//                                       nvme/nvme0/nvme0n1/nvme0n1p2/{dev, holders/}
//                                       ata1/host0/.../block/sda/sda1/{dev, holders/}
//            a multipath path nvmeXcYnZ stands for its head nvmeXnZ
//            (<sysfs>/class/block/nvmeXnZ, under devices/virtual)
//     net:   an interface               net/enp5s0/{flags (IFF_UP = 0x1), operstate}
//   <sysfs>/class/block/<holder>/{dev, holders/}   dm-0, md127 ...: followed up the stack
//   <proc>/self/mountinfo   "36 25 259:2 / / rw - ext4 /dev/nvme0n1p2 rw"
//   <proc>/swaps            "/dev/nvme0n1p3  partition  8388604  0  -2"
//   <proc>/net/route, <proc>/net/ipv6_route: routes per interface
//   addresses per interface: getifaddrs (os::interface_addresses)
//
// A block device is mounted when a mountinfo line has its major:minor, or
// names it as the source (/dev/<name>: btrfs reports an anonymous
// major:minor). The parsers and decide() are pure logic (tests feed them
// text, and find_uses() a fixture sysfs root and proc root); find_uses()
// reads through src/os.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "numacma/result.hpp"

namespace numacma::vfio {

// ---- what was read ------------------------------------------------------------

struct BlockDev {
  std::string name;                  ///< "nvme0n1p2", "dm-0"
  std::string dev;                   ///< "259:2" (major:minor); "" when unreadable
  std::vector<std::string> holders;  ///< names under holders/: "dm-0", "md127"
  /** "" for a block device of the PCI device itself; for one up the
   *  stack (a holder), the device it holds: "nvme0n1p3". */
  std::string holds;
};

struct NetIf {
  std::string name;       ///< "enp5s0"
  std::uint64_t flags = 0;  ///< <sysfs>/class/net/<if>/flags
  std::string operstate;  ///< "up", "down", "unknown" ...
};

struct MountEntry {
  std::string dev;          ///< "259:2"
  std::string mount_point;  ///< unescaped ("\040" is a space)
  std::string fstype;
  std::string source;       ///< "/dev/nvme0n1p2", "proc", ...
};

struct SwapEntry {
  std::string filename;  ///< "/dev/nvme0n1p3", unescaped
  std::string type;      ///< "partition" or "file"
};

struct RouteEntry {
  std::string ifname;
  std::string dest;  ///< "10.0.2.0/24", "default", "fe80::/64"
};

struct IfAddress {
  std::string ifname;
  std::string address;  ///< "10.0.2.15", "fe80::5054:ff:fe12:3456"
};

/** Everything decide() looks at. */
struct Facts {
  std::vector<BlockDev> blocks;  ///< the device's own, then the stack above them
  std::vector<NetIf> nets;
  std::vector<MountEntry> mounts;
  std::vector<SwapEntry> swaps;
  std::vector<RouteEntry> routes;
  std::vector<IfAddress> addresses;
};

// ---- pure parsers (kernel text in, errors naming the line) ----------------------

/** /proc/<pid>/mountinfo. */
Result<std::vector<MountEntry>> parse_mountinfo(std::string_view text);
/** /proc/swaps (its header line first). */
Result<std::vector<SwapEntry>> parse_swaps(std::string_view text);
/** /proc/net/route (IPv4, header first; addresses in hex, network order). */
Result<std::vector<RouteEntry>> parse_route(std::string_view text);
/** /proc/net/ipv6_route (no header). */
Result<std::vector<RouteEntry>> parse_ipv6_route(std::string_view text);
/** "nvme0c1n2" (a path of a multipath namespace) -> "nvme0n2", its head;
 *  "" for any other name. */
std::string nvme_head_of(std::string_view name);

// ---- the decision ---------------------------------------------------------------

struct Use {
  /** "nvme0n1p2 is mounted on /home", "nvme0n1p3 is held by dm-0 (device-mapper:
   *  LVM, dm-crypt or multipath)", "enp5s0 is up (operstate up)" ... */
  std::string what;
  bool root = false;  ///< the root file system is on it: never overridden
};

/** Every use of the device in `f`, the root file system first. */
std::vector<Use> decide(const Facts& f);

/** The refusal: "0000:05:00.0 is in use: <what>; <what>. <what to do>". */
std::string in_use_message(const std::string& bdf, const std::vector<Use>& uses);

// ---- reading them ------------------------------------------------------------------

/** Addresses of every interface; the real one is os::interface_addresses. */
using InterfaceAddresses = std::function<Result<std::vector<IfAddress>>()>;

struct InUseOptions {
  std::string sysfs_root = "/sys";
  std::string proc_root = "/proc";
  InterfaceAddresses addresses;  ///< empty: os::interface_addresses (getifaddrs)
};

/** The device's block devices (with the stack above them) and interfaces
 *  from sysfs, and, only when it has some, the mounts, swaps, routes and
 *  addresses they would show up in. Errors: the device's directory cannot
 *  be listed, or mountinfo cannot be read (then nothing can be said about
 *  the root file system, and the bind is refused). */
Result<Facts> read_facts(const std::string& bdf, const InUseOptions& options);

/** read_facts + decide. */
Result<std::vector<Use>> find_uses(const std::string& bdf, const InUseOptions& options);

}  // namespace numacma::vfio
