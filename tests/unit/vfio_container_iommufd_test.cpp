// tests/unit/vfio_container_iommufd_test.cpp — Container over iommufd
// (container_iommufd.cpp) against the fake kernel's iommufd side: which
// backend is chosen, the calls in order, mappings at the allocator's IOVAs,
// later devices in the same IOAS, and every error saying what to do.
#include <functional>
#include <utility>

#include "vfio_container_fixture.hpp"

using numacma::vfio::IommuBackend;

namespace {

class VfioIommufd : public VfioContainer {
 protected:
  /** A kernel with /dev/iommu and cdevs for the devices of groups 10-12 and 14. */
  void with_iommufd() {
    fake_->iommufd = true;
    fake_->cdevs = true;
    for (const std::string& b : {kA, kA2, kB, kC, kNv0}) tree_->add_cdev(b, fake_->cdev(b));
  }
  std::vector<std::string> calls() const { return fake_->calls(); }
  std::size_t count(const std::string& prefix) const {
    std::size_t n = 0;
    for (const std::string& c : calls()) n += c.compare(0, prefix.size(), prefix) == 0;
    return n;
  }
  /** A fresh fake with the fixture's groups (so the cdev names match the tree's). */
  void reset_fake() {
    fake_ = make_fake();
    fake_->iommufd = fake_->cdevs = true;
  }
  bool called(const std::string& prefix) const { return fakevfio::find_call(calls(), prefix) >= 0; }
};

TEST_F(VfioIommufd, AutomaticPicksIommufdAndMapsAtTheAllocatorsIovas) {
  with_iommufd();
  Container& c = make();
  EXPECT_EQ(c.backend(), IommuBackend::automatic);
  ASSERT_TRUE(c.attach(kA, k64));
  EXPECT_EQ(c.backend(), IommuBackend::iommufd);
  const auto log = calls();
  // /dev/iommu, an IOAS, the cdev, BIND, ATTACH, then the ranges: in that order.
  const long open_iommu = fakevfio::find_call(log, "open /fake/dev/iommu");
  const long alloc = fakevfio::find_call(log, "ioas_alloc");
  const long open_cdev = fakevfio::find_call(log, "open /fake/dev/vfio/devices/" + fake_->cdev(kA));
  const long bind = fakevfio::find_call(log, "bind_iommufd");
  const long attach = fakevfio::find_call(log, "attach_ioas");
  ASSERT_GE(open_iommu, 0);
  EXPECT_LT(open_iommu, alloc);
  EXPECT_LT(alloc, bind);
  EXPECT_LT(open_cdev, bind);
  EXPECT_LT(bind, attach);
  EXPECT_FALSE(called("open /fake/dev/vfio/vfio")) << "no type1 container";
  EXPECT_FALSE(called("open /fake/dev/vfio/10")) << "no group node";

  const std::uintptr_t va = mem(2 * MiB);
  auto iova = c.map(va, 2 * MiB, 2 * MiB, k64, "area");
  ASSERT_TRUE(iova) << iova.error().message;
  EXPECT_TRUE(fake_->has_mapping(*iova, 2 * MiB)) << fake_->describe();
  EXPECT_EQ(fake_->mapping_containing(*iova).vaddr, va);
  EXPECT_GE(*iova, kIovaFloor);
  EXPECT_EQ(*iova % (2 * MiB), 0u);
  EXPECT_TRUE(called("ioas_map " + fakevfio::hex(*iova)));
  const auto rep = c.report();
  EXPECT_EQ(rep.backend, "iommufd");
  EXPECT_EQ(rep.dma_avail, -1) << "iommufd has no DMA_AVAIL";
  EXPECT_EQ(rep.pgsizes, 4096u);
  for (const IovaRange& r : rep.ranges)  // the device's MSI window is out
    EXPECT_FALSE(overlaps(r.first, r.last - r.first + 1, fakevfio::kMsiFirst, fakevfio::kMsiLast));
  ASSERT_TRUE(c.unmap(*iova, 2 * MiB));
  EXPECT_TRUE(fake_->mappings().empty());
  // Registers through the cdev fd, as through a group's device fd.
  auto size = c.bar_size(0, 0);
  ASSERT_TRUE(size) << size.error().message;
  EXPECT_EQ(*size, fakevfio::kBar0Bytes);
}

TEST_F(VfioIommufd, ALaterDeviceJoinsTheSameIoasAndReachesItsMappings) {
  with_iommufd();
  Container& c = make(IommuBackend::iommufd);
  ASSERT_TRUE(c.attach(kA, k64));
  const std::uintptr_t va = mem(4 * MiB);
  auto iova = c.map(va, 4 * MiB, 2 * MiB, k64, "area");
  ASSERT_TRUE(iova);
  ASSERT_TRUE(c.attach(kB, mask_of(32)));
  EXPECT_EQ(c.device_count(), 2u);
  EXPECT_EQ(count("ioas_alloc"), 1u) << "one IOAS for every device";
  EXPECT_EQ(count("attach_ioas"), 2u);
  EXPECT_EQ(count("open /fake/dev/iommu"), 1u);
  EXPECT_TRUE(fake_->has_mapping(*iova, 4 * MiB)) << "the mapping made before is still there for both";
  EXPECT_EQ(c.min_mask(), mask_of(32));
  ASSERT_TRUE(c.unmap(*iova, 4 * MiB));
}

TEST_F(VfioIommufd, ManyMapUnmapCyclesLeaveTheIoasAsItStarted) {
  with_iommufd();
  Container& c = make(IommuBackend::iommufd);
  ASSERT_TRUE(c.attach(kA, k64));
  const std::uintptr_t va = mem(64 * KiB);
  for (int i = 0; i < 2000; ++i) {
    auto iova = c.map(va, 64 * KiB, 64 * KiB, mask_of(32), "pages");
    ASSERT_TRUE(iova) << i << ": " << iova.error().message;
    ASSERT_TRUE(c.unmap(*iova, 64 * KiB)) << i;
  }
  EXPECT_TRUE(fake_->mappings().empty());
  EXPECT_TRUE(c.report().mappings.empty());
}

TEST_F(VfioIommufd, AutomaticUsesType1WithoutDevIommuOrWithoutACdev) {
  // No /dev/iommu (a kernel without CONFIG_IOMMUFD), though sysfs lists cdevs.
  with_iommufd();
  fake_->iommufd = false;
  {
    Container& c = make();
    ASSERT_TRUE(c.attach(kA, k64));
    EXPECT_EQ(c.backend(), IommuBackend::type1);
    EXPECT_EQ(c.report().backend, "type1");
    c_.reset();
  }
  // /dev/iommu but no cdev (CONFIG_VFIO_DEVICE_CDEV=n): type1, and /dev/iommu not kept open.
  tree_ = std::make_unique<SysfsTree>();
  tree_->add_device(kA, 10);
  fake_->iommufd = true;
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  EXPECT_EQ(c.backend(), IommuBackend::type1);
  EXPECT_EQ(fake_->open_fds(FakeKernel::Kind::iommufd), 0u);
}

TEST_F(VfioIommufd, AutomaticFallsBackToType1WhenTheCdevCannotBeOpened) {
  with_iommufd();
  fake_->cdev_open_errno = EACCES;
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  EXPECT_EQ(c.backend(), IommuBackend::type1);
  EXPECT_EQ(fake_->open_fds(FakeKernel::Kind::iommufd), 0u) << "the iommufd tried first is closed";
  // Both failing: one error naming both.
  c_.reset();
  fake_->container_open_errno = ENOENT;
  Container& d = make();
  const numacma::Error e = attach_error(d, kA);
  EXPECT_NE(e.code, Errc::ok);
  EXPECT_TRUE(contains(e.message, "over iommufd: ") && contains(e.message, "over the type1 container: "))
      << e.message;
  // What is about the device, not the interface (a mask below every range),
  // is said once, from iommufd, without trying type1.
  c_.reset();
  reset_fake();
  Container& m = make();
  const numacma::Error narrow = attach_error(m, kA, 0xfffff);
  EXPECT_EQ(narrow.code, Errc::unreachable) << narrow.message;
  EXPECT_FALSE(contains(narrow.message, "type1")) << narrow.message;
  EXPECT_EQ(m.backend(), IommuBackend::iommufd);
  EXPECT_EQ(count("open /fake/dev/vfio/vfio"), 0u);
}

TEST_F(VfioIommufd, ForcedType1NeverOpensDevIommu) {
  with_iommufd();
  Container& c = make(IommuBackend::type1);
  ASSERT_TRUE(c.attach(kA, k64));
  EXPECT_EQ(c.backend(), IommuBackend::type1);
  EXPECT_FALSE(called("open /fake/dev/iommu"));
}

TEST_F(VfioIommufd, ForcedIommufdErrorsSayWhatToDo) {
  with_iommufd();
  int held = -1;  // a group node the test holds open itself
  struct Case {
    const char* what;
    std::function<void()> setup;
    std::string bdf;
    Errc code;
    std::vector<std::string> words;
  };
  const std::vector<Case> cases = {
      {"no /dev/iommu", [&] { fake_->iommufd = false; }, kA, Errc::unsupported,
       {"no /fake/dev/iommu", "CONFIG_IOMMUFD", "--iommu type1"}},
      {"/dev/iommu not ours", [&] { fake_->iommufd_open_errno = EACCES; }, kA, Errc::permission,
       {"permission denied on /fake/dev/iommu", "run as root"}},
      {"bound to another driver", [] {}, kNvme, Errc::unsupported, {"bound to nvme", "numacma vfio bind"}},
      {"cdev not ours", [&] { fake_->cdev_open_errno = EACCES; }, kA, Errc::permission,
       {"permission denied on /fake/dev/vfio/devices/vfio", "chown"}},
      {"group not viable", [] {}, kNv0, Errc::unsupported, {"not viable", "0000:09:00.1", "numacma vfio bind"}},
      {"group node open", [&] { held = *fake_->open("/fake/dev/vfio/10"); }, kA, Errc::io_error,
       {"busy", "another process or container"}},
      {"mask below every range", [] {}, kA, Errc::unreachable, {"DMA mask", "below every usable IOVA range"}},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.what);
    reset_fake();
    k.setup();
    Container& c = make(IommuBackend::iommufd);
    const numacma::Error e = attach_error(c, k.bdf, std::string(k.what) == "mask below every range" ? 0xfffff : k64);
    EXPECT_EQ(e.code, k.code) << e.message;
    for (const std::string& w : k.words) EXPECT_TRUE(contains(e.message, w)) << "'" << w << "' not in: " << e.message;
    EXPECT_EQ(fake_->open_fds(FakeKernel::Kind::device), 0u) << "a device that did not attach is closed";
    c_.reset();
    if (held >= 0) fake_->close(std::exchange(held, -1));
    EXPECT_TRUE(fake_->clean()) << fake_->describe();
  }
  // The cdev missing from sysfs while /dev/iommu is there.
  reset_fake();
  tree_ = std::make_unique<SysfsTree>();
  tree_->add_device(kB, 11);
  Container& c = make(IommuBackend::iommufd);
  const numacma::Error e = attach_error(c, kB);
  EXPECT_EQ(e.code, Errc::unsupported);
  EXPECT_TRUE(contains(e.message, "CONFIG_VFIO_DEVICE_CDEV") && contains(e.message, "--iommu type1")) << e.message;
}

}  // namespace
