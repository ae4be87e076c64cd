// numacma::vfio::Container against the fake VFIO type1 kernel
// (vfio_fake_kernel.hpp) over a temporary vm1-based sysfs tree with extra PCI
// devices:
//   0000:05:00.0, 0000:05:00.1   group 10, vfio-pci
//   0000:06:00.0                 group 11, vfio-pci
//   0000:07:00.0                 group 12, vfio-pci
//   0000:08:00.0                 group 13, bound to nvme
//   0000:08:00.1                 group 15, no driver
//   0000:09:00.0, 0000:09:00.1   group 14 (not viable): vfio-pci, nvme
//   0000:0a:00.0                 no IOMMU group
// Each attach error is checked with its code and the words that tell the user
// what to do; map/unmap with the IOVA rules (floor, MSI window, reserved
// regions, alignment, limit); destruction with nothing left behind, in order.
#include <gtest/gtest.h>

#include <sys/mman.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "topology/topology.hpp"
#include "vfio/container.hpp"
#include "vfio_fake_kernel.hpp"

using fakevfio::FakeKernel;
using fakevfio::SysfsTree;
using numacma::Errc;
using numacma::vfio::Container;
using numacma::vfio::IovaRange;
using numacma::vfio::kIovaFloor;

namespace {

constexpr std::uint64_t KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;
constexpr std::uint64_t k64 = ~std::uint64_t{0};
const std::string kA = "0000:05:00.0", kA2 = "0000:05:00.1", kB = "0000:06:00.0", kC = "0000:07:00.0",
                  kNvme = "0000:08:00.0", kUnbound = "0000:08:00.1", kNv0 = "0000:09:00.0",
                  kNv1 = "0000:09:00.1", kNoGroup = "0000:0a:00.0";
const std::string kRoot = "/fake/dev/vfio";

std::uint64_t mask_of(unsigned bits) { return bits >= 64 ? k64 : (std::uint64_t{1} << bits) - 1; }

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

/** Anonymous memory that is mapped (so the fake's "pinning" accepts it) but never touched. */
struct Mem {
  explicit Mem(std::uint64_t b) : bytes(b) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) addr = reinterpret_cast<std::uintptr_t>(p);
  }
  ~Mem() {
    if (addr != 0) ::munmap(reinterpret_cast<void*>(addr), bytes);
  }
  Mem(const Mem&) = delete;
  Mem& operator=(const Mem&) = delete;
  std::uintptr_t addr = 0;
  std::uint64_t bytes;
};

bool overlaps(std::uint64_t iova, std::uint64_t bytes, std::uint64_t first, std::uint64_t last) {
  return iova <= last && first <= iova + bytes - 1;
}

class VfioContainer : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = std::make_unique<SysfsTree>();
    tree_->add_device(kA, 10);
    tree_->add_device(kA2, 10);
    tree_->add_device(kB, 11);
    tree_->add_device(kC, 12);
    tree_->add_device(kNvme, 13, "nvme");
    tree_->add_device(kUnbound, 15, "");
    tree_->add_device(kNv0, 14);
    tree_->add_device(kNv1, 14, "nvme");
    tree_->add_device(kNoGroup, -1);
    fake_ = std::make_shared<FakeKernel>(kRoot);
    fake_->add_group(10, {kA, kA2});
    fake_->add_group(11, {kB});
    fake_->add_group(12, {kC});
    fake_->add_group(13, {kNvme});
    fake_->add_group(15, {kUnbound});
    fake_->add_group(14, {kNv0, kNv1}, /*viable=*/false);
  }

  void TearDown() override {
    c_.reset();
    EXPECT_TRUE(fake_->clean()) << fake_->describe();
  }

  /** A fresh container (the topology is read now, so tree changes made before count). */
  Container& make() {
    auto t = numacma::topo::Topology::from_sysfs(tree_->root());
    EXPECT_TRUE(t) << t.error().message;
    topo_ = std::make_unique<numacma::topo::Topology>(std::move(*t));
    auto c = Container::create(*topo_, kRoot, fake_);
    EXPECT_TRUE(c) << c.error().message;
    c_ = std::move(*c);
    return *c_;
  }

  /** The attach error (code, message); ok when it attached. */
  numacma::Error attach_error(Container& c, const std::string& bdf, std::uint64_t mask = k64) {
    numacma::Status s = c.attach(bdf, mask);
    if (s) return numacma::Error{Errc::ok, ""};
    return s.error();
  }

  /** Memory for mappings, kept until after TearDown (the container is gone first). */
  std::uintptr_t mem(std::uint64_t bytes) {
    mems_.push_back(std::make_unique<Mem>(bytes));
    EXPECT_NE(mems_.back()->addr, 0u);
    return mems_.back()->addr;
  }

  std::vector<std::unique_ptr<Mem>> mems_;
  std::unique_ptr<SysfsTree> tree_;
  std::shared_ptr<FakeKernel> fake_;
  std::unique_ptr<numacma::topo::Topology> topo_;
  std::unique_ptr<Container> c_;
};

}  // namespace

