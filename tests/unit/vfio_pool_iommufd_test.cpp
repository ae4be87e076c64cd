// tests/unit/vfio_pool_iommufd_test.cpp — a pool in vfio mode over iommufd
// (PoolOptions::iommu, the C option iommu): areas mapped once into the IOAS,
// page-fallback buffers mapped when allocated and unmapped when freed, a
// later device reaching the areas, the report naming the interface; and
// type1 still chosen where iommufd is missing.
#include "vfio_pool_fixture.hpp"

namespace {

class VfioPoolIommufd : public VfioPool {
 protected:
  void SetUp() override {
    VfioPool::SetUp();
    fake_->iommufd = fake_->cdevs = true;
    for (const std::string& b : {kDev0, kDev1, kLate}) tree_->add_cdev(b, fake_->cdev(b));
  }
  PoolOptions iommufd_options(std::vector<VfioDeviceSpec> vfio, numacma::Iommu iommu) const {
    PoolOptions o = options(kParams, std::move(vfio));
    o.iommu = iommu;
    return o;
  }
};

TEST_F(VfioPoolIommufd, AreasAndPageBuffersGoThroughTheIoas) {
  auto pool = Pool::create(iommufd_options({{kDev0, k64}}, numacma::Iommu::iommufd));
  ASSERT_TRUE(pool) << pool.error().message;
  EXPECT_EQ(pool->vfio_report().iommu, "iommufd");
  EXPECT_EQ(pool->dma_mode(), "vfio");
  const std::size_t areas = fake_->mappings().size();
  EXPECT_EQ(areas, pool->stats().areas.size()) << "each area mapped once";
  for (const numacma::AreaReport& a : pool->stats().areas) EXPECT_TRUE(a.device_usable) << a.name;
  const auto log = fake_->calls();
  EXPECT_GE(fakevfio::find_call(log, "ioas_map"), 0);
  EXPECT_EQ(fakevfio::find_call(log, "open /fake/dev/vfio/vfio"), -1);

  auto dev = Device::from_vfio(kDev0, *pool);
  ASSERT_TRUE(dev) << dev.error().message;
  auto area_buf = pool->alloc_coherent(*dev, 64 * KiB);
  ASSERT_TRUE(area_buf) << area_buf.error().message;
  expect_mapped(*area_buf);
  auto page = pool->alloc_coherent(*dev, 4096);  // A3: a page buffer, mapped now
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_TRUE(fake_->has_mapping(page->dma_addr(), 4096)) << fake_->describe();
  const std::uint64_t page_dma = page->dma_addr();
  ASSERT_TRUE(page->release());
  EXPECT_FALSE(fake_->has_mapping(page_dma, 4096)) << "unmapped when freed";
  EXPECT_EQ(fake_->mappings().size(), areas);

  // A device attached later reaches the areas already in the IOAS.
  ASSERT_TRUE(pool->vfio_attach({kLate, mask_of(32)}));
  auto late = Device::from_vfio(kLate, *pool);
  ASSERT_TRUE(late);
  auto late_buf = pool->alloc_coherent(*late, 64 * KiB);
  ASSERT_TRUE(late_buf) << late_buf.error().message;
  expect_mapped(*late_buf);
  EXPECT_LE(late_buf->dma_addr() + 64 * KiB - 1, mask_of(32));
  ASSERT_TRUE(area_buf->release());
  ASSERT_TRUE(late_buf->release());
  expect_f3(*pool);
}

TEST_F(VfioPoolIommufd, TenThousandPageCyclesLeaveTheIoasAsItStarted) {
  auto pool = Pool::create(iommufd_options({{kDev0, k64}}, numacma::Iommu::automatic));
  ASSERT_TRUE(pool) << pool.error().message;
  EXPECT_EQ(pool->vfio_report().iommu, "iommufd") << "automatic picks iommufd here";
  auto dev = Device::from_vfio(kDev0, *pool);
  ASSERT_TRUE(dev);
  const auto before = fake_->mappings();
  for (int i = 0; i < 10000; ++i) {
    auto b = pool->alloc_coherent(*dev, 4096);
    ASSERT_TRUE(b) << i << ": " << b.error().message;
    ASSERT_TRUE(b->release()) << i;
  }
  const auto after = fake_->mappings();
  ASSERT_EQ(after.size(), before.size());
  for (std::size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].iova, before[i].iova);
    EXPECT_EQ(after[i].bytes, before[i].bytes);
  }
}

TEST_F(VfioPoolIommufd, Type1WhereIommufdIsMissingAndForcedIommufdSaysWhy) {
  fake_->iommufd = false;
  auto pool = Pool::create(iommufd_options({{kDev0, k64}}, numacma::Iommu::automatic));
  ASSERT_TRUE(pool) << pool.error().message;
  EXPECT_EQ(pool->vfio_report().iommu, "type1");
  pool = Pool::create(iommufd_options({{kDev0, k64}}, numacma::Iommu::iommufd));
  ASSERT_FALSE(pool);
  EXPECT_EQ(pool.error().code, Errc::unsupported);
  EXPECT_TRUE(contains(pool.error().message, "CONFIG_IOMMUFD")) << pool.error().message;
}

TEST_F(VfioPoolIommufd, TheCOptionPicksTheInterfaceAndRefusesOthers) {
  const std::string root = tree_->root();
  ncma_vfio_device_spec dev{kDev0.c_str(), 0};
  ncma_pool_options o{"anon", nullptr, root.c_str(), &dev, 1, 0, nullptr, 0, "type1"};
  // The C API has no vfio_dev_root: the fake answers for /dev/vfio too.
  install_fake("/dev/vfio");
  fake_->iommufd = fake_->cdevs = true;
  ncma_pool* p = ncma_pool_create(kParams.c_str(), &o);
  ASSERT_NE(p, nullptr) << ncma_last_error_message();
  ncma_pool_destroy(p);
  EXPECT_EQ(fakevfio::find_call(fake_->calls(), "open /dev/iommu"), -1) << "type1 forced";
  o.iommu = "iommufd";
  p = ncma_pool_create(kParams.c_str(), &o);
  ASSERT_NE(p, nullptr) << ncma_last_error_message();
  ncma_pool_destroy(p);
  EXPECT_GE(fakevfio::find_call(fake_->calls(), "open /dev/iommu"), 0);
  o.iommu = "vfio";
  EXPECT_EQ(ncma_pool_create(kParams.c_str(), &o), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_EINVAL);
  EXPECT_TRUE(contains(ncma_last_error_message(), "iommufd")) << ncma_last_error_message();
}

}  // namespace
