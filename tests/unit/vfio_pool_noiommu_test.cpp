// tests/unit/vfio_pool_noiommu_test.cpp — the Pool in VFIO's no-IOMMU mode
// (Iommu::noiommu) against the fake kernel: phys mode with physical
// addresses (hugetlb as root), nothing mapped, "noiommu" and unsafe in every
// report; refused for areas without physical addresses, for dma_mode iova,
// for the sim backing, and never chosen automatically.
#include "hugepages_guard.hpp"
#include "vfio_pool_fixture.hpp"

using numacma::AddressKind;
using numacma::Iommu;

namespace {

const std::string kNoIommu = "0000:0b:00.0";

class VfioPoolNoIommu : public VfioPool {
 protected:
  void SetUp() override {
    VfioPool::SetUp();
    tree_->add_device(kNoIommu, 20);
    tree_->set_noiommu_group(20);
    tree_->set_noiommu_mode(true);
    fake_->add_noiommu_group(20, {kNoIommu});
    fake_->noiommu_mode = true;
  }
  PoolOptions noiommu_options(const std::string& backing) const {
    PoolOptions o = options(kParams, {{kNoIommu, k64}});
    o.iommu = Iommu::noiommu;
    o.backing = backing;
    return o;
  }
  /** Pool::create(o) fails with `code`, its message holding `word`. */
  static void expect_refused(const PoolOptions& o, Errc code, const std::string& word) {
    auto p = Pool::create(o);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code, code) << p.error().message;
    EXPECT_TRUE(contains(p.error().message, word)) << word << ": " << p.error().message;
  }
};

TEST_F(VfioPoolNoIommu, HugetlbAsRootGivesPhysicalAddressesAndMapsNothing) {
  numacma::testing::HugepagesGuard guard(4);
  if (!guard.ok()) GTEST_SKIP() << guard.why();
  tree_->set_hugepages_2m(4, 4);  // the tree stands for this host, where the guard made them free
  auto p = Pool::create(noiommu_options("hugetlb"));
  if (!p && p.error().code == Errc::unsupported && contains(p.error().message, "pagemap"))
    GTEST_SKIP() << "pagemap hides physical addresses here: " << p.error().message;
  ASSERT_TRUE(p) << p.error().message;
  if (p->stats().areas.empty()) {
    std::string why;
    for (const auto& n : p->reservation_notes()) why += " " + n.area + ": " + n.message + ";";
    GTEST_SKIP() << "no area reserved:" << why;
  }
  EXPECT_EQ(p->dma_mode(), "noiommu");
  EXPECT_EQ(p->address_kind(), AddressKind::physical);
  EXPECT_TRUE(p->device_usable());
  const numacma::VfioReport rep = p->vfio_report();
  EXPECT_TRUE(rep.enabled);
  EXPECT_EQ(rep.iommu, "noiommu");
  EXPECT_TRUE(rep.unsafe);
  EXPECT_TRUE(rep.mappings.empty());
  ASSERT_EQ(rep.devices.size(), 1u);

  auto dev = Device::from_vfio(kNoIommu, *p);
  ASSERT_TRUE(dev) << dev.error().message;
  auto area_buf = p->alloc_coherent(*dev, 64 * KiB);
  ASSERT_TRUE(area_buf) << area_buf.error().message;
  EXPECT_FALSE(area_buf->iova()) << "a physical address";
  EXPECT_TRUE(area_buf->device_usable());
  EXPECT_NE(area_buf->dma_addr(), reinterpret_cast<std::uintptr_t>(area_buf->cpu()));
  // A device can reach the registers through the no-IOMMU group's device fd.
  auto vd = p->vfio_device(kNoIommu);
  ASSERT_TRUE(vd) << vd.error().message;
  auto size = vd->bar_size(0);
  ASSERT_TRUE(size) << size.error().message;
  EXPECT_TRUE(fake_->mappings().empty()) << fake_->describe();
  EXPECT_EQ(fakevfio::find_call(fake_->calls(), "map "), -1) << "never MAP_DMA";
}

TEST_F(VfioPoolNoIommu, AnonAreasHaveNoPhysicalAddressAndAreRefused) {
  expect_refused(noiommu_options("anon"), Errc::unsupported, "no-IOMMU mode hands the devices physical addresses");
  expect_refused(noiommu_options("anon"), Errc::unsupported, "--backing hugetlb as root");
  EXPECT_TRUE(fake_->clean()) << fake_->describe();  // the container is gone too
}

TEST_F(VfioPoolNoIommu, IovaModeAndTheSimBackingAreRefusedBeforeAnythingOpens) {
  PoolOptions o = noiommu_options("anon");
  o.dma_mode = DmaMode::iova;
  expect_refused(o, Errc::invalid_argument, "every DMA address is physical");
  expect_refused(noiommu_options("sim"), Errc::invalid_argument, "physical ones (--backing hugetlb");
  EXPECT_TRUE(fake_->calls().empty()) << fake_->describe();
}

TEST_F(VfioPoolNoIommu, TheAutomaticChoiceNeverTakesANoIommuDevice) {
  PoolOptions o = noiommu_options("anon");
  o.iommu = Iommu::automatic;
  expect_refused(o, Errc::unsupported, "--iommu noiommu");
  EXPECT_EQ(fakevfio::find_call(fake_->calls(), "open /fake/dev/vfio/noiommu-20"), -1);
}

TEST_F(VfioPoolNoIommu, TheCOptionAsksForTheMode) {
  const std::string root = tree_->root();
  ncma_vfio_device_spec dev{kNoIommu.c_str(), 0};
  ncma_pool_options o{"anon", nullptr, root.c_str(), &dev, 1, 0, nullptr, 0, "noiommu"};
  install_fake("/dev/vfio");  // the C API has no vfio_dev_root
  fake_->add_noiommu_group(20, {kNoIommu});
  fake_->noiommu_mode = true;
  // anon: the no-IOMMU container was reached, then the areas refused.
  EXPECT_EQ(ncma_pool_create(kParams.c_str(), &o), nullptr);
  EXPECT_TRUE(contains(ncma_last_error_message(), "no-IOMMU mode hands the devices physical addresses"))
      << ncma_last_error_message();
  EXPECT_GE(fakevfio::find_call(fake_->calls(), "open /dev/vfio/noiommu-20"), 0);
  o.iommu = "unsafe";
  EXPECT_EQ(ncma_pool_create(kParams.c_str(), &o), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_EINVAL);
  EXPECT_TRUE(contains(ncma_last_error_message(), "noiommu")) << ncma_last_error_message();
}

}  // namespace
