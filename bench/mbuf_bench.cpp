// bench/mbuf_bench.cpp — numacma_mbuf_bench: rte_pktmbuf_alloc / rte_pktmbuf_free
// on the mbuf pool of ncma_dpdk_pktmbuf_pool_create, side by side in one run
// with the one DPDK's own users make, rte_pktmbuf_pool_create, at the same
// size and cache (docs/dpdk.md, docs/bench.md). Both are rte_mempools with the
// default ring ops: the figure shows numacma's memory costs nothing per packet.
//
//   numacma_mbuf_bench [google benchmark flags]
//
// The EAL runs with --no-huge --no-pci -l 0 and one net_null vdev (the port
// numacma's mempool is made for): no hugepages, no device, no root. Each
// benchmark is BM_<shape>/<peer>, the peers "numacma" and "dpdk":
//   one    one rte_pktmbuf_alloc then rte_pktmbuf_free per iteration
//   burst  rte_pktmbuf_alloc_bulk of 32 then rte_pktmbuf_free_bulk (a PMD's
//          rx refill and tx completion), per iteration; ns per mbuf is
//          items_per_second's inverse
#include <benchmark/benchmark.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <cstdio>
#include <string>
#include <vector>

#include "numacma/dpdk.hpp"
#include "numacma/numacma.hpp"

namespace {

constexpr unsigned kMbufs = 8191;  // l2fwd's NB_MBUF shape: 2^n - 1
constexpr unsigned kCache = 256;   // RTE_MEMPOOL_CACHE_MAX_SIZE / 2, as l2fwd and testpmd
constexpr unsigned kBurst = 32;

rte_mempool* g_pool[2];  // [0] numacma, [1] dpdk

void one(benchmark::State& state, int peer) {
  rte_mempool* mp = g_pool[peer];
  for (auto _ : state) {
    rte_mbuf* m = rte_pktmbuf_alloc(mp);
    benchmark::DoNotOptimize(m);
    rte_pktmbuf_free(m);
  }
  state.SetItemsProcessed(state.iterations());
}

void burst(benchmark::State& state, int peer) {
  rte_mempool* mp = g_pool[peer];
  rte_mbuf* b[kBurst];
  for (auto _ : state) {
    if (rte_pktmbuf_alloc_bulk(mp, b, kBurst) != 0) {
      state.SkipWithError("rte_pktmbuf_alloc_bulk failed");
      break;
    }
    benchmark::DoNotOptimize(b[0]);
    rte_pktmbuf_free_bulk(b, kBurst);
  }
  state.SetItemsProcessed(state.iterations() * kBurst);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> eal = {argv[0], "--no-huge", "-m", "256", "--no-pci", "--no-shconf",
                                  "-l", "0", "--vdev=net_null0", "--log-level=error"};
  std::vector<char*> eal_argv;
  for (std::string& a : eal) eal_argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0) {
    std::fprintf(stderr, "numacma_mbuf_bench: rte_eal_init: %s\n", rte_strerror(rte_errno));
    return 1;
  }
  int rc = 1;
  {
    numacma::PoolOptions o;
    o.params = "cma=64M";
    o.backing = "anon";
    auto pool = numacma::Pool::create(o);
    if (!pool) return std::fprintf(stderr, "numacma_mbuf_bench: %s\n", pool.error().message.c_str()), 1;
    if (auto s = numacma::dpdk::register_pool(*pool); !s)
      return std::fprintf(stderr, "numacma_mbuf_bench: %s\n", s.error().message.c_str()), 1;
    auto mp = numacma::dpdk::pktmbuf_pool_create(*pool, 0, "bench_ncma", kMbufs, kCache, 0,
                                                 RTE_MBUF_DEFAULT_BUF_SIZE);
    if (!mp) return std::fprintf(stderr, "numacma_mbuf_bench: %s\n", mp.error().message.c_str()), 1;
    g_pool[0] = *mp;
    g_pool[1] = rte_pktmbuf_pool_create("bench_dpdk", kMbufs, kCache, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                        static_cast<int>(rte_socket_id()));
    if (g_pool[1] == nullptr) {
      std::fprintf(stderr, "numacma_mbuf_bench: rte_pktmbuf_pool_create: %s\n", rte_strerror(rte_errno));
    } else {
      benchmark::AddCustomContext("config", "n " + std::to_string(kMbufs) + ", cache " + std::to_string(kCache) +
                                                ", data room RTE_MBUF_DEFAULT_BUF_SIZE, ring ops, lcore 0; "
                                                "numacma: ncma_dpdk_pktmbuf_pool_create (anon pool cma=64M); "
                                                "dpdk: rte_pktmbuf_pool_create on rte_socket_id() (--no-huge)");
      const char* names[2] = {"numacma", "dpdk"};
      for (int peer = 0; peer < 2; ++peer)  // side by side: one/numacma, one/dpdk, burst/numacma, ...
        benchmark::RegisterBenchmark((std::string("BM_one/") + names[peer]).c_str(), one, peer);
      for (int peer = 0; peer < 2; ++peer)
        benchmark::RegisterBenchmark((std::string("BM_burst/") + names[peer]).c_str(), burst, peer);
      benchmark::Initialize(&argc, argv);
      benchmark::RunSpecifiedBenchmarks();
      benchmark::Shutdown();
      rc = 0;
      rte_mempool_free(g_pool[1]);
    }
    rte_mempool_free(g_pool[0]);
    if (auto s = numacma::dpdk::unregister_pool(*pool); !s) {
      std::fprintf(stderr, "numacma_mbuf_bench: %s\n", s.error().message.c_str());
      rc = 1;
    }
  }
  rte_eal_cleanup();
  return rc;
}
