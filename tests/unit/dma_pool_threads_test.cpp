// DmaPool across threads (run under TSan by the test command): blocks freed
// by another thread than the one that allocated them, threads with their own
// blocks, threads swapping blocks every round, a racing double free that
// exactly one thread wins, and a thread's cache handed back when it exits.
// Every block is stamped by its holder and checked before it is freed: a
// block handed to two holders at once would show.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "numacma/numacma.hpp"

using numacma::Device;
using numacma::DmaBlock;
using numacma::DmaPool;
using numacma::Pool;

namespace {

Pool sim_pool() {
  numacma::PoolOptions o;
  o.params = "cma=16M cma_pernuma=8M";
  o.backing = "sim";
  o.sysfs_root = std::string(NUMACMA_TEST_DATA) + "/arm64-4n";
  return Pool::create(o).value();
}

void stamp(const DmaBlock& b, std::size_t size, unsigned char v) { std::memset(b.cpu(), v, size); }
bool stamped(const DmaBlock& b, std::size_t size, unsigned char v) {
  const auto* p = static_cast<const unsigned char*>(b.cpu());
  for (std::size_t i = 0; i < size; ++i)
    if (p[i] != v) return false;
  return true;
}

void expect_all_returned(Pool& pool, DmaPool& dp) {
  const auto st = dp.stats();
  EXPECT_EQ(st.blocks_live, 0u);
  EXPECT_EQ(st.bad_frees, 0u);
  ASSERT_TRUE(dp.destroy().ok());
  for (const auto& a : pool.stats().areas) EXPECT_EQ(a.used, 0u) << a.name;
  EXPECT_EQ(pool.stats().pages_live, 0u);
}

}  // namespace

TEST(DmaPoolThreads, FreedByAnotherThread) {
  Pool pool = sim_pool();
  constexpr std::size_t kSize = 96;
  auto dp = DmaPool::create(pool, Device::on_node(1, "nvme"), "prp", kSize, 32, 0).value();
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<DmaBlock, unsigned char>> q;
  bool done = false;
  std::atomic<int> bad{0};
  std::thread producer([&] {
    for (int i = 0; i < 20000; ++i) {
      auto b = dp.alloc();
      if (!b) {
        bad.fetch_add(1);
        continue;
      }
      const auto v = static_cast<unsigned char>(i);
      stamp(*b, kSize, v);
      std::lock_guard lk(mu);
      q.emplace_back(std::move(*b), v);
      cv.notify_one();
    }
    std::lock_guard lk(mu);
    done = true;
    cv.notify_one();
  });
  std::thread consumer([&] {
    for (;;) {
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return !q.empty() || done; });
      if (q.empty()) return;
      auto [b, v] = std::move(q.front());
      q.pop_front();
      lk.unlock();
      if (!stamped(b, kSize, v)) bad.fetch_add(1);
      if (!b.release()) bad.fetch_add(1);
    }
  });
  producer.join();
  consumer.join();
  EXPECT_EQ(bad.load(), 0);
  expect_all_returned(pool, dp);
}

