// The Pool in vfio mode (vfio_pool_fixture.hpp): its devices: attached
// later, Device::from_vfio, short BDFs (C++ and C), the vfio report, the
// registers through the VfioDevice handle.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "vfio_pool_fixture.hpp"

// ---- devices ----------------------------------------------------------------------------------

TEST_F(VfioPool, ADeviceAttachedLaterReachesTheAreasAndGetsPagesBelowItsMask) {
  Pool pool = make(kParams, {{kDev0, k64}});
  const auto areas_before = fake_->mappings();
  ASSERT_EQ(areas_before.size(), 2u);
  // 2 MiB - 1: every area (2 MiB aligned, from 2 MiB up) is above this mask.
  ASSERT_TRUE(pool.vfio_attach({kLate, mask_of(21)})) << fake_->describe();
  EXPECT_NE(fake_->container_of_group(12), -1);
  EXPECT_EQ(fake_->container_of_group(12), fake_->container_of_group(10)) << "the same container";
  EXPECT_EQ(fake_->mappings().size(), 2u) << "nothing mapped again";
  EXPECT_EQ(fake_->map_calls(), 2u);

  auto late = Device::from_vfio(kLate, pool);
  ASSERT_TRUE(late) << late.error().message;
  EXPECT_EQ(late->coherent_dma_mask, mask_of(21));
  EXPECT_EQ(late->node, 0);
  auto b = pool.alloc_coherent(*late, 64 * KiB);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->served(), Served::pages) << "A8: every area is above the mask";
  EXPECT_LE(b->dma_addr() + 64 * KiB - 1, mask_of(21));
  EXPECT_TRUE(fake_->has_mapping(b->dma_addr(), 64 * KiB));
  expect_mapped(*b);
  auto p = pool.alloc_coherent(*late, 4096);
  ASSERT_TRUE(p);
  EXPECT_LE(p->dma_addr() + 4095, mask_of(21));

  // Its IOVA space (1 MiB .. 2 MiB) runs out: the next buffer is refused,
  // never mapped above the mask, and nothing is left mapped for it.
  std::vector<DmaBuffer> fill;
  numacma::Error last{};
  for (int i = 0; i < 64; ++i) {
    auto f = pool.alloc_coherent(*late, 64 * KiB);
    if (!f) {
      last = f.error();
      break;
    }
    EXPECT_LE(f->dma_addr() + 64 * KiB - 1, mask_of(21));
    fill.push_back(std::move(*f));
  }
  EXPECT_GE(fill.size(), 10u);
  EXPECT_LE(fill.size(), 15u) << "1 MiB holds 16 buffers of 64 KiB, two of which are taken";
  EXPECT_EQ(last.code, Errc::no_memory) << last.message;
  EXPECT_TRUE(contains(last.message, "IOVA space exhausted")) << last.message;
  EXPECT_EQ(page_mappings(pool), fill.size() + 2);
  for (const auto& m : fake_->mappings()) {
    const bool is_area = std::any_of(areas_before.begin(), areas_before.end(),
                                     [&](const FakeMapping& a) { return a.iova == m.iova; });
    if (!is_area) {
      EXPECT_LE(m.iova + m.bytes - 1, mask_of(21)) << fakevfio::hex(m.iova);
    }
  }
  fill.clear();

  // The first device still gets area buffers.
  auto d0 = Device::from_vfio(kDev0, pool);
  ASSERT_TRUE(d0);
  auto a = pool.alloc_coherent(*d0, 64 * KiB);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->area_name(), "pernuma0");

  EXPECT_EQ(pool.vfio_attach({kLate, k64}).error().code, Errc::invalid_argument) << "twice";
  auto unbound = pool.vfio_attach({kNvme, k64});
  ASSERT_FALSE(unbound);
  EXPECT_EQ(unbound.error().code, Errc::unsupported);
  EXPECT_TRUE(contains(unbound.error().message, "numacma vfio bind " + kNvme));
  EXPECT_FALSE(fake_->group_open(14));
  EXPECT_EQ(pool.vfio_report().devices.size(), 2u);
}