// ---- attach errors, in the order attach checks them ---------------------------------

TEST_F(VfioContainer, AttachMissingDeviceIsNotFound) {
  Container& c = make();
  auto e = attach_error(c, "0000:0f:00.0");
  EXPECT_EQ(e.code, Errc::not_found) << e.message;
  EXPECT_TRUE(contains(e.message, "no PCI device 0000:0f:00.0")) << e.message;
  EXPECT_EQ(fake_->open_fds(), 0u) << "nothing is opened before the sysfs checks pass";
  EXPECT_EQ(c.device_count(), 0u);
}

TEST_F(VfioContainer, AttachWithoutIommuGroupSaysNoIommu) {
  Container& c = make();
  auto e = attach_error(c, kNoGroup);
  EXPECT_EQ(e.code, Errc::unsupported) << e.message;
  EXPECT_TRUE(contains(e.message, "no IOMMU")) << e.message;
  EXPECT_TRUE(contains(e.message, "intel_iommu=on")) << e.message;
  EXPECT_EQ(fake_->open_fds(), 0u);
}

TEST_F(VfioContainer, AttachOfADeviceNotBoundToVfioPciGivesTheBindCommand) {
  Container& c = make();
  auto e = attach_error(c, kNvme);
  EXPECT_EQ(e.code, Errc::unsupported) << e.message;
  EXPECT_TRUE(contains(e.message, "bound to nvme")) << e.message;
  EXPECT_TRUE(contains(e.message, "numacma vfio bind " + kNvme)) << e.message;
  e = attach_error(c, kUnbound);
  EXPECT_EQ(e.code, Errc::unsupported) << e.message;
  EXPECT_TRUE(contains(e.message, "bound to no driver")) << e.message;
  EXPECT_TRUE(contains(e.message, "numacma vfio bind " + kUnbound)) << e.message;
  EXPECT_EQ(fake_->open_fds(), 0u);
}

TEST_F(VfioContainer, AttachWithoutDevVfioSaysVfioIsNotLoaded) {
  fake_->container_open_errno = ENOENT;
  Container& c = make();
  auto e = attach_error(c, kA);
  EXPECT_EQ(e.code, Errc::unsupported) << e.message;
  EXPECT_TRUE(contains(e.message, "no " + kRoot + "/vfio")) << e.message;
  EXPECT_TRUE(contains(e.message, "modprobe vfio-pci")) << e.message;
  fake_->container_open_errno = EACCES;
  e = attach_error(c, kA);
  EXPECT_EQ(e.code, Errc::permission) << e.message;
  EXPECT_TRUE(contains(e.message, "permission denied on " + kRoot + "/vfio")) << e.message;
  EXPECT_EQ(fake_->open_fds(), 0u);
}

TEST_F(VfioContainer, AttachWithGroupNodeNotAccessibleIsPermission) {
  fake_->group(10).open_errno = EACCES;
  Container& c = make();
  auto e = attach_error(c, kA);
  EXPECT_EQ(e.code, Errc::permission) << e.message;
  EXPECT_TRUE(contains(e.message, "permission denied on " + kRoot + "/10")) << e.message;
  EXPECT_TRUE(contains(e.message, "IOMMU group of " + kA)) << e.message;
  EXPECT_EQ(fake_->open_fds(FakeKernel::Kind::group), 0u);
  EXPECT_EQ(fake_->open_fds(FakeKernel::Kind::device), 0u);
  // The container is usable for another group afterwards.
  EXPECT_TRUE(c.attach(kB, k64)) << fake_->describe();
}

TEST_F(VfioContainer, AttachOfABusyGroupSaysItIsInUse) {
  fake_->group(10).open_errno = EBUSY;
  Container& c = make();
  auto e = attach_error(c, kA);
  EXPECT_EQ(e.code, Errc::io_error) << e.message;
  EXPECT_TRUE(contains(e.message, kRoot + "/10 is busy")) << e.message;
  EXPECT_TRUE(contains(e.message, "IOMMU group 10")) << e.message;
  EXPECT_EQ(e.sys_errno, EBUSY) << "decided on the errno, kept for the caller";
  fake_->group(10).open_errno = 0;
  // The real case: another container (another pool) holds the group.
  ASSERT_TRUE(c.attach(kA, k64));
  auto t = numacma::topo::Topology::from_sysfs(tree_->root());
  ASSERT_TRUE(t);
  {
    auto other = Container::create(*t, kRoot, fake_);
    ASSERT_TRUE(other);
    e = attach_error(**other, kA2);
    EXPECT_EQ(e.code, Errc::io_error) << e.message;
    EXPECT_TRUE(contains(e.message, "is busy")) << e.message;
  }
  EXPECT_EQ(fake_->open_fds(FakeKernel::Kind::container), 1u) << "the other container's fd is closed";
}

