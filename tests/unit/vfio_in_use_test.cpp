// Is a PCI device in use (src/vfio/in_use.hpp)? The parsers on the kernel's
// text, decide() on facts built by hand, and find_uses() on the fixture
// machine tests/data/in-use (made by tests/data/make_in_use_fixture.py: its
// docstring lists what each device is used for), read as sysfs and proc.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "vfio/in_use.hpp"

namespace vfio = numacma::vfio;
using numacma::Errc;

namespace {

const std::string kData = NUMACMA_TEST_DATA;
const std::string kSys = kData + "/in-use/sys";
const std::string kProc = kData + "/in-use/proc";

/** What getifaddrs would say on the fixture machine. */
numacma::Result<std::vector<vfio::IfAddress>> fixture_addresses() {
  return std::vector<vfio::IfAddress>{{"lo", "127.0.0.1"}, {"lo", "::1"}, {"enp7s0", "192.0.2.10"},
                                      {"enp7s0", "fe80::1"}, {"enp8s0", "198.51.100.7"}};
}

vfio::InUseOptions fixture(const std::string& proc = kProc) {
  vfio::InUseOptions o;
  o.sysfs_root = kSys;
  o.proc_root = proc;
  o.addresses = fixture_addresses;
  return o;
}

std::vector<std::string> whats(const std::vector<vfio::Use>& uses) {
  std::vector<std::string> out;
  for (const vfio::Use& u : uses) out.push_back(u.what);
  return out;
}

std::vector<std::string> uses_of(const std::string& bdf, const vfio::InUseOptions& o = fixture()) {
  auto u = vfio::find_uses(bdf, o);
  EXPECT_TRUE(u.ok()) << bdf << ": " << u.error().message;
  return u ? whats(*u) : std::vector<std::string>{"(error)"};
}

}  // namespace

// ---- parsers ---------------------------------------------------------------------

TEST(InUseParse, Mountinfo) {
  auto m = vfio::parse_mountinfo(
      "21 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n"
      "28 25 259:10 /export /srv/nfs\\040export rw master:3 propagate_from:2 - ext4 /dev/a\\134b rw\n"
      "\n"
      "30 21 0:50 / /mnt rw - tmpfs tmpfs rw");  // no newline at the end
  ASSERT_TRUE(m) << m.error().message;
  ASSERT_EQ(m->size(), 3u);
  EXPECT_EQ((*m)[0].dev, "259:2");
  EXPECT_EQ((*m)[0].mount_point, "/");
  EXPECT_EQ((*m)[0].fstype, "ext4");
  EXPECT_EQ((*m)[0].source, "/dev/nvme0n1p2");
  EXPECT_EQ((*m)[1].mount_point, "/srv/nfs export") << "\\040 is a space";
  EXPECT_EQ((*m)[1].source, "/dev/a\\b") << "\\134 is a backslash; optional fields skipped";
  EXPECT_EQ((*m)[2].source, "tmpfs");
  for (const char* bad : {"21 1 259:2 / / rw shared:1 ext4 /dev/x rw",  // no separator
                          "21 1 259:2 / / rw - ext4",                   // no source
                          "21 1 2592 / / rw - ext4 /dev/x rw"}) {       // no major:minor
    auto b = vfio::parse_mountinfo(std::string("22 1 0:21 / /proc rw - proc proc rw\n") + bad + "\n");
    ASSERT_FALSE(b) << bad;
    EXPECT_NE(b.error().message.find("mountinfo line 2"), std::string::npos) << b.error().message;
  }
}

TEST(InUseParse, Swaps) {
  auto s = vfio::parse_swaps(
      "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
      "/dev/nvme0n1p3                          partition\t8388604\t\t0\t\t-2\n"
      "/swap\\040file                           file\t\t1048572\t\t0\t\t-4\n");
  ASSERT_TRUE(s) << s.error().message;
  ASSERT_EQ(s->size(), 2u);
  EXPECT_EQ((*s)[0].filename, "/dev/nvme0n1p3");
  EXPECT_EQ((*s)[0].type, "partition");
  EXPECT_EQ((*s)[1].filename, "/swap file");
  EXPECT_TRUE(vfio::parse_swaps("Filename\tType\tSize\tUsed\tPriority\n")->empty());
  EXPECT_TRUE(vfio::parse_swaps("")->empty());
  EXPECT_FALSE(vfio::parse_swaps("Filename\tType\n/dev/sda2\n"));
}