TEST_F(VfioPool, VfioAttachNeedsAPoolInVfioMode) {
  PoolOptions o;
  o.params = "cma=4M";
  o.backing = "sim";
  o.sysfs_root = tree_->root();
  auto p = Pool::create(o);
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_NE(p->dma_mode(), "vfio");
  EXPECT_EQ(p->vfio_attach({kDev0, k64}).error().code, Errc::invalid_argument);
  EXPECT_EQ(p->vfio_device(kDev0).error().code, Errc::not_found);
  EXPECT_EQ(Device::from_vfio(kDev0, *p).error().code, Errc::not_found);
  const auto rep = p->vfio_report();
  EXPECT_FALSE(rep.enabled);
  EXPECT_EQ(rep.dma_avail, -1);
  EXPECT_TRUE(rep.mappings.empty());
  EXPECT_TRUE(fake_->calls().empty());
}

TEST_F(VfioPool, DeviceFromVfioHasTheNodeAndTheDeclaredMask) {
  Pool pool = make("", {{kDev0, mask_of(48)}, {kNoNode, mask_of(32)}});
  auto d = Device::from_vfio(kDev0, pool);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->name, kDev0);
  EXPECT_EQ(d->node, 0);
  EXPECT_EQ(d->coherent_dma_mask, mask_of(48));
  EXPECT_TRUE(d->area.empty());
  auto n = Device::from_vfio(kNoNode, pool);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->node, numacma::kNoNode);
  EXPECT_EQ(n->coherent_dma_mask, mask_of(32));
  auto none = Device::from_vfio(kLate, pool);
  ASSERT_FALSE(none) << "present in sysfs but not attached";
  EXPECT_EQ(none.error().code, Errc::not_found);
  auto h = pool.vfio_device(kDev0);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->bdf(), kDev0);
  auto hd = h->device();
  ASSERT_TRUE(hd);
  EXPECT_EQ(hd->coherent_dma_mask, mask_of(48));
  EXPECT_EQ(pool.vfio_device(kLate).error().code, Errc::not_found);
  EXPECT_EQ(numacma::VfioDevice().read32(0, 0).error().code, Errc::invalid_argument) << "an empty handle";
}