TEST_F(VfioContainer, AttachOfANonViableGroupNamesTheOtherDeviceAndItsDriver) {
  Container& c = make();
  auto e = attach_error(c, kNv0);
  EXPECT_EQ(e.code, Errc::unsupported) << e.message;
  EXPECT_TRUE(contains(e.message, "IOMMU group 14 of " + kNv0 + " is not viable")) << e.message;
  EXPECT_TRUE(contains(e.message, kNv1 + " (bound to nvme: numacma vfio bind " + kNv1 + ")")) << e.message;
  EXPECT_FALSE(contains(e.message, kNv0 + " (bound")) << "the device itself is not the culprit: " << e.message;
  EXPECT_EQ(fake_->container_of_group(14), -1);
  EXPECT_FALSE(fake_->group_open(14));
}

TEST_F(VfioContainer, AttachWithAnotherApiVersionIsUnsupported) {
  fake_->api = 1;
  Container& c = make();
  auto e = attach_error(c, kA);
  EXPECT_EQ(e.code, Errc::unsupported) << e.message;
  EXPECT_TRUE(contains(e.message, "API version 1, not 0")) << e.message;
  EXPECT_EQ(fake_->open_fds(), 0u) << "the container fd is closed again";
}

TEST_F(VfioContainer, AttachWithoutType1v2IsUnsupported) {
  fake_->type1v2 = false;
  Container& c = make();
  auto e = attach_error(c, kA);
  EXPECT_EQ(e.code, Errc::unsupported) << e.message;
  EXPECT_TRUE(contains(e.message, "no type1v2")) << e.message;
  EXPECT_TRUE(contains(e.message, "vfio_iommu_type1")) << e.message;
  EXPECT_EQ(fake_->open_fds(), 0u);
}

TEST_F(VfioContainer, SetIommuRefusedWithEpermGivesTheInterruptRemappingHint) {
  fake_->set_iommu_errno = EPERM;
  fake_->set_iommu_failures = 1;
  Container& c = make();
  auto e = attach_error(c, kA);
  EXPECT_EQ(e.code, Errc::permission) << e.message;
  EXPECT_TRUE(contains(e.message, "interrupt remapping")) << e.message;
  EXPECT_TRUE(contains(e.message, "allow_unsafe_interrupts")) << e.message;
  EXPECT_EQ(fake_->container_of_group(10), -1) << "the group left the container again";
  EXPECT_FALSE(fake_->group_open(10));
  // Nothing half-done stays behind: the next attach sets the IOMMU itself.
  ASSERT_TRUE(c.attach(kA, k64)) << fake_->describe();
  EXPECT_EQ(c.device_count(), 1u);
}

TEST_F(VfioContainer, MaskBelowEveryUsableRangeIsUnreachable) {
  Container& c = make();
  EXPECT_EQ(attach_error(c, kA, 0).code, Errc::invalid_argument);
  auto e = attach_error(c, kA, 0xfffff);  // IOVAs start at 1 MiB
  EXPECT_EQ(e.code, Errc::unreachable) << e.message;
  EXPECT_TRUE(contains(e.message, "below every usable IOVA range")) << e.message;
  EXPECT_TRUE(contains(e.message, "0x100000")) << "names the lowest usable IOVA: " << e.message;
  EXPECT_EQ(fake_->container_of_group(10), -1);
  EXPECT_FALSE(fake_->group_open(10));
  EXPECT_EQ(fake_->open_fds(FakeKernel::Kind::device), 0u);
  EXPECT_EQ(c.device_count(), 0u);

  // An IOMMU whose space starts at 4 GiB: a 32-bit device reaches none of it.
  fake_->ranges = {{4 * GiB, (1ULL << 39) - 1}};
  e = attach_error(c, kA, mask_of(32));
  EXPECT_EQ(e.code, Errc::unreachable) << e.message;
  EXPECT_TRUE(contains(e.message, "0x100000000")) << e.message;
  // A wide mask attaches (the IOMMU backend is set again after the group left).
  ASSERT_TRUE(c.attach(kA, mask_of(40))) << fake_->describe();
  // A second, narrow device of another group is refused; the first stays.
  e = attach_error(c, kB, mask_of(32));
  EXPECT_EQ(e.code, Errc::unreachable) << e.message;
  EXPECT_EQ(fake_->container_of_group(11), -1);
  EXPECT_FALSE(fake_->group_open(11));
  EXPECT_EQ(c.device_count(), 1u);
  EXPECT_NE(fake_->container_of_group(10), -1);
}

TEST_F(VfioContainer, AttachTwiceIsInvalid) {
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  EXPECT_EQ(attach_error(c, kA).code, Errc::invalid_argument);
  EXPECT_EQ(fake_->open_fds(FakeKernel::Kind::device), 1u);
}

// ---- map / unmap ----------------------------------------------------------------------

