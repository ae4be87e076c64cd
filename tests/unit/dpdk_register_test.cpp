// numacma_dpdk (numacma/dpdk.h, src/dpdk) over a real DPDK EAL started with
// --no-huge --no-pci and two net_null vdevs (IOVA-as-VA, no VFIO): the
// registration (IOVAs numacma chose, none of DPDK's own), each port's heap
// (a DPDK socket over alloc_coherent memory of the port's device: a vdev has
// no node, so the kernel's NUMA_NO_NODE rules put it in the default area),
// the mbuf pool (its mbufs' IOVAs in the pool's areas, given back when it is
// freed), queues set up on both, the masks, and every refusal with its code.
// Each TEST runs in its own process under ctest; run directly, the first
// test runs before the EAL is started (it checks that refusal).
#include <gtest/gtest.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_memory.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "numacma/dpdk.h"
#include "numacma/dpdk.hpp"
#include "numacma/numacma.h"
#include "numacma/numacma.hpp"
#include "numacma/shared.hpp"
#include "shared_test_util.hpp"

using numacma::Errc;
using numacma::Pool;

namespace {

bool eal_up() {
  static const int rc = [] {
    // rte_eal_init writes into its arguments: copies that live as long as the EAL.
    static std::vector<std::string> args = {"dpdk_register_test", "--no-huge", "-m", "256", "--no-pci",
                                            "--no-shconf", "-l", "0", "--iova-mode=va", "--vdev=net_null0",
                                            "--vdev=net_null1", "--log-level=*:error"};
    static std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    return rte_eal_init(static_cast<int>(argv.size()), argv.data());
  }();
  return rc >= 0;
}

/** A private anon pool of this host: the default area and node 0's. */
Pool anon_pool() {
  numacma::PoolOptions o;
  o.params = "cma=64M cma_pernuma=32M";
  o.backing = "anon";
  auto p = Pool::create(o);
  EXPECT_TRUE(p) << p.error().message;
  return std::move(*p);
}

std::optional<numacma::AreaReport> area(const Pool& p, const std::string& kind) {
  for (const auto& a : p.stats().areas)
    if (a.kind == kind) return a;
  return std::nullopt;
}

std::uint64_t used(const Pool& p, const std::string& kind) {
  const auto a = area(p, kind);
  return a ? a->used : ~std::uint64_t{0};
}

bool in_area(const numacma::AreaReport& a, std::uint64_t iova, std::uint64_t bytes) {
  return iova >= a.base_dma && iova + bytes <= a.base_dma + a.pages * 4096;
}

int dpdk_range(const struct rte_memseg_list* msl, void* arg) {
  auto* r = static_cast<std::vector<std::pair<std::uint64_t, std::uint64_t>>*>(arg);
  r->emplace_back(reinterpret_cast<std::uintptr_t>(msl->base_va),
                  reinterpret_cast<std::uintptr_t>(msl->base_va) + msl->len);
  return 0;
}

#define EAL_OR_FAIL() ASSERT_TRUE(eal_up()) << "rte_eal_init failed: " << rte_strerror(rte_errno)

}  // namespace

TEST(Dpdk, BeforeRteEalInitRegistrationIsRefused) {
  if (rte_eal_iova_mode() != RTE_IOVA_DC) GTEST_SKIP() << "the EAL runs already in this process";
  ncma_pool_options o = {"anon", nullptr, nullptr, nullptr, 0, 0};
  ncma_pool* p = ncma_pool_create("cma=8M", &o);
  ASSERT_NE(p, nullptr) << ncma_last_error_message();
  EXPECT_EQ(ncma_dpdk_register(p), NCMA_EINVAL);
  EXPECT_NE(std::string(ncma_last_error_message()).find("rte_eal_init"), std::string::npos)
      << ncma_last_error_message();
  EXPECT_EQ(ncma_pool_address_kind(p), NCMA_ADDR_VIRTUAL_ONLY);
  ncma_pool_destroy(p);
}