TEST(DmaPoolThreads, OwnBlocksAndSwappedBlocks) {
  Pool pool = sim_pool();
  constexpr std::size_t kSize = 512, kLive = 256;
  auto dp = DmaPool::create(pool, Device::on_node(2, "nic"), "desc", kSize, 64, 4096).value();
  for (bool swap : {false, true}) {
    std::vector<DmaBlock> slots[2];
    std::barrier sync(2);
    std::atomic<int> bad{0};
    auto body = [&](int t) {
      std::mt19937 rng(static_cast<unsigned>(t + 1));
      int mine = t;
      for (int round = 0; round < 20; ++round) {
        auto& s = slots[mine];
        const auto owner = static_cast<unsigned char>(mine + 1);
        if (s.empty()) {
          for (std::size_t i = 0; i < kLive; ++i) {
            auto b = dp.alloc();
            if (!b) {
              bad.fetch_add(1);
              return;
            }
            stamp(*b, kSize, owner);
            s.push_back(std::move(*b));
          }
        }
        for (std::size_t n = 0; n < kLive; ++n) {
          DmaBlock& b = s[rng() % kLive];
          if (!stamped(b, kSize, owner)) bad.fetch_add(1);
          if (!b.release()) bad.fetch_add(1);
          auto nb = dp.alloc();
          if (!nb) {
            bad.fetch_add(1);
            return;
          }
          stamp(*nb, kSize, owner);
          b = std::move(*nb);
        }
        sync.arrive_and_wait();
        if (swap) {
          // Take the other thread's blocks: from now on each frees what the
          // other allocated, and re-stamps them as its own.
          mine = 1 - mine;
          sync.arrive_and_wait();
          for (auto& b : slots[mine]) stamp(b, kSize, static_cast<unsigned char>(mine + 1));
          sync.arrive_and_wait();
        }
      }
    };
    std::thread a(body, 0), b(body, 1);
    a.join();
    b.join();
    EXPECT_EQ(bad.load(), 0) << (swap ? "swapped" : "own");
    EXPECT_EQ(dp.stats().blocks_live, 2 * kLive);
    // Both threads exited: their caches were handed back (the main thread's,
    // from freeing the first case's blocks, is the one left in the second).
    EXPECT_EQ(dp.stats().threads, swap ? 1u : 0u);
    slots[0].clear();
    slots[1].clear();
  }
  expect_all_returned(pool, dp);
}

TEST(DmaPoolThreads, RacingDoubleFreeHasExactlyOneWinner) {
  Pool pool = sim_pool();
  auto dp = DmaPool::create(pool, Device::on_node(0, "d"), "race", 64, 64, 0).value();
  constexpr int kBlocks = 2000;
  std::vector<std::pair<void*, std::uint64_t>> blocks;
  for (int i = 0; i < kBlocks; ++i) {
    auto b = dp.alloc().value();
    blocks.emplace_back(b.cpu(), b.dma_addr());
    b.detach();
  }
  std::atomic<int> ok{0}, refused{0};
  std::barrier go(2);
  auto freer = [&] {
    go.arrive_and_wait();
    for (const auto& [cpu, dma] : blocks) (dp.free(cpu, dma).ok() ? ok : refused).fetch_add(1);
  };
  std::thread a(freer), b(freer);
  a.join();
  b.join();
  EXPECT_EQ(ok.load(), kBlocks);
  EXPECT_EQ(refused.load(), kBlocks);
  EXPECT_EQ(dp.stats().bad_frees, static_cast<std::uint64_t>(kBlocks));
  // Still sound: kBlocks fresh blocks are all distinct.
  std::vector<DmaBlock> again;
  std::vector<void*> seen;
  for (int i = 0; i < kBlocks; ++i) {
    again.push_back(dp.alloc().value());
    seen.push_back(again.back().cpu());
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end());
  again.clear();
  const auto st = dp.stats();
  EXPECT_EQ(st.blocks_live, 0u);
  ASSERT_TRUE(dp.destroy().ok());
  for (const auto& a : pool.stats().areas) EXPECT_EQ(a.used, 0u) << a.name;
}

TEST(DmaPoolThreads, ExitingThreadHandsItsCacheBack) {
  Pool pool = sim_pool();
  auto dp = DmaPool::create(pool, Device::on_node(3, "d"), "exit", 128, 0, 0).value();
  std::thread([&] {
    std::vector<DmaBlock> v;
    for (int i = 0; i < 100; ++i) v.push_back(dp.alloc().value());
    v.clear();  // into this thread's cache
    EXPECT_GE(dp.stats().blocks_cached, 100u);  // and what the refill brought
    EXPECT_EQ(dp.stats().threads, 1u);
  }).join();
  const auto st = dp.stats();
  EXPECT_EQ(st.threads, 0u);
  EXPECT_EQ(st.blocks_cached, 0u);
  EXPECT_EQ(st.blocks_free, st.pages * st.blocks_per_page);
  ASSERT_TRUE(dp.destroy().ok());
  for (const auto& a : pool.stats().areas) EXPECT_EQ(a.used, 0u) << a.name;
}
