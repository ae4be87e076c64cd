// The C API mirrors dma_alloc_coherent/dma_free_coherent and reports errors
// through ncma_last_error(); a C driver ports by renaming.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "numacma/numacma.h"

namespace {
std::string root() { return std::string(NUMACMA_TEST_DATA) + "/arm64-4n"; }
}  // namespace

TEST(CApi, AllocFreeRoundTripOnTheDevicesNode) {
  const std::string r = root();
  ncma_pool_options opt{"sim", "kernel", r.c_str(), nullptr, 0};
  ncma_pool* pool = ncma_pool_create("cma=16M cma_pernuma=8M", &opt);
  ASSERT_NE(pool, nullptr) << ncma_last_error_message();
  ncma_device* dev = ncma_device_pci(pool, "0000:80:00.0");
  ASSERT_NE(dev, nullptr) << ncma_last_error_message();
  EXPECT_EQ(ncma_device_get_node(dev), 2);
  uint64_t dma = 0;
  void* cpu = ncma_alloc_coherent(pool, dev, 65536, &dma);
  ASSERT_NE(cpu, nullptr) << ncma_last_error_message();
  EXPECT_EQ(dma % 65536, 0u);
  EXPECT_EQ(ncma_free_coherent(pool, dev, 32768, cpu, dma), NCMA_EBADFREE);  // F2: wrong size
  EXPECT_NE(std::string(ncma_last_error_message()), "");
  EXPECT_EQ(ncma_free_coherent(pool, dev, 65536, cpu, dma), NCMA_OK);
  EXPECT_EQ(ncma_free_coherent(pool, dev, 65536, cpu, dma), NCMA_EBADFREE);  // double free
  ncma_device_destroy(dev);
  ncma_pool_destroy(pool);
}

TEST(CApi, ErrorsAreCodesWithMessages) {
  const std::string r = root();
  ncma_pool_options opt{"sim", "sideways", r.c_str(), nullptr, 0};
  EXPECT_EQ(ncma_pool_create("cma=16M", &opt), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_EINVAL);
  opt.policy = "nearest";
  EXPECT_EQ(ncma_pool_create("cma=12Q", &opt), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_EINVAL);
  EXPECT_NE(std::string(ncma_last_error_message()).find("12Q"), std::string::npos);
  ncma_pool* pool = ncma_pool_create("cma=16M", &opt);
  ASSERT_NE(pool, nullptr);
  ncma_device* dev = ncma_device_node(1, "nic");
  uint64_t dma = 0;
  EXPECT_EQ(ncma_alloc_coherent(pool, dev, 0, &dma), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_EINVAL);
  EXPECT_STREQ(ncma_strerror(NCMA_EINVAL), "invalid_argument");
  EXPECT_EQ(ncma_alloc_coherent(pool, dev, 4096, nullptr), nullptr);
  EXPECT_EQ(ncma_device_pci(pool, "0000:ff:00.0"), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_ENOENT);
  ncma_device_set_dma_mask(dev, 0xfff);
  EXPECT_EQ(ncma_alloc_coherent(pool, dev, 65536, &dma), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_EUNREACHABLE);
  EXPECT_EQ(ncma_free_coherent(pool, dev, 4096, &dma, 0), NCMA_EBADFREE);
  EXPECT_EQ(ncma_free_coherent(nullptr, dev, 4096, &dma, 0), NCMA_EINVAL);
  ncma_device_destroy(dev);
  ncma_pool_destroy(pool);
}