TEST_F(VfioPool, ShortBdfsNameTheSameDevicesEverywhere) {
  // lspci's "05:00.0" is domain 0000: PoolOptions::vfio, vfio_attach,
  // from_vfio, from_pci, vfio_device and the C API all take it and name the
  // device in the long form sysfs uses.
  Pool pool = make("", {{"05:00.0", mask_of(48)}});
  EXPECT_EQ(pool.vfio_report().devices.at(0).bdf, kDev0);
  for (const std::string& b : {std::string("05:00.0"), kDev0}) {
    auto d = Device::from_vfio(b, pool);
    ASSERT_TRUE(d) << b << ": " << d.error().message;
    EXPECT_EQ(d->name, kDev0);
    EXPECT_EQ(d->coherent_dma_mask, mask_of(48));
    auto p = Device::from_pci(b, pool);
    ASSERT_TRUE(p) << b << ": " << p.error().message;
    EXPECT_EQ(p->name, kDev0);
    auto h = pool.vfio_device(b);
    ASSERT_TRUE(h) << b;
    EXPECT_EQ(h->bdf(), kDev0);
  }
  EXPECT_TRUE(pool.vfio_attach({"07:00.0", mask_of(40)}).ok());
  EXPECT_EQ(pool.vfio_attach({kLate, mask_of(40)}).error().code, Errc::invalid_argument) << "twice";
  EXPECT_EQ(Device::from_vfio("07:00.0", pool)->name, kLate);
  EXPECT_EQ(Device::from_vfio("5:00.0", pool).error().code, Errc::not_found);
  // Given twice in two spellings: refused as twice.
  auto twice = Pool::create(options("", {{kDev1, k64}, {"06:00.0", k64}}));
  ASSERT_FALSE(twice);
  EXPECT_TRUE(contains(twice.error().message, "0000:06:00.0 listed twice")) << twice.error().message;
  auto bad = Pool::create(options("", {{"6:00.0", k64}}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::invalid_argument);
  EXPECT_TRUE(contains(bad.error().message, "DDDD:BB:DD.F")) << bad.error().message;
}

TEST_F(VfioPool, ShortBdfsInTheCApi) {
  install_fake("/dev/vfio");  // the C options have no dev root: the default one
  const std::string root = tree_->root();
  const ncma_vfio_device_spec specs[] = {{"05:00.0", 0}};
  ncma_pool_options opt{"anon", "kernel", root.c_str(), specs, 1};
  ncma_pool* pool = ncma_pool_create("", &opt);
  ASSERT_NE(pool, nullptr) << ncma_last_error_message();
  ncma_device* dev = ncma_device_vfio(pool, "05:00.0");
  ASSERT_NE(dev, nullptr) << ncma_last_error_message();
  ncma_device_destroy(dev);
  ncma_device* pci = ncma_device_pci(pool, "05:00.0");
  ASSERT_NE(pci, nullptr) << ncma_last_error_message();
  EXPECT_EQ(ncma_device_get_node(pci), 0);
  ncma_device_destroy(pci);
  std::uint32_t v = 0;
  EXPECT_EQ(ncma_vfio_config_read(pool, "05:00.0", 0, &v, 4), NCMA_OK) << ncma_last_error_message();
  EXPECT_EQ(v & 0xffff, fakevfio::kVendor);
  EXPECT_EQ(ncma_vfio_attach(pool, "06:00.0", 0), NCMA_OK) << ncma_last_error_message();
  EXPECT_EQ(ncma_vfio_attach(pool, kDev1.c_str(), 0), NCMA_EINVAL) << "twice";
  ncma_pool_destroy(pool);
}

TEST_F(VfioPool, VfioReportSaysWhatTheContainerHolds) {
  Pool pool = make(kParams, {{kDev0, k64}, {kDev1, mask_of(40)}});
  auto dev = Device::from_vfio(kDev0, pool);
  ASSERT_TRUE(dev);
  auto page = pool.alloc_coherent(*dev, 4096);
  ASSERT_TRUE(page);
  const auto rep = pool.vfio_report();
  EXPECT_TRUE(rep.enabled);
  EXPECT_EQ(rep.iova_pgsizes, fakevfio::kPgsizes);
  EXPECT_EQ(rep.dma_avail, 65535 - 3);
  ASSERT_FALSE(rep.iova_ranges.empty());
  EXPECT_EQ(rep.iova_ranges.front().first, numacma::vfio::kIovaFloor);
  EXPECT_EQ(rep.iova_ranges.back().second, (1ULL << 39) - 1);
  for (const auto& [first, last] : rep.iova_ranges)
    EXPECT_TRUE(last < fakevfio::kMsiFirst || first > fakevfio::kMsiLast) << "MSI window left out";
  ASSERT_EQ(rep.devices.size(), 2u);
  EXPECT_EQ(rep.devices[0].bdf, kDev0);
  EXPECT_EQ(rep.devices[0].iommu_group, 10);
  EXPECT_EQ(rep.devices[0].node, 0);
  EXPECT_EQ(rep.devices[0].dma_mask, k64);
  EXPECT_EQ(rep.devices[1].bdf, kDev1);
  EXPECT_EQ(rep.devices[1].iommu_group, 11);
  EXPECT_EQ(rep.devices[1].dma_mask, mask_of(40));
  ASSERT_EQ(rep.mappings.size(), 3u);
  EXPECT_NE(rep.mappings[0].what, "pages") << "areas first";
  EXPECT_NE(rep.mappings[1].what, "pages");
  EXPECT_EQ(rep.mappings[2].what, "pages");
  EXPECT_EQ(rep.mappings[2].iova, page->dma_addr());
  EXPECT_EQ(rep.mappings[2].bytes, 4096u);
}

TEST_F(VfioPool, RegistersThroughTheVfioDeviceHandle) {
  Pool pool = make("", {{kDev0, k64}});
  auto h = pool.vfio_device(kDev0);
  ASSERT_TRUE(h);
  auto size = h->bar_size(0);
  ASSERT_TRUE(size);
  EXPECT_EQ(*size, fakevfio::kBar0Bytes);
  ASSERT_TRUE(h->write32(0, 0x14, 0x00460001));
  auto v = h->read32(0, 0x14);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 0x00460001u);
  EXPECT_EQ(fake_->bar0(kDev0)[0x16], 0x46);
  ASSERT_TRUE(h->write64(0, 0x28, 0x1122334455667788ULL));
  EXPECT_EQ(*h->read64(0, 0x28), 0x1122334455667788ULL);
  std::uint16_t vendor = 0;
  ASSERT_TRUE(h->config_read(0, &vendor, 2));
  EXPECT_EQ(vendor, fakevfio::kVendor);
  ASSERT_TRUE(h->enable_bus_master());
  EXPECT_EQ(fake_->config(kDev0)[4] & 0x6, 0x6) << "memory space and bus master";
  EXPECT_EQ(h->bar_size(3).error().code, Errc::not_found);
}