TEST(Dpdk, NullArgumentsAreRefused) {
  EXPECT_EQ(ncma_dpdk_register(nullptr), NCMA_EINVAL);
  EXPECT_EQ(ncma_dpdk_socket(nullptr, 0), NCMA_EINVAL);
  EXPECT_EQ(ncma_dpdk_pktmbuf_pool_create(nullptr, 0, "x", 63, 0, 0, 2048), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_EINVAL);
}

TEST(Dpdk, RegistrationMovesTheAreasToIovasBesideDpdksOwn) {
  EAL_OR_FAIL();
  Pool pool = anon_pool();
  ASSERT_TRUE(numacma::dpdk::register_pool(pool));
  EXPECT_EQ(pool.address_kind(), numacma::AddressKind::iova_external);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> dpdk;
  rte_memseg_list_walk(dpdk_range, &dpdk);
  ASSERT_FALSE(dpdk.empty());
  const numacma::Stats st = pool.stats();
  ASSERT_FALSE(st.areas.empty());
  for (const auto& a : st.areas) {
    const std::uint64_t first = a.base_dma, end = a.base_dma + a.pages * 4096;
    EXPECT_GE(first, 1u << 20);
    for (const auto& [lo, hi] : dpdk)
      EXPECT_TRUE(end <= lo || first >= hi) << a.name << " overlaps DPDK's IOVAs";
  }
  const numacma::Status again = numacma::dpdk::register_pool(pool);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::busy);
  ASSERT_TRUE(numacma::dpdk::unregister_pool(pool));
  EXPECT_EQ(numacma::dpdk::unregister_pool(pool).error().code, Errc::invalid_argument);
}

TEST(Dpdk, APoolWithLiveBuffersIsRefused) {
  EAL_OR_FAIL();
  Pool pool = anon_pool();
  auto b = pool.alloc_coherent(numacma::Device::on_node(0), 65536);
  ASSERT_TRUE(b);
  const numacma::Status s = numacma::dpdk::register_pool(pool);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::busy) << s.error().message;
}

TEST(Dpdk, APortsSocketIsAHeapOfItsAreaTheSameOnEveryCall) {
  EAL_OR_FAIL();
  ASSERT_GE(rte_eth_dev_count_avail(), 2u);
  Pool pool = anon_pool();
  ASSERT_TRUE(numacma::dpdk::register_pool(pool));
  const std::uint64_t before = used(pool, "default");
  auto s = numacma::dpdk::socket(pool, 0);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_GE(*s, RTE_MAX_NUMA_NODES);
  EXPECT_EQ(rte_malloc_heap_socket_is_external(*s), 1);
  EXPECT_EQ(*numacma::dpdk::socket(pool, 0), *s);
  // A vdev has no node: NUMA_NO_NODE's rules, so the default area.
  int node = 7;
  EXPECT_EQ(ncma_dpdk_port_node(nullptr, 0, &node), NCMA_EINVAL);
  EXPECT_EQ(numacma::dpdk::port_device(pool, 0)->node, numacma::kNoNode);
  EXPECT_EQ(used(pool, "default"), before + NCMA_DPDK_PORT_MEMORY / 4096);
  // What DPDK allocates on that socket is numacma's memory, at numacma's IOVAs.
  void* m = rte_malloc_socket("ring", 65536, 4096, *s);
  ASSERT_NE(m, nullptr);
  const auto def = area(pool, "default");
  ASSERT_TRUE(def.has_value());
  EXPECT_TRUE(in_area(*def, rte_malloc_virt2iova(m), 65536)) << std::hex << rte_malloc_virt2iova(m);
  // Busy while DPDK holds some of it; given back once it does not.
  const numacma::Status busy = numacma::dpdk::unregister_pool(pool);
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().code, Errc::busy) << busy.error().message;
  rte_free(m);
  ASSERT_TRUE(numacma::dpdk::unregister_pool(pool));
  EXPECT_EQ(used(pool, "default"), before);
}