TEST_F(VfioContainer, MapsAreAlignedAboveTheFloorAndBelowTheLimit) {
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  const std::uintptr_t buf = mem(16 * MiB);
  struct Want {
    std::uint64_t bytes, align, limit;
  };
  const std::vector<Want> wants = {{4 * KiB, 4 * KiB, k64},   {8 * KiB, 8 * KiB, k64},
                                   {2 * MiB, 2 * MiB, k64},   {12 * KiB, 16 * KiB, mask_of(24)},
                                   {1 * MiB, 1 * MiB, k64},   {4 * MiB, 2 * MiB, mask_of(28)}};
  std::vector<std::uint64_t> got;
  for (const Want& w : wants) {
    auto iova = c.map(buf, w.bytes, w.align, w.limit, "buf");
    ASSERT_TRUE(iova) << iova.error().message;
    EXPECT_GE(*iova, kIovaFloor);
    EXPECT_EQ(*iova % w.align, 0u);
    EXPECT_LE(*iova + w.bytes - 1, w.limit);
    EXPECT_FALSE(overlaps(*iova, w.bytes, fakevfio::kMsiFirst, fakevfio::kMsiLast));
    EXPECT_TRUE(fake_->has_mapping(*iova, w.bytes)) << fake_->describe();
    EXPECT_EQ(fake_->mapping_containing(*iova).vaddr, buf);
    got.push_back(*iova);
  }
  EXPECT_EQ(got[0], kIovaFloor) << "lowest first";
  auto rep = c.report();
  ASSERT_EQ(rep.mappings.size(), wants.size());
  for (std::size_t i = 1; i < rep.mappings.size(); ++i)
    EXPECT_LT(rep.mappings[i - 1].iova + rep.mappings[i - 1].bytes - 1, rep.mappings[i].iova) << "by IOVA, disjoint";
  EXPECT_EQ(rep.dma_avail, 65535 - static_cast<std::int64_t>(wants.size()));
  EXPECT_EQ(rep.pgsizes, fakevfio::kPgsizes);
  ASSERT_FALSE(rep.ranges.empty());
  EXPECT_EQ(rep.ranges.front().first, kIovaFloor);
  for (const IovaRange& r : rep.ranges) EXPECT_FALSE(overlaps(r.first, r.last - r.first + 1, fakevfio::kMsiFirst, fakevfio::kMsiLast));

  // Unmap: exactly a mapping, or nothing happens.
  const std::uint64_t calls = fake_->calls().size();
  EXPECT_EQ(c.unmap(got[0] + 4096, 4096).error().code, Errc::invalid_argument);
  EXPECT_EQ(c.unmap(got[2], 1 * MiB).error().code, Errc::invalid_argument) << "wrong size";
  EXPECT_EQ(fake_->calls().size(), calls) << "a refused unmap reaches no kernel";
  ASSERT_TRUE(c.unmap(got[2], 2 * MiB));
  EXPECT_FALSE(fake_->has_mapping(got[2], 2 * MiB));
  EXPECT_EQ(c.unmap(got[2], 2 * MiB).error().code, Errc::invalid_argument) << "twice";
  auto again = c.map(buf, 2 * MiB, 2 * MiB, k64, "again");
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, got[2]) << "the IOVA came back to the allocator";
  const auto left = c.report().mappings;
  for (const auto& m : left) ASSERT_TRUE(c.unmap(m.iova, m.bytes));
  EXPECT_TRUE(fake_->mappings().empty());
  EXPECT_EQ(c.report().dma_avail, 65535);
}

TEST_F(VfioContainer, MapErrorsNameTheLimit) {
  Container& c = make();
  EXPECT_EQ(c.map(0x10000000, 4096, 4096, k64, "x").error().code, Errc::invalid_argument) << "no device yet";
  ASSERT_TRUE(c.attach(kA, k64));
  const std::uintptr_t buf = mem(8 * MiB);
  auto e = c.map(buf, 4 * MiB, 4096, mask_of(22), "big");  // 1 MiB .. 4 MiB free: 3 MiB
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, Errc::no_memory) << e.error().message;
  EXPECT_TRUE(contains(e.error().message, "big: IOVA space exhausted")) << e.error().message;
  e = c.map(buf, 4096, 4096, 0xfffff, "low");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, Errc::unreachable) << e.error().message;
  EXPECT_EQ(c.map(buf, 100, 4096, k64, "odd").error().code, Errc::invalid_argument);
  EXPECT_EQ(fake_->map_calls(), 0u) << "refused before MAP_DMA";
}

