// The Pool in vfio mode (vfio_pool_fixture.hpp) through the C API.
#include <gtest/gtest.h>

#include <string>

#include "vfio_pool_fixture.hpp"

// ---- the C API ------------------------------------------------------------------------------------

TEST_F(VfioPool, CApi) {
  install_fake("/dev/vfio");  // the C options have no dev root: the default one
  const std::string root = tree_->root();
  const ncma_vfio_device_spec specs[] = {{kDev0.c_str(), 0}, {kDev1.c_str(), mask_of(28)}};
  ncma_pool_options opt{"anon", "kernel", root.c_str(), specs, 2};
  ncma_pool* pool = ncma_pool_create(kParams.c_str(), &opt);
  ASSERT_NE(pool, nullptr) << ncma_last_error_message();
  EXPECT_EQ(fake_->mappings().size(), 2u);

  ncma_device* dev = ncma_device_vfio(pool, kDev1.c_str());
  ASSERT_NE(dev, nullptr) << ncma_last_error_message();
  EXPECT_EQ(ncma_device_get_node(dev), 0);
  std::uint64_t dma = 0;
  void* cpu = ncma_alloc_coherent(pool, dev, 64 * KiB, &dma);
  ASSERT_NE(cpu, nullptr) << ncma_last_error_message();
  EXPECT_LE(dma + 64 * KiB - 1, mask_of(28));
  const FakeMapping m = fake_->mapping_containing(dma, 64 * KiB);
  ASSERT_NE(m.bytes, 0u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(cpu) - m.vaddr, dma - m.iova);
  void* page = ncma_alloc_coherent(pool, dev, 4096, &dma);
  ASSERT_NE(page, nullptr);
  EXPECT_TRUE(fake_->has_mapping(dma, 4096));
  EXPECT_EQ(ncma_free_coherent(pool, dev, 4096, page, dma + 4096), NCMA_EBADFREE);
  EXPECT_EQ(ncma_free_coherent(pool, dev, 4096, page, dma), NCMA_OK);
  EXPECT_FALSE(fake_->has_mapping(dma, 4096));
  ncma_device_destroy(dev);

  // mask 0 means 64 bits: an 8 MiB page buffer (larger than any area) is
  // mapped for it wherever the IOVA space has room.
  ncma_device* d0 = ncma_device_vfio(pool, kDev0.c_str());
  ASSERT_NE(d0, nullptr) << ncma_last_error_message();
  void* big = ncma_alloc_coherent(pool, d0, 8 * MiB, &dma);
  ASSERT_NE(big, nullptr) << ncma_last_error_message();
  EXPECT_TRUE(fake_->has_mapping(dma, 8 * MiB));
  EXPECT_EQ(ncma_free_coherent(pool, d0, 8 * MiB, big, dma), NCMA_OK);
  ncma_device_destroy(d0);

  EXPECT_EQ(ncma_vfio_attach(pool, kLate.c_str(), mask_of(21)), NCMA_OK) << ncma_last_error_message();
  EXPECT_EQ(fake_->container_of_group(12), fake_->container_of_group(10));
  ncma_device* late = ncma_device_vfio(pool, kLate.c_str());
  ASSERT_NE(late, nullptr) << ncma_last_error_message();
  void* low = ncma_alloc_coherent(pool, late, 64 * KiB, &dma);
  ASSERT_NE(low, nullptr) << ncma_last_error_message();
  EXPECT_LE(dma + 64 * KiB - 1, mask_of(21)) << "the mask given to ncma_vfio_attach";
  EXPECT_EQ(ncma_free_coherent(pool, late, 64 * KiB, low, dma), NCMA_OK);
  ncma_device_destroy(late);
  EXPECT_EQ(ncma_vfio_attach(pool, kLate.c_str(), 0), NCMA_EINVAL) << "twice";
  EXPECT_EQ(ncma_vfio_attach(pool, kNvme.c_str(), 0), NCMA_EUNSUPPORTED);
  EXPECT_NE(std::string(ncma_last_error_message()).find("numacma vfio bind"), std::string::npos);
  EXPECT_EQ(ncma_vfio_attach(pool, nullptr, 0), NCMA_EINVAL);

  EXPECT_EQ(ncma_vfio_bar_write32(pool, kDev0.c_str(), 0, 0x10, 0xabcd1234u), NCMA_OK);
  std::uint32_t v = 0;
  EXPECT_EQ(ncma_vfio_bar_read32(pool, kDev0.c_str(), 0, 0x10, &v), NCMA_OK);
  EXPECT_EQ(v, 0xabcd1234u);
  EXPECT_EQ(fake_->bar0(kDev0)[0x13], 0xab);
  EXPECT_EQ(ncma_vfio_bar_read32(pool, kDev0.c_str(), 0, 0x11, &v), NCMA_EINVAL) << "misaligned";
  EXPECT_EQ(ncma_vfio_bar_read32(pool, kDev0.c_str(), 4, 0, &v), NCMA_ENOENT) << "no BAR 4";
  EXPECT_EQ(ncma_vfio_bar_write32(pool, kDev0.c_str(), 2, 0x4, 0x5a5a5a5au), NCMA_OK);
  EXPECT_EQ(fake_->bar2(kDev0)[0x4], 0x5a) << "BAR2, through pwrite at its region offset";
  std::uint64_t v64 = 0;
  EXPECT_EQ(ncma_vfio_bar_write64(pool, kDev0.c_str(), 0, 0x30, 0x0102030405060708ULL), NCMA_OK);
  EXPECT_EQ(ncma_vfio_bar_read64(pool, kDev0.c_str(), 0, 0x30, &v64), NCMA_OK);
  EXPECT_EQ(v64, 0x0102030405060708ULL);
  std::uint16_t ids[2] = {0, 0};
  EXPECT_EQ(ncma_vfio_config_read(pool, kDev0.c_str(), 0, ids, 4), NCMA_OK);
  EXPECT_EQ(ids[0], fakevfio::kVendor);
  EXPECT_EQ(ids[1], fakevfio::kDeviceId);
  EXPECT_EQ(ncma_vfio_enable_bus_master(pool, kLate.c_str()), NCMA_OK);
  EXPECT_EQ(fake_->config(kLate)[4] & 0x6, 0x6);
  EXPECT_EQ(ncma_vfio_bar_read32(pool, "0000:0f:00.0", 0, 0, &v), NCMA_ENOENT);
  EXPECT_EQ(ncma_device_vfio(pool, "0000:0f:00.0"), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_ENOENT);
  ncma_pool_destroy(pool);
  EXPECT_TRUE(fake_->clean()) << fake_->describe();

  // Options errors; a pool that cannot be made.
  opt.vfio = nullptr;
  EXPECT_EQ(ncma_pool_create(kParams.c_str(), &opt), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_EINVAL);
  const ncma_vfio_device_spec null_bdf[] = {{nullptr, 0}};
  opt.vfio = null_bdf;
  opt.n_vfio = 1;
  EXPECT_EQ(ncma_pool_create(kParams.c_str(), &opt), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_EINVAL);
  const ncma_vfio_device_spec unbound[] = {{kNvme.c_str(), 0}};
  opt.vfio = unbound;
  EXPECT_EQ(ncma_pool_create(kParams.c_str(), &opt), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_EUNSUPPORTED);
  EXPECT_TRUE(fake_->clean()) << fake_->describe();

  // A pool without VFIO: the VFIO calls say so.
  ncma_pool_options plain{"sim", "kernel", root.c_str(), nullptr, 0};
  ncma_pool* sim = ncma_pool_create("cma=4M", &plain);
  ASSERT_NE(sim, nullptr) << ncma_last_error_message();
  EXPECT_EQ(ncma_vfio_attach(sim, kDev0.c_str(), 0), NCMA_EINVAL);
  EXPECT_EQ(ncma_device_vfio(sim, kDev0.c_str()), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_ENOENT);
  EXPECT_EQ(ncma_vfio_bar_read32(sim, kDev0.c_str(), 0, 0, &v), NCMA_ENOENT);
  EXPECT_EQ(ncma_vfio_bar_write32(sim, kDev0.c_str(), 0, 0, 1), NCMA_ENOENT);
  EXPECT_EQ(ncma_vfio_config_read(sim, kDev0.c_str(), 0, ids, 2), NCMA_ENOENT);
  EXPECT_EQ(ncma_vfio_enable_bus_master(sim, kDev0.c_str()), NCMA_ENOENT);
  EXPECT_EQ(ncma_vfio_bar_read32(nullptr, kDev0.c_str(), 0, 0, &v), NCMA_EINVAL);
  ncma_pool_destroy(sim);
}