TEST(Dpdk, BadPortsAndAnUnregisteredPoolAreRefused) {
  EAL_OR_FAIL();
  Pool pool = anon_pool();
  auto s = numacma::dpdk::socket(pool, 0);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::invalid_argument);
  EXPECT_NE(s.error().message.find("ncma_dpdk_register first"), std::string::npos) << s.error().message;
  ASSERT_TRUE(numacma::dpdk::register_pool(pool));
  auto bad = numacma::dpdk::socket(pool, 77);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::invalid_argument);
  EXPECT_NE(bad.error().message.find("not a DPDK port"), std::string::npos) << bad.error().message;
  EXPECT_EQ(numacma::dpdk::set_dma_mask(pool, 0, 0).error().code, Errc::invalid_argument);
  EXPECT_EQ(numacma::dpdk::set_port_memory(pool, 100).error().code, Errc::invalid_argument);
  auto mp = numacma::dpdk::pktmbuf_pool_create(pool, 0, "odd", 63, 0, 3, 2048);
  ASSERT_FALSE(mp);
  EXPECT_EQ(mp.error().code, Errc::invalid_argument);
  ASSERT_TRUE(numacma::dpdk::unregister_pool(pool));
}

TEST(Dpdk, AMaskNothingCanMeetIsAClearErrorAndA32BitOneIsMet) {
  EAL_OR_FAIL();
  Pool pool = anon_pool();
  ASSERT_TRUE(numacma::dpdk::register_pool(pool));
  ASSERT_TRUE(numacma::dpdk::set_dma_mask(pool, 0, (1u << 20) - 1));  // 1 MiB: below numacma's floor
  auto s = numacma::dpdk::socket(pool, 0);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::unreachable) << s.error().message;
  ASSERT_TRUE(numacma::dpdk::set_dma_mask(pool, 1, 0xffffffffULL));
  auto s1 = numacma::dpdk::socket(pool, 1);
  ASSERT_TRUE(s1) << s1.error().message;
  void* m = rte_malloc_socket("ring", 4096, 4096, *s1);
  ASSERT_NE(m, nullptr);
  EXPECT_LT(rte_malloc_virt2iova(m), 1ULL << 32);
  EXPECT_EQ(numacma::dpdk::set_dma_mask(pool, 1, ~0ULL).error().code, Errc::busy);
  rte_free(m);
  ASSERT_TRUE(numacma::dpdk::unregister_pool(pool));
}