TEST(InUseParse, Routes) {
  auto r = vfio::parse_route(
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
      "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
      "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
      "eth1\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].ifname, "eth0");
  EXPECT_EQ((*r)[0].dest, "default");
  EXPECT_EQ((*r)[1].dest, "192.0.2.0/24");
  EXPECT_EQ((*r)[2].ifname, "eth1");
  EXPECT_EQ((*r)[2].dest, "10.0.0.0/8");
  EXPECT_FALSE(vfio::parse_route("eth0\tXYZ\t0\t0\t0\t0\t0\t0\n"));

  auto v6 = vfio::parse_ipv6_route(
      "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 "
      "00000000000000000000000000000000 00000100 00000001 00000000 00000001   eth0\n"
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
      "fe800000000000000000000000000001 00000400 00000002 00000000 00000003   eth0\n"
      "20010db8000000010000000000000000 30 00000000000000000000000000000000 00 "
      "00000000000000000000000000000000 00000100 00000001 00000000 00000001   eth1\n"
      "00000000000000000000000000000001 80 00000000000000000000000000000000 00 "
      "00000000000000000000000000000000 00000000 00000003 00000000 80200001       lo\n");
  ASSERT_TRUE(v6) << v6.error().message;
  ASSERT_EQ(v6->size(), 4u);
  EXPECT_EQ((*v6)[0].dest, "fe80::/64");
  EXPECT_EQ((*v6)[1].dest, "default");
  EXPECT_EQ((*v6)[2].dest, "2001:db8:0:1::/48");
  EXPECT_EQ((*v6)[2].ifname, "eth1");
  EXPECT_EQ((*v6)[3].dest, "::1/128");
  EXPECT_FALSE(vfio::parse_ipv6_route("fe80 40 eth0\n"));
}

TEST(InUseParse, NvmeHeadOfAPath) {
  EXPECT_EQ(vfio::nvme_head_of("nvme0c0n1"), "nvme0n1");
  EXPECT_EQ(vfio::nvme_head_of("nvme12c3n45"), "nvme12n45");
  for (const char* other : {"nvme0n1", "nvme0n1p1", "nvme0c0n1p1", "nvmec0n1", "nvme0c0n", "sda", "dm-0", ""})
    EXPECT_EQ(vfio::nvme_head_of(other), "") << other;
}

// ---- decide() on facts built by hand -------------------------------------------------

TEST(InUseDecide, NothingUsedNothingSaid) {
  vfio::Facts f;
  f.blocks = {{"nvme0n1", "259:0", {}, ""}};
  f.nets = {{"eth0", 0x1002, "down"}};
  f.mounts = {{"259:9", "/", "ext4", "/dev/nvme9n1"}};
  f.addresses = {{"eth1", "10.0.0.1"}};
  f.routes = {{"eth1", "default"}};
  EXPECT_TRUE(vfio::decide(f).empty());
}

TEST(InUseDecide, TheRootFileSystemThroughTheStackComesFirstAndIsMarked) {
  vfio::Facts f;
  f.blocks = {{"sda1", "8:1", {"md127"}, ""}, {"md127", "9:127", {"dm-1"}, "sda1"}, {"dm-1", "253:1", {}, "md127"}};
  f.mounts = {{"253:1", "/", "ext4", "/dev/mapper/vg-root"}, {"253:1", "/", "ext4", "/dev/mapper/vg-root"}};
  const auto uses = vfio::decide(f);
  ASSERT_EQ(uses.size(), 2u);
  EXPECT_TRUE(uses[0].root);
  EXPECT_EQ(uses[0].what, "dm-1 (which holds md127) is mounted on / (root file system: never unbound)");
  EXPECT_FALSE(uses[1].root);
  EXPECT_EQ(uses[1].what, "sda1 is held by md127 (software RAID (md))");
  const std::string msg = vfio::in_use_message("0000:05:00.0", uses);
  EXPECT_EQ(msg.find("0000:05:00.0 is in use: dm-1 (which holds md127) is mounted on / (root file system: "
                     "never unbound); sda1 is held by md127"),
            0u)
      << msg;
  EXPECT_NE(msg.find("not even with --force"), std::string::npos) << msg;
}

TEST(InUseDecide, MountedBySourceNameWhenTheNumberIsAnonymous) {
  // btrfs reports an anonymous major:minor; the source names the disk.
  vfio::Facts f;
  f.blocks = {{"nvme4n1", "259:11", {}, ""}};
  f.mounts = {{"0:45", "/var/lib/data", "btrfs", "/dev/nvme4n1"}, {"0:46", "/x", "tmpfs", "nvme4n1"}};
  EXPECT_EQ(whats(vfio::decide(f)), std::vector<std::string>{"nvme4n1 is mounted on /var/lib/data"});
  const std::string msg = vfio::in_use_message("0000:06:00.0", vfio::decide(f));
  EXPECT_NE(msg.find("umount"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--force"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("never"), std::string::npos) << msg;
}

TEST(InUseDecide, LongListsAreCut) {
  vfio::Facts f;
  f.nets = {{"eth0", 0x1003, "up"}};
  for (int i = 0; i < 7; ++i) f.addresses.push_back({"eth0", "10.0.0." + std::to_string(i)});
  EXPECT_EQ(whats(vfio::decide(f)),
            std::vector<std::string>{"eth0 is up (operstate up), has addresses (10.0.0.0, 10.0.0.1, 10.0.0.2, "
                                     "10.0.0.3 and 3 more)"});
}

// ---- find_uses() on the fixture machine --------------------------------------------

TEST(InUseFixture, RootBootAndSwapOfTheSystemDisk) {
  auto u = vfio::find_uses("0000:01:00.0", fixture());
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(whats(*u), (std::vector<std::string>{
                           "nvme0n1p2 is mounted on / (root file system: never unbound)",
                           "nvme0n1p1 is mounted on /boot/efi",
                           "nvme0n1p3 is used as swap (/dev/nvme0n1p3 in /proc/swaps)"}));
  EXPECT_TRUE((*u)[0].root);
  EXPECT_FALSE((*u)[1].root);
}

TEST(InUseFixture, APartitionHeldByLvmWhoseVolumeIsMounted) {
  EXPECT_EQ(uses_of("0000:02:00.0"),
            (std::vector<std::string>{"nvme1n1p1 is held by dm-0 (device-mapper: LVM, dm-crypt or multipath)",
                                      "dm-0 (which holds nvme1n1p1) is mounted on /srv"}));
}

TEST(InUseFixture, FreeDevicesAreFree) {
  EXPECT_TRUE(uses_of("0000:03:00.0").empty()) << "a disk with a partition, neither used";
  EXPECT_TRUE(uses_of("0000:07:00.1").empty()) << "an interface down, no address, no route";
  EXPECT_TRUE(uses_of("0000:0a:00.0").empty()) << "no disk, no interface";
}

TEST(InUseFixture, TheHeadOfAMultipathNamespaceIsTheDevicesToo) {
  EXPECT_EQ(uses_of("0000:04:00.0"),
            std::vector<std::string>{"nvme3n1p1 is mounted on /data, /srv/nfs export"});
}

TEST(InUseFixture, ADiskBehindAScsiHostInARaid) {
  EXPECT_EQ(uses_of("0000:05:00.0"), std::vector<std::string>{"sda1 is held by md127 (software RAID (md))"});
  // Booted with / on the LVM volume over that RAID: the root file system.
  auto u = vfio::find_uses("0000:05:00.0", fixture(kData + "/in-use/proc-root-on-lvm"));
  ASSERT_TRUE(u) << u.error().message;
  ASSERT_EQ(u->size(), 2u);
  EXPECT_TRUE((*u)[0].root);
  EXPECT_EQ((*u)[0].what, "dm-1 (which holds md127) is mounted on / (root file system: never unbound)");
}

TEST(InUseFixture, BtrfsFoundByItsSource) {
  EXPECT_EQ(uses_of("0000:06:00.0"), std::vector<std::string>{"nvme4n1 is mounted on /var/lib/data"});
}

TEST(InUseFixture, InterfacesUpOrWithAddressesOrRoutes) {
  EXPECT_EQ(uses_of("0000:07:00.0"),
            std::vector<std::string>{"enp7s0 is up (operstate up), has addresses (192.0.2.10, fe80::1), has "
                                     "routes (default, 192.0.2.0/24, fe80::/64, 2001:db8::/64)"});
  EXPECT_EQ(uses_of("0000:08:00.0"), std::vector<std::string>{"enp8s0 has address (198.51.100.7)"})
      << "down, but configured";
}

TEST(InUseFixture, AWholeDiskUsedAsSwap) {
  EXPECT_EQ(uses_of("0000:09:00.0"),
            std::vector<std::string>{"nvme5n1 is used as swap (/dev/nvme5n1 in /proc/swaps)"});
}

TEST(InUseFixture, TheLinksBackUpAreNotFollowed) {
  // nvme/nvme0/device leads back to the PCI function: followed, the walk
  // would find every disk again, or loop.
  auto f = vfio::read_facts("0000:01:00.0", fixture());
  ASSERT_TRUE(f) << f.error().message;
  std::vector<std::string> names;
  for (const vfio::BlockDev& b : f->blocks) names.push_back(b.name + "=" + b.dev);
  EXPECT_EQ(names, (std::vector<std::string>{"nvme0n1=259:0", "nvme0n1p1=259:1", "nvme0n1p2=259:2",
                                             "nvme0n1p3=259:3"}));
}

TEST(InUseFixture, ProcIsReadOnlyWhenThereIsSomethingToLookFor) {
  // No disk and no interface: nothing to read in proc.
  auto gpu = vfio::find_uses("0000:0a:00.0", fixture("/nonexistent"));
  ASSERT_TRUE(gpu) << gpu.error().message;
  EXPECT_TRUE(gpu->empty());
  // A disk, but no mountinfo: nothing can be said, so it is an error.
  auto disk = vfio::find_uses("0000:03:00.0", fixture("/nonexistent"));
  ASSERT_FALSE(disk);
  EXPECT_NE(disk.error().message.find("cannot tell whether 0000:03:00.0's disks are mounted"), std::string::npos)
      << disk.error().message;
  // No such device: its directory cannot be read.
  auto none = vfio::find_uses("0000:0b:00.0", fixture());
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::not_found);
}

TEST(InUseFixture, AddressesThatCannotBeHadAreAnError) {
  vfio::InUseOptions o = fixture();
  o.addresses = [] { return numacma::Result<std::vector<vfio::IfAddress>>(numacma::make_error(Errc::io_error, "getifaddrs(): boom")); };
  auto u = vfio::find_uses("0000:07:00.1", o);
  ASSERT_FALSE(u);
  EXPECT_NE(u.error().message.find("boom"), std::string::npos);
}
