// What a pool's DMA addresses are (AddressKind) and whether a device could
// use them (Pool/DmaBuffer/Stats/AreaReport device_usable,
// PoolOptions::require_device_usable, the C API): sim, anon and hugetlb here;
// the vfio-mode answer is in vfio_address_kind_test.cpp (it needs the fake
// VFIO kernel).
#include <gtest/gtest.h>

#include <string>

#include "hugepages_guard.hpp"
#include "numacma/numacma.h"
#include "fixture_pool_options.hpp"
#include "numacma/numacma.hpp"

using numacma::AddressKind;
using numacma::Device;
using numacma::Errc;
using numacma::Pool;
using numacma::PoolOptions;

using fixture_pool::contains;
using fixture_pool::kArm;
using fixture_pool::options;

TEST(AddressKind, AFixturePoolIsSimulatedAndNoDeviceCanUseIt) {
  auto p = Pool::create(options("auto", kArm));  // a fixture: sim
  ASSERT_TRUE(p) << p.error().message;
  const numacma::Stats st = p->stats();
  ASSERT_EQ(st.areas.size(), 5u);
  for (const auto& a : st.areas) EXPECT_FALSE(a.device_usable) << a.name;
  EXPECT_EQ(p->address_kind(), AddressKind::simulated);
  EXPECT_FALSE(p->device_usable());
  EXPECT_EQ(st.address_kind, AddressKind::simulated);
  EXPECT_FALSE(st.device_usable);
  auto b = p->alloc_coherent(Device::on_node(2, "nic"), 65536);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_FALSE(b->device_usable());
}

TEST(AddressKind, NamesAreStable) {
  EXPECT_STREQ(numacma::address_kind_name(AddressKind::physical), "physical");
  EXPECT_STREQ(numacma::address_kind_name(AddressKind::iova_vfio), "iova_vfio");
  EXPECT_STREQ(numacma::address_kind_name(AddressKind::virtual_only), "virtual_only");
  EXPECT_STREQ(numacma::address_kind_name(AddressKind::simulated), "simulated");
  EXPECT_TRUE(numacma::device_usable(AddressKind::physical));
  EXPECT_TRUE(numacma::device_usable(AddressKind::iova_vfio));
  EXPECT_FALSE(numacma::device_usable(AddressKind::virtual_only));
  EXPECT_FALSE(numacma::device_usable(AddressKind::simulated));
}

TEST(AddressKind, RequireDeviceUsableRefusesASimPool) {
  PoolOptions o = options("sim", kArm);
  o.require_device_usable = true;
  auto p = Pool::create(o);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(p.error().message, "simulated")) << p.error().message;
  EXPECT_TRUE(contains(p.error().message, "is a fixture")) << p.error().message;
  o.require_device_usable = false;
  EXPECT_TRUE(Pool::create(o));
}

TEST(AddressKind, EmptyHandlesAndPoolsAreNotDeviceUsable) {
  numacma::DmaBuffer none;
  EXPECT_FALSE(none.device_usable());
  auto p = Pool::create(options("sim", kArm));
  ASSERT_TRUE(p);
  auto b = p->alloc_coherent(Device::on_node(0), 4096);
  ASSERT_TRUE(b);
  b->detach();  // the handle is empty now; the buffer is the caller's
  EXPECT_FALSE(b->device_usable());
  Pool moved = std::move(*p);
  EXPECT_EQ(p->address_kind(), AddressKind::simulated);  // NOLINT: a moved-from pool answers
  EXPECT_FALSE(p->device_usable());
  EXPECT_EQ(p->sysfs_root(), "");
}

