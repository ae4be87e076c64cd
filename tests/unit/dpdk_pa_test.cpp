// DPDK in IOVA-as-PA mode (numacma/dpdk.h): a pool whose DMA handles are
// physical addresses (hugetlb, root) is given to DPDK as it is, and DPDK's own
// translation (rte_mem_virt2phy) agrees with every IOVA numacma handed it; a
// pool whose handles are not physical is refused. Its own process: the EAL
// runs once per process, and dpdk_register_test's runs in VA mode.
#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_memory.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "hugepages_guard.hpp"
#include "numacma/dpdk.h"
#include "numacma/dpdk.hpp"
#include "numacma/numacma.h"
#include "numacma/numacma.hpp"

using numacma::Errc;
using numacma::Pool;

namespace {

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

}  // namespace

TEST(DpdkPa, APhysicalPoolIsGivenAsItIsAndAnotherIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "IOVA-as-PA needs physical addresses: root";
  numacma::testing::HugepagesGuard guard(48);  // DPDK's 32 MiB and the pool's 16 MiB
  if (!guard.ok()) GTEST_SKIP() << guard.why();
  std::vector<std::string> args = {"dpdk_pa_test", "-l", "0", "--no-pci", "--no-shconf", "--in-memory",
                                   "--iova-mode=pa", "-m", "32", "--vdev=net_null0", "--log-level=*:error"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  ASSERT_GE(rte_eal_init(static_cast<int>(argv.size()), argv.data()), 0) << rte_strerror(rte_errno);
  ASSERT_EQ(rte_eal_iova_mode(), RTE_IOVA_PA);
  {
    // An anon pool's handles are virtual: refused, saying what to do.
    numacma::PoolOptions ao;
    ao.params = "cma=4M";
    ao.backing = "anon";
    auto anon = Pool::create(ao);
    ASSERT_TRUE(anon) << anon.error().message;
    const numacma::Status refused = numacma::dpdk::register_pool(*anon);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, Errc::unsupported);
    EXPECT_TRUE(contains(refused.error().message, "hugetlb")) << refused.error().message;

    numacma::PoolOptions o;
    o.params = "cma=16M";
    o.backing = "hugetlb";
    o.require_device_usable = true;
    auto pool = Pool::create(o);
    if (!pool && pool.error().code == Errc::unsupported && contains(pool.error().message, "virtual addresses"))
      GTEST_SKIP() << "pagemap hides physical addresses here: " << pool.error().message;
    ASSERT_TRUE(pool) << pool.error().message;
    ASSERT_EQ(pool->address_kind(), numacma::AddressKind::physical);
    ASSERT_TRUE(numacma::dpdk::register_pool(*pool));
    EXPECT_EQ(pool->address_kind(), numacma::AddressKind::physical);  // as it was: nothing remapped
    // The area's physical pages are contiguous hugepage by hugepage only: what
    // DPDK took shows in its used pages, and each IOVA is the physical address.
    auto used = [&] { return pool->stats().areas.at(0).used; };
    ASSERT_EQ(used(), 0u);

    auto socket = numacma::dpdk::socket(*pool, 0);
    ASSERT_TRUE(socket) << socket.error().message;
    void* m = rte_malloc_socket("ring", 65536, 4096, *socket);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(used(), NCMA_DPDK_PORT_MEMORY / 4096);  // the port's heap, from the area
    EXPECT_EQ(rte_malloc_virt2iova(m), rte_mem_virt2phy(m));
    const std::uint64_t heap = used();

    auto mp = numacma::dpdk::pktmbuf_pool_create(*pool, 0, "pa_mb", 255, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE);
    ASSERT_TRUE(mp) << mp.error().message;
    EXPECT_GE(used() - heap, 255u * RTE_MBUF_DEFAULT_BUF_SIZE / 4096);  // the mbufs, from the area
    std::vector<rte_mbuf*> mbufs(255);
    ASSERT_EQ(rte_pktmbuf_alloc_bulk(*mp, mbufs.data(), 255), 0);
    unsigned not_physical = 0;
    for (rte_mbuf* b : mbufs) not_physical += b->buf_iova != rte_mem_virt2phy(b->buf_addr);
    EXPECT_EQ(not_physical, 0u);
    rte_pktmbuf_free_bulk(mbufs.data(), 255);
    rte_mempool_free(*mp);
    EXPECT_EQ(used(), heap);
    rte_free(m);
    ASSERT_TRUE(numacma::dpdk::unregister_pool(*pool));
    EXPECT_EQ(pool->stats().areas.at(0).used, 0u);
  }
  rte_eal_cleanup();
}