TEST_F(VfioContainer, MapsAvoidTheMsiWindowAndReservedRegionsFromSysfs) {
  // An IOMMU whose IOVA_RANGE does not leave the MSI window out (so only the
  // sysfs reserved_regions keep the container out of it), and a direct-mapped
  // region at 2-4 MiB.
  fake_->ranges = {{0, (1ULL << 48) - 1}};
  tree_->set_reserved_regions(10,
                              "0x00000000fee00000 0x00000000feefffff msi\n"
                              "0x0000000000200000 0x00000000003fffff direct\n");
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  const std::uintptr_t buf = mem(256 * MiB);
  auto first = c.map(buf, 1 * MiB, 1 * MiB, k64, "a");
  auto second = c.map(buf, 1 * MiB, 1 * MiB, k64, "b");
  ASSERT_TRUE(first && second);
  EXPECT_EQ(*first, 1 * MiB);
  EXPECT_EQ(*second, 4 * MiB) << "2-4 MiB is reserved";
  // 256 MiB chunks up to 4 GiB: the one that would straddle the MSI window goes above it.
  std::vector<std::uint64_t> chunks;
  for (int i = 0; i < 17; ++i) {
    auto r = c.map(buf, 256 * MiB, 1 * MiB, k64, "chunk");
    ASSERT_TRUE(r) << r.error().message;
    chunks.push_back(*r);
  }
  EXPECT_EQ(chunks[15], fakevfio::kMsiLast + 1) << "the 16th chunk would cover the MSI window";
  for (const auto& m : fake_->mappings()) {
    EXPECT_FALSE(overlaps(m.iova, m.bytes, fakevfio::kMsiFirst, fakevfio::kMsiLast)) << fakevfio::hex(m.iova);
    EXPECT_FALSE(overlaps(m.iova, m.bytes, 2 * MiB, 4 * MiB - 1)) << fakevfio::hex(m.iova);
    EXPECT_GE(m.iova, kIovaFloor);
  }
  for (const IovaRange& r : c.report().ranges) {
    EXPECT_FALSE(overlaps(r.first, r.last - r.first + 1, fakevfio::kMsiFirst, fakevfio::kMsiLast));
    EXPECT_FALSE(overlaps(r.first, r.last - r.first + 1, 2 * MiB, 4 * MiB - 1));
  }
}

TEST_F(VfioContainer, AFailedMapDmaGivesTheIovaBackAndExplains) {
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  const std::uintptr_t buf = mem(4 * MiB);
  fake_->fail_map_nth = 2;
  auto a = c.map(buf, 64 * KiB, 64 * KiB, k64, "one");
  ASSERT_TRUE(a);
  auto b = c.map(buf, 64 * KiB, 64 * KiB, k64, "two");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Errc::no_memory) << b.error().message;
  EXPECT_TRUE(contains(b.error().message, "two: ")) << b.error().message;
  EXPECT_FALSE(contains(b.error().message, "RLIMIT_MEMLOCK")) << "unlimited: no memlock hint";
  auto b2 = c.map(buf, 64 * KiB, 64 * KiB, k64, "two");
  ASSERT_TRUE(b2);
  EXPECT_EQ(*b2, *a + 64 * KiB) << "the failed IOVA was given back";
  EXPECT_EQ(c.report().mappings.size(), 2u);

  // ENOMEM with a finite RLIMIT_MEMLOCK: the hint to raise it.
  fake_->memlock = 64 * MiB;
  fake_->fail_map_nth = fake_->map_calls() + 1;
  auto m = c.map(buf, 4096, 4096, k64, "three");
  ASSERT_FALSE(m);
  EXPECT_TRUE(contains(m.error().message, "RLIMIT_MEMLOCK is 64.0 MiB")) << m.error().message;

  // The container's mapping limit (dma_entry_limit): ENOSPC.
  fake_->fail_map_nth = 0;
  fake_->dma_entry_limit = 3;
  ASSERT_TRUE(c.map(buf, 4096, 4096, k64, "third"));
  auto full = c.map(buf, 4096, 4096, k64, "fourth");
  ASSERT_FALSE(full);
  EXPECT_TRUE(contains(full.error().message, "dma_entry_limit")) << full.error().message;
  EXPECT_EQ(full.error().sys_errno, ENOSPC);
  EXPECT_EQ(c.report().mappings.size(), 3u);
  EXPECT_EQ(c.report().dma_avail, 0);
}

TEST_F(VfioContainer, MemlockIsCheckedBeforePinning) {
  fake_->unlimited = false;
  fake_->memlock = 1 * MiB;
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  const std::uintptr_t buf = mem(4 * MiB);
  auto a = c.map(buf, 512 * KiB, 4096, k64, "first");
  ASSERT_TRUE(a) << a.error().message;
  auto b = c.map(buf, 1 * MiB, 4096, k64, "second");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Errc::no_memory);
  EXPECT_TRUE(contains(b.error().message, "RLIMIT_MEMLOCK is 1.0 MiB but VFIO must pin 1.5 MiB (second included)"))
      << b.error().message;
  EXPECT_TRUE(contains(b.error().message, "ulimit -l")) << b.error().message;
  EXPECT_EQ(fake_->map_calls(), 1u) << "refused before MAP_DMA";
  ASSERT_TRUE(c.unmap(*a, 512 * KiB));
  EXPECT_TRUE(c.map(buf, 1 * MiB, 4096, k64, "second")) << "unmapped bytes are no longer counted";
  // Root (CAP_IPC_LOCK) is not limited.
  fake_->unlimited = true;
  EXPECT_TRUE(c.map(buf, 2 * MiB, 4096, k64, "third"));
}

// ---- several devices --------------------------------------------------------------------