TEST(CApi, DmaPoolAsTheKernelsWithErrorsAsCodes) {
  const std::string r = root();
  ncma_pool_options opt{"sim", "kernel", r.c_str(), nullptr, 0};
  ncma_pool* pool = ncma_pool_create("cma=16M cma_pernuma=8M", &opt);
  ASSERT_NE(pool, nullptr) << ncma_last_error_message();
  ncma_device* dev = ncma_device_node(1, "nvme0");
  // Bad input: NULL, as dma_pool_create, with the reason.
  EXPECT_EQ(ncma_dma_pool_create(pool, "prp", dev, 0, 8, 0), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_EINVAL);
  EXPECT_EQ(std::string(ncma_last_error_message()), "dma_pool prp: size 0");
  EXPECT_EQ(ncma_dma_pool_create(pool, "prp", dev, 64, 12, 0), nullptr);
  EXPECT_EQ(ncma_dma_pool_create(pool, "prp", dev, 512, 8, 256), nullptr);
  EXPECT_EQ(ncma_dma_pool_create(nullptr, "prp", dev, 64, 8, 0), nullptr);

  ncma_dma_pool* dp = ncma_dma_pool_create(pool, "prp", dev, 512, 64, 4096);
  ASSERT_NE(dp, nullptr) << ncma_last_error_message();
  uint64_t dma = 0, zdma = 0;
  void* cpu = ncma_dma_pool_alloc(dp, &dma);
  ASSERT_NE(cpu, nullptr) << ncma_last_error_message();
  EXPECT_EQ(dma % 64, 0u);
  std::memset(cpu, 0x5a, 512);
  void* z = ncma_dma_pool_zalloc(dp, &zdma);
  ASSERT_NE(z, nullptr);
  EXPECT_EQ(static_cast<unsigned char*>(z)[0], 0);
  EXPECT_EQ(static_cast<unsigned char*>(z)[511], 0);
  EXPECT_EQ(ncma_dma_pool_alloc(dp, nullptr), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_EINVAL);

  EXPECT_EQ(ncma_dma_pool_free(dp, cpu, dma + 64), NCMA_EBADFREE);  // wrong dma
  EXPECT_EQ(ncma_dma_pool_free(dp, cpu, dma), NCMA_OK);
  EXPECT_EQ(ncma_dma_pool_free(dp, cpu, dma), NCMA_EBADFREE);  // double free
  EXPECT_NE(std::string(ncma_last_error_message()).find("double free"), std::string::npos);
  // Destroy with a live block: NCMA_EBUSY, naming the count; nothing is
  // destroyed, so the block can still be freed and the pool destroyed.
  EXPECT_EQ(ncma_dma_pool_destroy(dp), NCMA_EBUSY);
  EXPECT_NE(std::string(ncma_last_error_message()).find("1 block(s) still allocated"),
            std::string::npos)
      << ncma_last_error_message();
  EXPECT_EQ(ncma_dma_pool_free(dp, z, zdma), NCMA_OK);
  EXPECT_EQ(ncma_dma_pool_destroy(dp), NCMA_OK);
  EXPECT_EQ(std::string(ncma_strerror(NCMA_EBUSY)), "busy");
  EXPECT_EQ(ncma_dma_pool_destroy(nullptr), NCMA_OK);
  ncma_device_destroy(dev);
  ncma_pool_destroy(pool);
}

TEST(CApi, AreaStatsShowWhatABufferTookFromWhichArea) {
  const std::string r = root();
  ncma_pool_options opt{"sim", "kernel", r.c_str(), nullptr, 0, 0};
  ncma_pool* pool = ncma_pool_create("cma=16M cma_pernuma=8M", &opt);
  ASSERT_NE(pool, nullptr) << ncma_last_error_message();
  const int n = ncma_pool_area_count(pool);
  ASSERT_EQ(n, 5);  // the default area and pernuma0..3 of the 4-node fixture
  ncma_area_stats a;
  int pernuma2 = -1;
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(ncma_pool_area_stats(pool, static_cast<unsigned>(i), &a), NCMA_OK);
    EXPECT_EQ(a.used, 0u) << a.name;
    if (std::string(a.name) == "pernuma2") {
      pernuma2 = i;
      EXPECT_STREQ(a.kind, "pernuma");
      EXPECT_EQ(a.node, 2);
      EXPECT_EQ(a.pages, 8u * 1024 * 1024 / 4096);
    }
    if (std::string(a.kind) == "default") {
      EXPECT_STREQ(a.name, "reserved");
      EXPECT_GE(a.node, 0);  // the node its memory is on
    }
  }
  ASSERT_GE(pernuma2, 0);
  ncma_device* dev = ncma_device_pci(pool, "0000:80:00.0");  // node 2
  ASSERT_NE(dev, nullptr) << ncma_last_error_message();
  uint64_t dma = 0;
  void* cpu = ncma_alloc_coherent(pool, dev, 65536, &dma);
  ASSERT_NE(cpu, nullptr) << ncma_last_error_message();
  ASSERT_EQ(ncma_pool_area_stats(pool, static_cast<unsigned>(pernuma2), &a), NCMA_OK);
  EXPECT_EQ(a.used, 16u);
  EXPECT_EQ(a.alloc_pages_success, 16u);
  EXPECT_TRUE(dma >= a.base_dma && dma + 65536 <= a.base_dma + a.pages * 4096);
  EXPECT_EQ(ncma_free_coherent(pool, dev, 65536, cpu, dma), NCMA_OK);
  ASSERT_EQ(ncma_pool_area_stats(pool, static_cast<unsigned>(pernuma2), &a), NCMA_OK);
  EXPECT_EQ(a.used, 0u);
  EXPECT_EQ(a.release_pages_success, 16u);
  // Bad input: each a code with a message, *out untouched on error.
  EXPECT_EQ(ncma_pool_area_count(nullptr), NCMA_EINVAL);
  EXPECT_EQ(ncma_pool_area_stats(nullptr, 0, &a), NCMA_EINVAL);
  EXPECT_EQ(ncma_pool_area_stats(pool, 0, nullptr), NCMA_EINVAL);
  EXPECT_EQ(ncma_pool_area_stats(pool, static_cast<unsigned>(n), &a), NCMA_EINVAL);
  EXPECT_NE(std::string(ncma_last_error_message()).find("area 5 of 5"), std::string::npos)
      << ncma_last_error_message();
  ncma_device_destroy(dev);
  ncma_pool_destroy(pool);
}

