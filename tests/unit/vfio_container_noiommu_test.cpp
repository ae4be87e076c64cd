// tests/unit/vfio_container_noiommu_test.cpp — Container in VFIO's no-IOMMU
// mode (container_noiommu.cpp) against the fake kernel: only when asked for,
// only for no-IOMMU groups, the calls in order (/dev/vfio/noiommu-N, SET_IOMMU
// of type VFIO_NOIOMMU_IOMMU), nothing ever mapped, and every refusal saying
// what to do with nothing left open.
#include <initializer_list>
#include <string>

#include "vfio_container_fixture.hpp"

using numacma::vfio::IommuBackend;

namespace {

const std::string kNoIommu0 = "0000:0b:00.0", kNoIommu1 = "0000:0c:00.0";

class VfioNoIommu : public VfioContainer {
 protected:
  void SetUp() override {
    VfioContainer::SetUp();
    // What vfio-pci makes in no-IOMMU mode: a group named vfio-noiommu per device.
    tree_->add_device(kNoIommu0, 20);
    tree_->set_noiommu_group(20);
    tree_->add_device(kNoIommu1, 21);
    tree_->set_noiommu_group(21);
    tree_->set_noiommu_mode(true);
    fake_->add_noiommu_group(20, {kNoIommu0});
    fake_->add_noiommu_group(21, {kNoIommu1});
    fake_->noiommu_mode = true;
  }
  std::vector<std::string> calls() const { return fake_->calls(); }
  bool called(const std::string& prefix) const { return fakevfio::find_call(calls(), prefix) >= 0; }
  /** Nothing of the failed attach is left open or set. */
  void expect_nothing_open() const { EXPECT_EQ(fake_->open_fds(), 0u) << fake_->describe(); }
  /** Attaching the first no-IOMMU device in no-IOMMU mode fails with `code`, the message
   *  holding each of `words`; once the container is gone nothing is left open. */
  void expect_first_attach_refused(Errc code, std::initializer_list<std::string> words) {
    Container& c = make(IommuBackend::noiommu);
    const numacma::Error e = attach_error(c, kNoIommu0);
    EXPECT_EQ(e.code, code) << e.message;
    for (const std::string& w : words) EXPECT_TRUE(contains(e.message, w)) << w << ": " << e.message;
    c_.reset();
    expect_nothing_open();
  }
};

TEST_F(VfioNoIommu, AttachesThroughTheNoIommuGroupAndMapsNothing) {
  Container& c = make(IommuBackend::noiommu);
  ASSERT_TRUE(c.attach(kNoIommu0, mask_of(32)));
  EXPECT_EQ(c.backend(), IommuBackend::noiommu);
  const auto log = calls();
  const long open_container = fakevfio::find_call(log, "open /fake/dev/vfio/vfio");
  const long open_group = fakevfio::find_call(log, "open /fake/dev/vfio/noiommu-20");
  const long set_container = fakevfio::find_call(log, "set_container");
  const long set_iommu = fakevfio::find_call(log, "set_iommu_noiommu");
  ASSERT_GE(open_container, 0);
  EXPECT_LT(open_container, open_group);
  EXPECT_LT(open_group, set_container);
  EXPECT_LT(set_container, set_iommu);
  EXPECT_FALSE(called("set_iommu ")) << "never type1's SET_IOMMU";
  EXPECT_FALSE(called("open /fake/dev/iommu")) << "never iommufd";
  EXPECT_EQ(c.min_mask(), mask_of(32));
  EXPECT_EQ(c.device(0).group, 20);

  // No IOMMU: a mapping is refused, and nothing reaches the kernel.
  const std::uintptr_t va = mem(2 * MiB);
  auto iova = c.map(va, 2 * MiB, 2 * MiB, k64, "area");
  ASSERT_FALSE(iova);
  EXPECT_EQ(iova.error().code, Errc::unsupported);
  EXPECT_TRUE(contains(iova.error().message, "no-IOMMU mode maps nothing")) << iova.error().message;
  EXPECT_TRUE(fake_->mappings().empty());
  EXPECT_FALSE(called("map "));

  const auto rep = c.report();
  EXPECT_EQ(rep.backend, "noiommu");
  EXPECT_TRUE(rep.ranges.empty());
  EXPECT_EQ(rep.dma_avail, -1);
  ASSERT_EQ(rep.devices.size(), 1u);
  EXPECT_TRUE(rep.mappings.empty());
  // The device fd reaches the registers as in any other mode.
  auto size = c.bar_size(0, 0);
  ASSERT_TRUE(size) << size.error().message;
  EXPECT_EQ(*size, fakevfio::kBar0Bytes);
}

TEST_F(VfioNoIommu, TwoDevicesShareTheContainerAndLeaveNothingBehind) {
  Container& c = make(IommuBackend::noiommu);
  ASSERT_TRUE(c.attach(kNoIommu0, k64));
  ASSERT_TRUE(c.attach(kNoIommu1, mask_of(40)));
  EXPECT_EQ(c.device_count(), 2u);
  EXPECT_EQ(c.min_mask(), mask_of(40));
  EXPECT_EQ(fakevfio::find_call(calls(), "set_iommu_noiommu"), fakevfio::find_call(calls(), "set_iommu"))
      << "SET_IOMMU once";
  c_.reset();
  EXPECT_TRUE(fake_->clean()) << fake_->describe();
}

TEST_F(VfioNoIommu, NeverChosenUnlessAskedFor) {
  for (IommuBackend b : {IommuBackend::automatic, IommuBackend::type1, IommuBackend::iommufd}) {
    fake_->iommufd = true;
    Container& c = make(b);
    const numacma::Error e = attach_error(c, kNoIommu0);
    EXPECT_EQ(e.code, Errc::unsupported) << backend_name(b);
    EXPECT_TRUE(contains(e.message, "no-IOMMU group 20")) << e.message;
    EXPECT_TRUE(contains(e.message, "--iommu noiommu")) << e.message;
    EXPECT_TRUE(contains(e.message, "phys mode")) << e.message;
    EXPECT_FALSE(called("open /fake/dev/vfio/noiommu-20")) << backend_name(b);
    c_.reset();
    expect_nothing_open();
  }
}

TEST_F(VfioNoIommu, RefusedForADeviceBehindAnIommu) {
  Container& c = make(IommuBackend::noiommu);
  const numacma::Error e = attach_error(c, kA);
  EXPECT_EQ(e.code, Errc::unsupported);
  EXPECT_TRUE(contains(e.message, kA + " is behind an IOMMU (group 10)")) << e.message;
  EXPECT_TRUE(contains(e.message, "leave out --iommu noiommu")) << e.message;
  expect_nothing_open();
  // And a container of no-IOMMU groups never takes one: the same refusal after a good attach.
  ASSERT_TRUE(c.attach(kNoIommu0, k64));
  EXPECT_EQ(attach_error(c, kB).code, Errc::unsupported);
  EXPECT_EQ(c.device_count(), 1u);
}

TEST_F(VfioNoIommu, ADeviceWithoutAGroupSaysHowToTurnTheModeOn) {
  Container& c = make(IommuBackend::noiommu);
  const numacma::Error e = attach_error(c, kNoGroup);
  EXPECT_EQ(e.code, Errc::unsupported);
  EXPECT_TRUE(contains(e.message, "no VFIO no-IOMMU group")) << e.message;
  EXPECT_TRUE(contains(e.message, "enable_unsafe_noiommu_mode")) << e.message;
  EXPECT_TRUE(contains(e.message, "numacma vfio bind " + kNoGroup)) << e.message;
  // Without --iommu noiommu the message offers the mode as the last resort.
  Container& d = make(IommuBackend::automatic);
  const numacma::Error f = attach_error(d, kNoGroup);
  EXPECT_TRUE(contains(f.message, "no IOMMU")) << f.message;
  EXPECT_TRUE(contains(f.message, "--iommu noiommu")) << f.message;
  expect_nothing_open();
}

TEST_F(VfioNoIommu, TheModeOffInTheKernelIsNamed) {
  fake_->noiommu_mode = false;
  expect_first_attach_refused(Errc::unsupported, {"offers no no-IOMMU container", "enable_unsafe_noiommu_mode"});
}

TEST_F(VfioNoIommu, WithoutRawioTheGroupSaysRunAsRoot) {
  fake_->rawio = false;
  expect_first_attach_refused(Errc::permission, {"/fake/dev/vfio/noiommu-20", "CAP_SYS_RAWIO"});
}

TEST_F(VfioNoIommu, AFailedSetIommuLeavesTheGroupOutAndTheNextAttachWorks) {
  fake_->set_iommu_errno = EPERM;
  fake_->set_iommu_failures = 1;
  Container& c = make(IommuBackend::noiommu);
  const numacma::Error e = attach_error(c, kNoIommu0);
  EXPECT_EQ(e.code, Errc::permission);
  EXPECT_TRUE(contains(e.message, "CAP_SYS_RAWIO")) << e.message;
  EXPECT_TRUE(called("unset_container")) << "the group left the container again";
  EXPECT_EQ(c.device_count(), 0u);
  ASSERT_TRUE(c.attach(kNoIommu0, k64));
  c_.reset();
  EXPECT_TRUE(fake_->clean()) << fake_->describe();
}

// The topology tells a no-IOMMU group by its name and reads vfio's parameter.
TEST_F(VfioNoIommu, TheTopologyMarksNoIommuGroupsAndTheMode) {
  auto t = numacma::topo::Topology::from_sysfs(tree_->root());
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->vfio_noiommu_mode(), numacma::topo::Topology::NoIommuMode::on);
  ASSERT_NE(t->pci(kNoIommu0), nullptr);
  EXPECT_TRUE(t->pci(kNoIommu0)->noiommu_group);
  EXPECT_EQ(t->pci(kNoIommu0)->iommu_group, 20);
  EXPECT_FALSE(t->pci(kA)->noiommu_group);
  tree_->set_noiommu_mode(false);
  t = numacma::topo::Topology::from_sysfs(tree_->root());
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->vfio_noiommu_mode(), numacma::topo::Topology::NoIommuMode::off);
  auto plain = numacma::topo::Topology::from_sysfs(NUMACMA_TEST_DATA "/vm1");
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(plain->vfio_noiommu_mode(), numacma::topo::Topology::NoIommuMode::absent);
}

}  // namespace
