// A pool in vfio mode (the fake VFIO kernel of vfio_fake_kernel.hpp over a
// temporary copy of tests/data/vm1, anon backing as vfio_pool_fixture.hpp uses
// it): its DMA addresses are IOVAs of its container, so a device can use
// them (AddressKind::iova_vfio, DmaBuffer/Stats device_usable,
// require_device_usable passes, the C API says NCMA_ADDR_IOVA_VFIO).
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "numacma/numacma.h"
#include "numacma/numacma.hpp"
#include "pool/pool_impl.hpp"
#include "vfio_fake_kernel.hpp"

using numacma::AddressKind;
using numacma::Device;
using numacma::Errc;
using numacma::Pool;
using numacma::PoolOptions;

namespace {

const std::string kDev = "0000:05:00.0";
const std::string kRoot = "/fake/dev/vfio";

class VfioAddressKind : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = std::make_unique<fakevfio::SysfsTree>();
    tree_->add_device(kDev, 10);
    fake_ = std::make_shared<fakevfio::FakeKernel>(kRoot);
    fake_->add_group(10, {kDev});
    numacma::detail::set_vfio_kernel_for_testing(fake_);
  }
  void TearDown() override {
    numacma::detail::set_vfio_kernel_for_testing(nullptr);
    EXPECT_TRUE(fake_->clean()) << fake_->describe();
  }
  PoolOptions options() const {
    PoolOptions o;
    o.params = "cma=4M cma_pernuma=2M";
    o.backing = "anon";
    o.sysfs_root = tree_->root();
    o.vfio = {{kDev, ~std::uint64_t{0}}};
    o.vfio_dev_root = kRoot;
    return o;
  }
  std::unique_ptr<fakevfio::SysfsTree> tree_;
  std::shared_ptr<fakevfio::FakeKernel> fake_;
};

}  // namespace

TEST_F(VfioAddressKind, VfioModeIsDeviceUsableEvenOverAnonPages) {
  PoolOptions o = options();
  o.require_device_usable = true;
  auto p = Pool::create(o);
  if (!p && (p.error().code == Errc::permission || p.error().code == Errc::no_memory))
    GTEST_SKIP() << "anon memory on this host: " << p.error().message;
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->dma_mode(), "vfio");
  EXPECT_EQ(p->address_kind(), AddressKind::iova_vfio);
  EXPECT_TRUE(p->device_usable());
  const numacma::Stats st = p->stats();
  EXPECT_EQ(st.address_kind, AddressKind::iova_vfio);
  EXPECT_TRUE(st.device_usable);
  ASSERT_FALSE(st.areas.empty());
  for (const auto& a : st.areas) EXPECT_TRUE(a.device_usable) << a.name;
  auto area_buf = p->alloc_coherent(Device::on_node(0), 65536);
  ASSERT_TRUE(area_buf) << area_buf.error().message;
  EXPECT_TRUE(area_buf->device_usable());
  auto pages_buf = p->alloc_coherent(Device::on_node(0), 8 << 20);  // larger than any area: pages
  ASSERT_TRUE(pages_buf) << pages_buf.error().message;
  EXPECT_EQ(pages_buf->area_name(), "pages");
  EXPECT_TRUE(pages_buf->device_usable());
}

TEST_F(VfioAddressKind, TheCApiSaysIovaVfio) {
  const std::string root = tree_->root();
  ncma_vfio_device_spec dev = {kDev.c_str(), 0};
  ncma_pool_options o = {"anon", "kernel", root.c_str(), &dev, 1, 1};
  // The C options have no vfio_dev_root: the fake kernel answers for /dev/vfio too.
  fake_ = std::make_shared<fakevfio::FakeKernel>("/dev/vfio");
  fake_->add_group(10, {kDev});
  numacma::detail::set_vfio_kernel_for_testing(fake_);
  ncma_pool* p = ncma_pool_create("cma=4M", &o);
  if (p == nullptr && (ncma_last_error() == NCMA_EPERM || ncma_last_error() == NCMA_ENOMEM))
    GTEST_SKIP() << "anon memory on this host: " << ncma_last_error_message();
  ASSERT_NE(p, nullptr) << ncma_last_error_message();
  EXPECT_EQ(ncma_pool_address_kind(p), NCMA_ADDR_IOVA_VFIO);
  ncma_pool_destroy(p);
}