TEST(CApi, KernelProfileSevenTwoMakesOneNumaAreaANodeAndOthersAreRefused) {
  const std::string r = root();
  ncma_pool_options opt{"sim", "kernel", r.c_str(), nullptr, 0, 0, "7.2", 0};
  ncma_pool* pool = ncma_pool_create("cma=16M cma_pernuma=8M numa_cma=2:4M", &opt);
  ASSERT_NE(pool, nullptr) << ncma_last_error_message();
  ASSERT_EQ(ncma_pool_area_count(pool), 5);  // reserved and numa0..3: no pernuma<N>
  ncma_area_stats a;
  for (unsigned i = 0; i < 5; ++i) {
    ASSERT_EQ(ncma_pool_area_stats(pool, i, &a), NCMA_OK);
    if (std::string(a.kind) == "default") continue;
    EXPECT_STREQ(a.kind, "numa") << a.name;
    EXPECT_EQ(std::string(a.name), "numa" + std::to_string(a.node));
    EXPECT_EQ(a.pages, (a.node == 2 ? 4u : 8u) * 1024 * 1024 / 4096) << a.name;  // numa_cma= wins on node 2
  }
  ncma_device* dev = ncma_device_pci(pool, "0000:80:00.0");  // node 2
  ASSERT_NE(dev, nullptr) << ncma_last_error_message();
  uint64_t dma = 0;
  void* cpu = ncma_alloc_coherent(pool, dev, 65536, &dma);
  ASSERT_NE(cpu, nullptr) << ncma_last_error_message();
  for (unsigned i = 0; i < 5; ++i) {
    ASSERT_EQ(ncma_pool_area_stats(pool, i, &a), NCMA_OK);
    EXPECT_EQ(a.total_pages, a.pages) << a.name;
    EXPECT_EQ(a.available_pages, a.pages - a.used) << a.name;
    if (std::string(a.name) == "numa2") EXPECT_EQ(a.available_pages, 1024u - 16u);
  }
  EXPECT_EQ(ncma_free_coherent(pool, dev, 65536, cpu, dma), NCMA_OK);
  ncma_device_destroy(dev);
  ncma_pool_destroy(pool);
  // CONFIG_CMA_SIZE_PERNUMA: every node an area of the default area's size.
  opt.cma_size_pernuma = 1;
  pool = ncma_pool_create("cma=4M", &opt);
  ASSERT_NE(pool, nullptr) << ncma_last_error_message();
  EXPECT_EQ(ncma_pool_area_count(pool), 5);
  ncma_pool_destroy(pool);
  // Refused: an unknown profile; cma_size_pernuma with 6.12, given or NULL.
  for (const char* bad : {"7.1", "", "6.12"}) {
    opt.kernel = bad;
    EXPECT_EQ(ncma_pool_create("cma=4M", &opt), nullptr) << bad;
    EXPECT_EQ(ncma_last_error(), NCMA_EINVAL) << bad;
    EXPECT_NE(std::string(ncma_last_error_message()).find(std::string(bad) == "6.12" ? "kernel 7.2" : "\"6.12\""),
              std::string::npos)
        << ncma_last_error_message();
  }
  opt.kernel = nullptr;
  EXPECT_EQ(ncma_pool_create("cma=4M", &opt), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_EINVAL);
}
