// The Pool in vfio mode (vfio_pool_fixture.hpp) under threads: page and
// area buffers allocated and freed concurrently (also under TSan).
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "vfio_pool_fixture.hpp"

// ---- concurrency (TSan) -------------------------------------------------------------------------

TEST_F(VfioPool, ThreadsAllocatingAndFreeingPageAndAreaBuffers) {
  Pool pool = make("cma=4M cma_pernuma=4M", {{kDev0, k64}});
  // Areas are mapped from 2 MiB up: a device with a 21-bit mask gets every
  // multi-page buffer from pages, mapped below 2 MiB.
  ASSERT_TRUE(pool.vfio_attach({kLate, mask_of(21)}));
  auto wide = Device::from_vfio(kDev0, pool);
  auto narrow = Device::from_vfio(kLate, pool);
  ASSERT_TRUE(wide && narrow);
  const std::int64_t avail0 = fake_->dma_avail();
  const std::size_t areas = fake_->mappings().size();

  constexpr int kThreads = 4, kRounds = 300;
  std::atomic<int> failures{0}, served_pages{0}, served_area{0};
  std::vector<std::string> errors(kThreads);
  auto worker = [&](int t) {
    std::mt19937 rng(static_cast<unsigned>(t) * 7919u + 1);
    std::vector<std::pair<DmaBuffer, std::uint64_t>> live;  // buffer, stamp
    for (int i = 0; i < kRounds; ++i) {
      const bool use_narrow = rng() % 3 == 0;
      const Device& d = use_narrow ? *narrow : *wide;
      static constexpr std::size_t kSizes[] = {4096, 8192, 16 * 1024, 64 * 1024};
      const std::size_t bytes = kSizes[rng() % 4];
      auto b = pool.alloc_coherent(d, bytes);
      if (!b) {
        // The narrow device has 1 MiB of IOVA space; anything else is a bug.
        if (!(use_narrow && b.error().code == Errc::no_memory)) {
          errors[static_cast<std::size_t>(t)] = b.error().message;
          ++failures;
        }
      } else {
        if (b->dma_addr() + bytes - 1 > d.coherent_dma_mask || !b->contiguous()) ++failures;
        (b->served() == Served::pages ? served_pages : served_area)++;
        const std::uint64_t stamp = (static_cast<std::uint64_t>(t) << 32) | static_cast<std::uint64_t>(i);
        std::memcpy(b->cpu(), &stamp, sizeof stamp);
        std::memcpy(static_cast<char*>(b->cpu()) + bytes - sizeof stamp, &stamp, sizeof stamp);
        live.emplace_back(std::move(*b), stamp);
      }
      if (live.size() > 6 || (!live.empty() && rng() % 2 == 0)) {
        const std::size_t k = rng() % live.size();
        auto& [buf, stamp] = live[k];
        std::uint64_t head = 0, tail = 0;
        std::memcpy(&head, buf.cpu(), sizeof head);
        std::memcpy(&tail, static_cast<char*>(buf.cpu()) + buf.size() - sizeof tail, sizeof tail);
        if (head != stamp || tail != stamp) ++failures;  // two live buffers shared memory
        if (!buf.release()) ++failures;
        live.erase(live.begin() + static_cast<long>(k));
      }
    }
    for (auto& [buf, stamp] : live)
      if (!buf.release()) ++failures;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  // Meanwhile a device joins the container, and the reports are read.
  std::string attach_error;
  std::thread side([&] {
    for (int i = 0; i < 20; ++i) {
      if (i == 5) {
        if (auto s = pool.vfio_attach({kDev1, k64}); !s) attach_error = s.error().message;
      }
      const auto rep = pool.vfio_report();
      if (rep.mappings.size() < areas) ++failures;
      (void)pool.stats();
      std::this_thread::yield();
    }
  });
  for (auto& th : threads) th.join();
  side.join();
  EXPECT_TRUE(attach_error.empty()) << attach_error;
  EXPECT_EQ(pool.vfio_report().devices.size(), 3u);
  for (const auto& e : errors) EXPECT_TRUE(e.empty()) << e;
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(served_pages.load(), 0);
  EXPECT_GT(served_area.load(), 0);
  EXPECT_EQ(page_mappings(pool), 0u) << "no page buffer left mapped";
  EXPECT_EQ(fake_->mappings().size(), areas);
  EXPECT_EQ(fake_->dma_avail(), avail0);
  EXPECT_EQ(pool.stats().pages_live, 0u);
  expect_f3(pool);
}