TEST_F(VfioContainer, ALaterGroupSharesTheContainersMappings) {
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  const std::uintptr_t buf = mem(4 * MiB);
  auto iova = c.map(buf, 2 * MiB, 2 * MiB, mask_of(32), "area");
  ASSERT_TRUE(iova);
  ASSERT_TRUE(c.attach(kB, mask_of(32))) << fake_->describe();
  EXPECT_NE(fake_->container_of_group(11), -1);
  EXPECT_EQ(fake_->container_of_group(11), fake_->container_of_group(10)) << "one container";
  EXPECT_EQ(fake_->mappings().size(), 1u) << "nothing is mapped again: the group joins the domain";
  EXPECT_EQ(c.min_mask(), mask_of(32));
  EXPECT_EQ(c.device_count(), 2u);
  EXPECT_EQ(c.find(kB), 1);
  EXPECT_EQ(c.device(1).group, 11);
  EXPECT_EQ(c.device(1).node, 0);
  EXPECT_EQ(c.device(1).dma_mask, mask_of(32));
  // A second device of a group already in the container opens no group again.
  ASSERT_TRUE(c.attach(kA2, k64));
  const auto calls = fake_->calls();
  int opens = 0;
  for (const auto& s : calls) opens += s == "open " + kRoot + "/10";
  EXPECT_EQ(opens, 1);
  EXPECT_EQ(fake_->open_fds(FakeKernel::Kind::group), 2u);
  EXPECT_EQ(fake_->open_fds(FakeKernel::Kind::device), 3u);
  EXPECT_EQ(c.report().devices.size(), 3u);
  EXPECT_EQ(fake_->open_fds(FakeKernel::Kind::container), 1u);
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "set_iommu " + std::to_string(fake_->container_of_group(10))), 1)
      << "SET_IOMMU once";
}

TEST_F(VfioContainer, ReservedRegionsOfALaterGroupAreExcluded) {
  tree_->set_reserved_regions(11,
                              "0x00000000fee00000 0x00000000feefffff msi\n"
                              "0x0000000000400000 0x00000000005fffff reserved\n");
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  const std::uintptr_t buf = mem(8 * MiB);
  auto low = c.map(buf, 1 * MiB, 1 * MiB, k64, "low");
  ASSERT_TRUE(low);
  EXPECT_EQ(*low, 1 * MiB);
  ASSERT_TRUE(c.attach(kB, k64));
  for (const IovaRange& r : c.report().ranges)
    EXPECT_FALSE(overlaps(r.first, r.last - r.first + 1, 4 * MiB, 6 * MiB - 1))
        << fakevfio::hex(r.first) << "-" << fakevfio::hex(r.last);
  auto next = c.map(buf, 4 * MiB, 1 * MiB, k64, "next");  // 2 MiB .. 6 MiB would cross it
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, 6 * MiB);
  auto small = c.map(buf, 2 * MiB, 1 * MiB, k64, "small");
  ASSERT_TRUE(small);
  EXPECT_EQ(*small, 2 * MiB) << "below the reserved region";
}

TEST_F(VfioContainer, AGroupWhoseReservedRegionCoversALiveMappingIsRefusedCleanly) {
  tree_->set_reserved_regions(12,
                              "0x00000000fee00000 0x00000000feefffff msi\n"
                              "0x0000000000400000 0x00000000005fffff reserved\n");
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  const std::uintptr_t buf = mem(8 * MiB);
  auto big = c.map(buf, 8 * MiB, 4096, k64, "area");  // 1 MiB .. 9 MiB
  ASSERT_TRUE(big);
  auto e = attach_error(c, kC);
  EXPECT_EQ(e.code, Errc::unsupported) << e.message;
  EXPECT_TRUE(contains(e.message, "cannot attach " + kC)) << e.message;
  EXPECT_EQ(c.device_count(), 1u);
  EXPECT_EQ(fake_->container_of_group(12), -1);
  EXPECT_FALSE(fake_->group_open(12));
  EXPECT_EQ(fake_->open_fds(FakeKernel::Kind::device), 1u);
  EXPECT_TRUE(fake_->has_mapping(*big, 8 * MiB)) << "the live mapping is untouched";
  // Its device fd was closed before the group left the container (EBUSY otherwise).
  const auto calls = fake_->calls();
  const long dev = fakevfio::find_last_call(calls, "device_fd ");
  ASSERT_GE(dev, 0);
  const long unset = fakevfio::find_call(calls, "unset_container ", static_cast<std::size_t>(dev));
  ASSERT_GE(unset, 0);
  const long close_dev = fakevfio::find_call(calls, "close ", static_cast<std::size_t>(dev));
  EXPECT_LT(close_dev, unset);
  EXPECT_TRUE(fake_->violations().empty()) << fake_->describe();
}

// ---- destruction --------------------------------------------------------------------------

