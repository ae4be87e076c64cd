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

TEST(PoolStress, ThreadsShareTheNodesKeptPages) {
  // A3's kept pages (the shelf of each node, one lock): threads take and give
  // back single pages on the same two nodes, and free each other's by
  // address half of the time. Every page comes zeroed and is nobody else's
  // while it is held; at the end every page is accounted for.
  numacma::PoolOptions o;
  o.params = "cma=8M";
  o.backing = "sim";
  o.sysfs_root = std::string(NUMACMA_TEST_DATA) + "/arm64-4n";
  auto pool = Pool::create(o).value();

  constexpr int kThreads = 4, kOps = 4000;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t) * 104729u + 1);
      std::vector<DmaBuffer> live;
      for (int i = 0; i < kOps; ++i) {
        if (live.size() < 16 && rng() % 2 == 0) {
          const Device dev = Device::on_node(static_cast<int>(rng() % 2), "t");
          auto b = pool.alloc_coherent(dev, 1 + rng() % 4096);
          if (!b.ok()) {
            bad.fetch_add(1);
            continue;
          }
          const auto* p = static_cast<const unsigned char*>(b->cpu());
          if (std::any_of(p, p + 4096, [](unsigned char c) { return c != 0; })) bad.fetch_add(1);
          std::memset(b->cpu(), t + 1, 4096);
          live.push_back(std::move(*b));
        } else if (!live.empty()) {
          const std::size_t k = rng() % live.size();
          const auto* p = static_cast<const unsigned char*>(live[k].cpu());
          if (std::any_of(p, p + 4096, [&](unsigned char c) { return c != t + 1; })) bad.fetch_add(1);
          if (rng() % 2 == 0) {
            if (!live[k].release().ok()) bad.fetch_add(1);
          } else {  // given up by the handle, freed by address (as a C caller would)
            void* cpu = live[k].cpu();
            const std::uint64_t dma = live[k].dma_addr();
            const std::size_t size = live[k].size();
            const int node = live[k].node();
            live[k].detach();
            if (!pool.free_coherent(Device::on_node(node, "t"), size, cpu, dma).ok()) bad.fetch_add(1);
          }
          live.erase(live.begin() + static_cast<long>(k));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  const auto st = pool.stats();
  EXPECT_EQ(st.pages_live, 0u);
  EXPECT_EQ(st.bad_frees, 0u);
  std::uint64_t pages = 0, failed = 0;
  for (const auto& n : st.nodes) pages += n.pages, failed += n.failed;
  EXPECT_EQ(failed, 0u);
  EXPECT_GT(pages, 0u);
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