TEST(Dpdk, AnMbufPoolLivesInThePortsAreaAndGoesBackToIt) {
  EAL_OR_FAIL();
  ncma_pool_options o = {"anon", nullptr, nullptr, nullptr, 0, 0};
  ncma_pool* p = ncma_pool_create("cma=64M cma_pernuma=32M", &o);
  ASSERT_NE(p, nullptr) << ncma_last_error_message();
  ASSERT_EQ(ncma_dpdk_register(p), 0) << ncma_last_error_message();
  EXPECT_EQ(ncma_pool_address_kind(p), NCMA_ADDR_IOVA_EXTERNAL);
  Pool& pool = *reinterpret_cast<Pool*>(p);  // ncma_pool is a Pool (src/capi/capi.hpp)
  const std::uint64_t before = used(pool, "default");
  struct rte_mempool* mp = ncma_dpdk_pktmbuf_pool_create(p, 0, "ncma_mb0", 1023, 32, 0, RTE_MBUF_DEFAULT_BUF_SIZE);
  ASSERT_NE(mp, nullptr) << ncma_last_error_message();
  EXPECT_GT(used(pool, "default"), before + 1023 * RTE_MBUF_DEFAULT_BUF_SIZE / 4096);
  const auto def = area(pool, "default");
  std::vector<struct rte_mbuf*> m(1023);
  ASSERT_EQ(rte_pktmbuf_alloc_bulk(mp, m.data(), 1023), 0);
  for (struct rte_mbuf* b : m) {
    ASSERT_TRUE(in_area(*def, b->buf_iova, b->buf_len)) << std::hex << b->buf_iova;
    EXPECT_EQ(b->buf_len, RTE_MBUF_DEFAULT_BUF_SIZE);
  }
  rte_pktmbuf_free_bulk(m.data(), 1023);

  // Queues on the port's socket, packets through them (net_null makes them
  // from the rx mempool and drops what it sends).
  const int socket = ncma_dpdk_socket(p, 0);
  ASSERT_GE(socket, 0) << ncma_last_error_message();
  struct rte_eth_conf conf {};
  ASSERT_EQ(rte_eth_dev_configure(0, 1, 1, &conf), 0);
  ASSERT_EQ(rte_eth_rx_queue_setup(0, 0, 256, static_cast<unsigned>(socket), nullptr, mp), 0);
  ASSERT_EQ(rte_eth_tx_queue_setup(0, 0, 256, static_cast<unsigned>(socket), nullptr), 0);
  ASSERT_EQ(rte_eth_dev_start(0), 0);
  struct rte_mbuf* burst[32];
  const std::uint16_t n = rte_eth_rx_burst(0, 0, burst, 32);
  ASSERT_GT(n, 0);
  for (std::uint16_t i = 0; i < n; ++i) EXPECT_EQ(burst[i]->pool, mp);
  EXPECT_EQ(rte_eth_tx_burst(0, 0, burst, n), n);
  ASSERT_EQ(rte_eth_dev_stop(0), 0);
  ASSERT_EQ(rte_eth_dev_close(0), 0);

  rte_mempool_free(mp);
  ASSERT_EQ(ncma_dpdk_unregister(p), 0) << ncma_last_error_message();
  EXPECT_EQ(used(pool, "default"), before);
  ncma_pool_destroy(p);
}

// A reserved pool, attached: registered in IOVA-as-VA mode, its port heap and
// mbufs at IOVAs of this process's mapping, and what DPDK took shows in
// `numacma status` (the reservation's state), then goes back.
TEST(Dpdk, AnAttachedPoolIsRegisteredAndStatusSeesWhatDpdkTook) {
  EAL_OR_FAIL();
  numacma::testing::ScopedRunDir run;
  numacma::ReserveOptions ro;
  ro.params = "cma=64M";
  ro.backing = "anon";
  auto reserved = numacma::reserve("dpdk", ro);
  ASSERT_TRUE(reserved) << reserved.error().message;
  ncma_pool* p = ncma_pool_attach("dpdk");
  ASSERT_NE(p, nullptr) << ncma_last_error_message();
  ASSERT_EQ(ncma_dpdk_register(p), 0) << ncma_last_error_message();
  EXPECT_EQ(ncma_pool_address_kind(p), NCMA_ADDR_IOVA_EXTERNAL);
  Pool& pool = *reinterpret_cast<Pool*>(p);
  struct rte_mempool* mp = ncma_dpdk_pktmbuf_pool_create(p, 1, "ncma_att", 511, 32, 0, RTE_MBUF_DEFAULT_BUF_SIZE);
  ASSERT_NE(mp, nullptr) << ncma_last_error_message();
  const auto def = area(pool, "default");
  ASSERT_TRUE(def);
  struct rte_mbuf* m = rte_pktmbuf_alloc(mp);
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(in_area(*def, m->buf_iova, m->buf_len)) << std::hex << m->buf_iova;
  rte_pktmbuf_free(m);
  auto st = numacma::status("dpdk");
  ASSERT_TRUE(st) << st.error().message;
  ASSERT_EQ(st->areas.size(), 1u);
  EXPECT_GT(st->areas[0].area.used, 511u * RTE_MBUF_DEFAULT_BUF_SIZE / 4096) << "status sees the mbufs";
  EXPECT_EQ(st->areas[0].area.used, def->used) << "status and the process agree";
  rte_mempool_free(mp);
  ASSERT_EQ(ncma_dpdk_unregister(p), 0) << ncma_last_error_message();
  st = numacma::status("dpdk");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->areas[0].area.used, 0u);
  ncma_pool_destroy(p);
}