TEST_F(VfioContainer, DestructionUnmapsEverythingAndClosesInOrder) {
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  ASSERT_TRUE(c.attach(kB, k64));
  ASSERT_TRUE(c.attach(kA2, k64));
  const std::uintptr_t buf = mem(8 * MiB);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.map(buf, 2 * MiB, 2 * MiB, k64, "m"));
  ASSERT_TRUE(c.read32(0, 0, 0));  // BAR0 mmapped
  ASSERT_TRUE(c.read32(1, 0, 0));
  EXPECT_EQ(fake_->mmapped_regions(), 2u);
  const std::size_t before = fake_->calls().size();
  c_.reset();
  EXPECT_TRUE(fake_->clean()) << fake_->describe();
  const auto all = fake_->calls();
  const std::vector<std::string> calls(all.begin() + static_cast<long>(before), all.end());
  const long first_unset = fakevfio::find_call(calls, "unset_container");
  const long last_unmap = fakevfio::find_last_call(calls, "unmap ");
  const long last_munmap = fakevfio::find_last_call(calls, "munmap");
  ASSERT_GE(first_unset, 0);
  EXPECT_LT(last_unmap, first_unset) << "every mapping undone before a group leaves";
  EXPECT_LT(last_munmap, first_unset);
  // Three device fds closed, then per group unset before close; the container last.
  int closes_before_unset = 0;
  for (long i = 0; i < first_unset; ++i) closes_before_unset += calls[static_cast<std::size_t>(i)].rfind("close ", 0) == 0;
  EXPECT_EQ(closes_before_unset, 3) << "device fds before the groups";
  EXPECT_EQ(calls.back().rfind("close ", 0), 0u);
  int unsets = 0;
  for (const auto& s : calls) unsets += s.rfind("unset_container", 0) == 0;
  EXPECT_EQ(unsets, 2);
}

// ---- registers ------------------------------------------------------------------------------

TEST_F(VfioContainer, BarAccessThroughTheMmap) {
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  auto size = c.bar_size(0, 0);
  ASSERT_TRUE(size);
  EXPECT_EQ(*size, fakevfio::kBar0Bytes);
  ASSERT_TRUE(c.write32(0, 0, 0x14, 0xdeadbeef));
  auto& bar = fake_->bar0(kA);
  EXPECT_EQ(bar[0x14], 0xef);
  EXPECT_EQ(bar[0x17], 0xde);
  bar[0x20] = 0x78, bar[0x21] = 0x56, bar[0x22] = 0x34, bar[0x23] = 0x12;
  auto v = c.read32(0, 0, 0x20);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 0x12345678u);
  ASSERT_TRUE(c.write64(0, 0, 0x3ff8, 0x0102030405060708ULL));
  auto v64 = c.read64(0, 0, 0x3ff8);
  ASSERT_TRUE(v64);
  EXPECT_EQ(*v64, 0x0102030405060708ULL);
  EXPECT_EQ(bar[0x3ff8], 0x08);
  EXPECT_EQ(fake_->preads(), 0u) << "the mapped BAR needs no system call";
  EXPECT_EQ(fake_->pwrites(), 0u);
  EXPECT_EQ(fake_->mmapped_regions(), 1u);

  EXPECT_EQ(c.read32(0, 0, 0x22).error().code, Errc::invalid_argument) << "misaligned";
  EXPECT_EQ(c.read32(0, 0, fakevfio::kBar0Bytes).error().code, Errc::invalid_argument) << "past the end";
  EXPECT_EQ(c.write64(0, 0, 0x3ffc, 1).error().code, Errc::invalid_argument);
  auto none = c.read32(0, 1, 0);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::not_found);
  EXPECT_TRUE(contains(none.error().message, "has no BAR 1")) << none.error().message;
  EXPECT_EQ(c.read32(0, 6, 0).error().code, Errc::invalid_argument);
  EXPECT_EQ(c.read32(5, 0, 0).error().code, Errc::not_found);
  EXPECT_EQ(c.bar_size(0, 3).error().code, Errc::not_found);
}

TEST_F(VfioContainer, DeviceAccessIsTheDevicesOwn) {
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  EXPECT_EQ(c.access(1).error().code, Errc::not_found);
  EXPECT_EQ(c.access(-1).error().code, Errc::not_found);
  auto d = c.access(0);
  ASSERT_TRUE(d);
  EXPECT_EQ((*d)->info().bdf, c.device(0).bdf);
  ASSERT_TRUE((*d)->write32(0, 0x30, 0x11223344));
  auto v = c.read32(0, 0, 0x30);  // the by-index call reaches the same device
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 0x11223344u);
  std::uint16_t vendor = 0;
  ASSERT_TRUE((*d)->config_read(0, &vendor, sizeof vendor));
  std::uint16_t vendor_by_index = 1;
  ASSERT_TRUE(c.config_read(0, 0, &vendor_by_index, sizeof vendor_by_index));
  EXPECT_EQ(vendor, vendor_by_index);
  EXPECT_EQ((*d)->config_read(0xffffff, &vendor, sizeof vendor).error().code, Errc::invalid_argument);
}

