// Many threads allocate and free on every node at once (one lock per area, no
// pool lock). Run under TSan by the test command. At the end nothing is
// leaked (F3) and no two live buffers ever overlapped in CPU or DMA space.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "numacma/numacma.hpp"

using numacma::Device;
using numacma::DmaBuffer;
using numacma::Pool;

TEST(PoolStress, ThreadsOnAllNodesLeaveNothingBehind) {
  numacma::PoolOptions o;
  o.params = "cma=8M cma_pernuma=4M numa_cma=2:2M";
  o.backing = "sim";
  o.policy = numacma::Policy::nearest;
  o.sysfs_root = std::string(NUMACMA_TEST_DATA) + "/arm64-4n";
  auto pool = Pool::create(o).value();

  constexpr int kThreads = 4, kOps = 3000;
  std::atomic<int> corrupt{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) * 7919u);
      std::vector<DmaBuffer> live;
      for (int i = 0; i < kOps; ++i) {
        if (live.size() < 24 && rng() % 3 != 0) {
          const std::size_t size = 4096 * (1 + rng() % 48);
          auto b = pool.alloc_coherent(Device::on_node(static_cast<int>(rng() % 5) - 1, "t"), size);
          if (b.ok()) {
            // Stamp the buffer: a buffer shared with another thread's would be overwritten.
            std::memset(b->cpu(), t + 1, b->size());
            live.push_back(std::move(*b));
          }
        } else if (!live.empty()) {
          const std::size_t k = rng() % live.size();
          const auto* p = static_cast<const unsigned char*>(live[k].cpu());
          if (std::any_of(p, p + live[k].size(), [&](unsigned char c) { return c != t + 1; }))
            corrupt.fetch_add(1);
          if (!live[k].release().ok()) corrupt.fetch_add(1);
          live.erase(live.begin() + static_cast<long>(k));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(corrupt.load(), 0);
  const auto st = pool.stats();
  for (const auto& a : st.areas) {
    EXPECT_EQ(a.used, 0u) << a.name;
    EXPECT_EQ(a.maxchunk, a.pages) << a.name;
    EXPECT_EQ(a.alloc_pages_success, a.release_pages_success) << a.name;
  }
  EXPECT_EQ(st.pages_live, 0u);
  EXPECT_EQ(st.bad_frees, 0u);
}

TEST(PoolStress, DisjointDmaRangesAcrossLiveBuffers) {
  numacma::PoolOptions o;
  o.params = "cma=4M cma_pernuma=2M";
  o.backing = "sim";
  o.sysfs_root = std::string(NUMACMA_TEST_DATA) + "/arm64-4n";
  auto pool = Pool::create(o).value();
  std::vector<DmaBuffer> live;
  std::mt19937 rng(42);
  for (int i = 0; i < 400; ++i) {
    auto b = pool.alloc_coherent(Device::on_node(static_cast<int>(rng() % 4), "d"),
                                 4096 * (1 + rng() % 64));
    if (b.ok()) live.push_back(std::move(*b));
  }
  std::vector<std::pair<std::uint64_t, std::uint64_t>> r;
  for (const auto& b : live) r.emplace_back(b.dma_addr(), b.dma_addr() + b.pages() * 4096);
  std::sort(r.begin(), r.end());
  for (std::size_t i = 1; i < r.size(); ++i) EXPECT_LE(r[i - 1].second, r[i].first);
}