// anon on this machine: IOVA = VA, not usable by a device without VFIO.
TEST(AddressKind, AnAnonPoolIsVirtualOnlyAndRequireRefusesItNamingTheAreas) {
  PoolOptions o;
  o.params = "cma=4M";
  o.backing = "anon";
  auto p = Pool::create(o);
  if (!p && (p.error().code == Errc::permission || p.error().code == Errc::unsupported ||
             p.error().code == Errc::no_memory))
    GTEST_SKIP() << "anon pool on this host: " << p.error().message;
  ASSERT_TRUE(p) << p.error().message;
  if (p->stats().areas.empty()) GTEST_SKIP() << "no area reserved here";
  EXPECT_EQ(p->dma_mode(), "iova");
  EXPECT_EQ(p->address_kind(), AddressKind::virtual_only);
  EXPECT_FALSE(p->device_usable());
  EXPECT_FALSE(p->stats().areas[0].device_usable);
  auto b = p->alloc_coherent(Device::on_node(0), 65536);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_TRUE(b->iova());
  EXPECT_FALSE(b->device_usable());
  o.require_device_usable = true;
  auto r = Pool::create(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::unsupported);
  EXPECT_TRUE(contains(r.error().message, "reserved (anon)")) << r.error().message;
  EXPECT_TRUE(contains(r.error().message, "numacma doctor")) << r.error().message;
}

// hugetlb as root: real physical addresses, usable by a device (IOMMU off or
// in passthrough), and require_device_usable lets the pool be.
TEST(AddressKind, AHugetlbPoolWithReadablePagemapIsPhysical) {
  numacma::testing::HugepagesGuard guard(4);
  if (!guard.ok()) GTEST_SKIP() << guard.why();
  PoolOptions o;
  o.params = "cma=4M";
  o.backing = "hugetlb";
  o.require_device_usable = true;
  auto p = Pool::create(o);
  if (!p && p.error().code == Errc::unsupported && contains(p.error().message, "virtual addresses"))
    GTEST_SKIP() << "pagemap hides physical addresses here: " << p.error().message;
  ASSERT_TRUE(p) << p.error().message;
  if (p->stats().areas.empty()) GTEST_SKIP() << "the hugepages were taken meanwhile";
  EXPECT_EQ(p->address_kind(), AddressKind::physical);
  EXPECT_TRUE(p->device_usable());
  EXPECT_TRUE(p->stats().areas[0].device_usable);
  auto b = p->alloc_coherent(Device::on_node(0), 65536);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_FALSE(b->iova());
  EXPECT_TRUE(b->device_usable());
}

TEST(AddressKind, CApiTellsTheKindAndRequiresDeviceUsable) {
  ncma_pool_options o = {"auto", "kernel", kArm.c_str(), nullptr, 0, 0};
  ncma_pool* p = ncma_pool_create("cma=4M", &o);
  ASSERT_NE(p, nullptr) << ncma_last_error_message();
  EXPECT_EQ(ncma_pool_address_kind(p), NCMA_ADDR_SIMULATED);
  EXPECT_STREQ(ncma_address_kind_name(ncma_pool_address_kind(p)), "simulated");
  ncma_pool_destroy(p);
  EXPECT_EQ(ncma_pool_address_kind(nullptr), NCMA_EINVAL);
  EXPECT_EQ(ncma_last_error(), NCMA_EINVAL);
  EXPECT_STREQ(ncma_address_kind_name(NCMA_ADDR_PHYSICAL), "physical");
  EXPECT_STREQ(ncma_address_kind_name(NCMA_ADDR_IOVA_VFIO), "iova_vfio");
  EXPECT_STREQ(ncma_address_kind_name(NCMA_ADDR_VIRTUAL_ONLY), "virtual_only");
  EXPECT_STREQ(ncma_address_kind_name(7), "unknown");
  EXPECT_STREQ(ncma_address_kind_name(-1), "unknown");
  o.require_device_usable = 1;
  EXPECT_EQ(ncma_pool_create("cma=4M", &o), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_EINVAL);
  EXPECT_TRUE(contains(ncma_last_error_message(), "simulated")) << ncma_last_error_message();
  ncma_pool_options anon = {"anon", "kernel", kArm.c_str(), nullptr, 0, 0};
  EXPECT_EQ(ncma_pool_create("cma=4M", &anon), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_EINVAL);
  EXPECT_TRUE(contains(ncma_last_error_message(), "fixture")) << ncma_last_error_message();
}