TEST_F(VfioContainer, BarAccessThroughPreadPwriteWhenTheBarCannotBeMapped) {
  for (int variant = 0; variant < 2; ++variant) {
    SCOPED_TRACE(variant == 0 ? "no MMAP flag" : "mmap fails");
    fake_->bar0_mmap = variant == 0 ? false : true;
    fake_->map_region_fails = variant == 1;
    Container& c = make();
    ASSERT_TRUE(c.attach(kA, k64));
    const auto r0 = fake_->preads(), w0 = fake_->pwrites();
    ASSERT_TRUE(c.write32(0, 0, 0x40, 0xcafef00d));
    auto& bar = fake_->bar0(kA);
    EXPECT_EQ(bar[0x40], 0x0d);
    EXPECT_EQ(bar[0x43], 0xca);
    bar[0x44] = 0x11;
    auto v = c.read32(0, 0, 0x44);
    ASSERT_TRUE(v);
    EXPECT_EQ(*v, 0x11u);
    ASSERT_TRUE(c.write64(0, 0, 0x48, 0xa1a2a3a4a5a6a7a8ULL));
    auto v64 = c.read64(0, 0, 0x48);
    ASSERT_TRUE(v64);
    EXPECT_EQ(*v64, 0xa1a2a3a4a5a6a7a8ULL);
    EXPECT_EQ(fake_->preads() - r0, 2u);
    EXPECT_EQ(fake_->pwrites() - w0, 2u);
    EXPECT_EQ(fake_->mmapped_regions(), 0u);
    EXPECT_EQ(c.read32(0, 0, fakevfio::kBar0Bytes - 2).error().code, Errc::invalid_argument);
    c_.reset();
    EXPECT_TRUE(fake_->clean()) << fake_->describe();
  }
}

TEST_F(VfioContainer, ABarAtANonZeroRegionOffsetIsReadAtThatOffset) {
  // BAR2 lives at 2 << 40 in the device fd and cannot be mmapped.
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  auto size = c.bar_size(0, 2);
  ASSERT_TRUE(size);
  EXPECT_EQ(*size, fakevfio::kBar2Bytes);
  ASSERT_TRUE(c.write32(0, 2, 0x8, 0x600dcafe));
  auto& bar2 = fake_->bar2(kA);
  EXPECT_EQ(bar2[0x8], 0xfe);
  EXPECT_EQ(fake_->bar0(kA)[0x8], 0x00) << "not BAR0";
  bar2[0xc] = 0x42;
  auto v = c.read32(0, 2, 0xc);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 0x42u);
  ASSERT_TRUE(c.write64(0, 2, 0x10, 0x8877665544332211ULL));
  auto v64 = c.read64(0, 2, 0x10);
  ASSERT_TRUE(v64);
  EXPECT_EQ(*v64, 0x8877665544332211ULL);
  EXPECT_EQ(bar2[0x10], 0x11);
  EXPECT_EQ(fake_->mmapped_regions(), 0u);
  EXPECT_EQ(c.read32(0, 2, fakevfio::kBar2Bytes).error().code, Errc::invalid_argument);
}

TEST_F(VfioContainer, BarAccessLeavesNothingBehindEitherWay) {
  for (bool mmap_ok : {true, false}) {
    fake_->bar0_mmap = mmap_ok;
    Container& c = make();
    ASSERT_TRUE(c.attach(kA, k64));
    ASSERT_TRUE(c.read32(0, 0, 0));
    ASSERT_TRUE(c.read32(0, 2, 0));
    c_.reset();
    EXPECT_TRUE(fake_->clean()) << fake_->describe();
  }
}

TEST_F(VfioContainer, ConfigSpaceReadAndWrite) {
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  std::uint16_t ids[2] = {0, 0};
  ASSERT_TRUE(c.config_read(0, 0, ids, 4));
  EXPECT_EQ(ids[0], fakevfio::kVendor);
  EXPECT_EQ(ids[1], fakevfio::kDeviceId);
  const std::uint16_t cmd = 0x0006;
  ASSERT_TRUE(c.config_write(0, 4, &cmd, 2));
  EXPECT_EQ(fake_->config(kA)[4], 0x06);
  std::uint16_t back = 0;
  ASSERT_TRUE(c.config_read(0, 4, &back, 2));
  EXPECT_EQ(back, 0x0006);
  std::uint8_t buf[8];
  auto past = c.config_read(0, 252, buf, 8);
  ASSERT_FALSE(past);
  EXPECT_EQ(past.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(past.error().message, "config read past 256 bytes")) << "checked before any pread: "
                                                                             << past.error().message;
  past = c.config_write(0, 256, buf, 1);
  ASSERT_FALSE(past);
  EXPECT_TRUE(contains(past.error().message, "config write past 256 bytes")) << past.error().message;
  const std::uint64_t r0 = fake_->preads(), w0 = fake_->pwrites();
  (void)c.config_read(0, 255, buf, 2);
  EXPECT_EQ(fake_->preads(), r0);
  EXPECT_EQ(fake_->pwrites(), w0);
  EXPECT_EQ(c.config_read(3, 0, buf, 4).error().code, Errc::not_found);
}
