// numacma::vfio::Container (vfio_container_fixture.hpp): each attach error,
// in the order attach checks them, with its code and the words that tell the
// user what to do.
#include <gtest/gtest.h>

#include <string>

#include "vfio_container_fixture.hpp"

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
