// Many processes on one reserved pool: concurrent alloc/free on the same
// shared bitmaps with no overlap ever and counters that add up; and 1,000
// SIGKILLs at random moments (a quarter inside an update, holding the area
// lock) after which the keeper has repaired every area, the dead hold nothing
// and the living lost nothing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <random>

#include "numacma/numacma.hpp"
#include "numacma/shared.hpp"
#include "core/records.hpp"
#include "shared/testing.hpp"
#include "shared_test_util.hpp"

namespace numacma {
namespace {

using testing::ScopedRunDir;
using testing::sim_options;

/** A word per page of the buffer, and its last word: the owner's tag. */
void stamp(const DmaBuffer& b, std::uint32_t tag) {
  auto* w = static_cast<std::uint32_t*>(b.cpu());
  for (std::size_t p = 0; p < b.pages(); ++p) w[p * 1024] = tag;
  w[b.size() / 4 - 1] = tag;
}
bool stamped(const DmaBuffer& b, std::uint32_t tag) {
  const auto* w = static_cast<const std::uint32_t*>(b.cpu());
  for (std::size_t p = 0; p < b.pages(); ++p)
    if (w[p * 1024] != tag) return false;
  return w[b.size() / 4 - 1] == tag;
}

/** Every area's invariants, under its lock, seen from an attachment. */
void verify_all(const std::string& name) {
  Result<Pool> p = Pool::attach(name);
  ASSERT_TRUE(p.ok()) << p.error().message;
  Status s = shared::verify_for_testing(*p);
  EXPECT_TRUE(s.ok()) << s.error().message;
}

/** The keeper has given back what every dead process held: only `live`
 *  holders are left. */
void settle(const std::string& name, long live) {
  ASSERT_TRUE(testing::eventually([&] { return testing::holders_of(name) == live; }, 10000))
      << testing::holders_of(name) << " holders left";
}

struct Counts {
  std::uint64_t allocs[5];  // local, other_node, default, pages, failed
};

TEST(SharedProcesses, ConcurrentProcessesNeverOverlapAndCountersAddUp) {
  ScopedRunDir run;
  ReserveOptions o = sim_options("cma=32M cma_pernuma=8M");
  o.policy = Policy::nearest;
  ASSERT_TRUE(reserve("mp", o).ok());
  constexpr int kProcs = 4, kOps = 3000;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::vector<pid_t> kids;
  for (int id = 0; id < kProcs; ++id) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      int rc = 0;
      Counts c{};
      {
        Result<Pool> p = Pool::attach("mp");
        if (!p) ::_exit(10);
        std::mt19937 rng(static_cast<unsigned>(id) * 7919u + 1);
        std::vector<std::pair<DmaBuffer, std::uint32_t>> live;
        for (int op = 0; op < kOps && rc == 0; ++op) {
          if (live.size() >= 24 || (!live.empty() && rng() % 2 == 0)) {
            const std::size_t k = rng() % live.size();
            if (!stamped(live[k].first, live[k].second)) rc = 11;  // someone else wrote here
            if (!live[k].first.release().ok()) rc = 12;
            live.erase(live.begin() + static_cast<long>(k));
            continue;
          }
          const int node = static_cast<int>(rng() % 3) - 1;
          Result<DmaBuffer> b = p->alloc_coherent(Device::on_node(node), 4096 * (2 + rng() % 96));
          if (!b) {
            if (b.error().code != Errc::no_memory) rc = 13;
            ++c.allocs[4];
            continue;
          }
          ++c.allocs[b->served() == Served::local        ? 0
                     : b->served() == Served::other_node ? 1
                     : b->served() == Served::default_area ? 2
                                                           : 3];
          const std::uint32_t tag = static_cast<std::uint32_t>(id) << 24 | static_cast<std::uint32_t>(op);
          stamp(*b, tag);
          live.emplace_back(std::move(*b), tag);
        }
        for (auto& [b, tag] : live)
          if (!stamped(b, tag)) rc = 11;
      }  // every buffer freed, then detached
      (void)!::write(fds[1], &c, sizeof c);
      ::_exit(rc);
    }
    kids.push_back(pid);
  }
  Counts sum{};
  for (pid_t k : kids) {
    Counts c{};
    ASSERT_EQ(::read(fds[0], &c, sizeof c), static_cast<ssize_t>(sizeof c));
    for (int i = 0; i < 5; ++i) sum.allocs[i] += c.allocs[i];
    int st = 0;
    ::waitpid(k, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "child exit " << WEXITSTATUS(st);
  }
  ::close(fds[0]);
  ::close(fds[1]);
  settle("mp", 0);
  verify_all("mp");
  Result<PoolStatus> st = status("mp");
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(st->holders.empty());
  std::uint64_t areas_ok = 0;
  for (const SharedAreaStatus& a : st->areas) {  // F3: every area whole again
    EXPECT_EQ(a.area.used, 0u) << a.area.name;
    EXPECT_EQ(a.area.alloc_pages_success, a.area.release_pages_success) << a.area.name;
    EXPECT_EQ(a.area.maxchunk, a.longest_segment) << a.area.name;
    areas_ok += a.area.alloc_pages_success;
  }
  EXPECT_GT(areas_ok, 0u);
  Counts shared{};
  for (const SharedNodeStatus& n : st->nodes) {
    shared.allocs[0] += n.alloc.local;
    shared.allocs[1] += n.alloc.other_node;
    shared.allocs[2] += n.alloc.default_area;
    shared.allocs[3] += n.alloc.pages;
    shared.allocs[4] += n.alloc.failed;
  }
  for (int i = 0; i < 5; ++i) EXPECT_EQ(shared.allocs[i], sum.allocs[i]) << "bucket " << i;
}

// The kill test's children stop for good, inside an update and holding the
// area lock, at a point chosen at random; the parent's SIGKILL finds them there.
std::atomic<std::uint64_t>* g_parked = nullptr;
int g_park_point = 0;
int g_park_after = 0;

void park_hook(int point) {
  if (point != g_park_point || --g_park_after > 0) return;
  g_parked->fetch_add(1);
  for (;;) ::pause();
}

// A kill at each point of an update (alloc and release alike): the keeper,
// seeing the process gone, takes its lock over and completes the update from
// the journal, then gives the dead holder's buffers back, including the one
// in flight.
TEST(SharedProcesses, AKillAtEachPointOfAnUpdateIsRepaired) {
  void* m = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  g_parked = new (m) std::atomic<std::uint64_t>(0);
  for (int point = 1; point <= 3; ++point) {
    for (int update = 1; update <= 4; ++update) {  // updates 1, 2, 4 allocate; 3 releases
      ScopedRunDir run;
      ASSERT_TRUE(reserve("pt", sim_options("cma=16M")).ok());
      const std::uint64_t before = g_parked->load();
      const pid_t pid = ::fork();
      if (pid == 0) {
        g_park_point = point;
        g_park_after = update;
        core::set_update_hook_for_testing(park_hook);
        Result<Pool> p = Pool::attach("pt");
        if (!p) ::_exit(1);
        for (;;) {
          Result<DmaBuffer> b = p->alloc_coherent(Device::on_node(0), 3 * 4096);
          Result<DmaBuffer> keep = p->alloc_coherent(Device::on_node(0), 5 * 4096);
          keep->detach();  // held when it dies
        }
      }
      while (g_parked->load() == before) ::usleep(100);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      settle("pt", 0);
      verify_all("pt");
      Result<PoolStatus> st = status("pt");
      EXPECT_EQ(st->areas[0].area.used, 0u) << "point " << point << " update " << update;
      EXPECT_EQ(st->areas[0].area.alloc_pages_success, st->areas[0].area.release_pages_success);
      EXPECT_EQ(st->areas[0].recoveries, 1u);
    }
  }
  ::munmap(m, 4096);
}

TEST(SharedProcesses, AThousandKillsLeaveWholeAreasAndTheLivingIntact) {
  ScopedRunDir run;
  ASSERT_TRUE(reserve("kill", sim_options("cma=32M cma_pernuma=16M")).ok());
  // The parent holds buffers throughout; none may be touched or reclaimed.
  Result<Pool> mine = Pool::attach("kill");
  ASSERT_TRUE(mine.ok());
  std::vector<DmaBuffer> held;
  for (int i = 0; i < 6; ++i) {
    Result<DmaBuffer> b = mine->alloc_coherent(Device::on_node(i % 2), 4096 * (3 + i));
    ASSERT_TRUE(b.ok());
    stamp(*b, 0xabc00000u + i);
    held.push_back(std::move(*b));
  }
  void* m = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  g_parked = new (m) std::atomic<std::uint64_t>(0);

  constexpr int kKills = 1000, kLive = 4;
  std::mt19937 rng(12345);
  std::vector<pid_t> kids(kLive, -1);
  const auto start = [&](int seed) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      std::mt19937 r(static_cast<unsigned>(seed));
      if (r() % 4 == 0) {  // a quarter park inside an update
        g_park_point = 1 + static_cast<int>(r() % 3);
        g_park_after = 1 + static_cast<int>(r() % 10);
        core::set_update_hook_for_testing(park_hook);
      }
      Result<Pool> p = Pool::attach("kill");
      if (!p) ::_exit(1);
      std::vector<DmaBuffer> live;
      for (;;) {
        if (live.size() >= 16 || (!live.empty() && r() % 2 == 0)) {
          const std::size_t k = r() % live.size();
          (void)live[k].release();
          live.erase(live.begin() + static_cast<long>(k));
        } else if (Result<DmaBuffer> b =
                       p->alloc_coherent(Device::on_node(static_cast<int>(r() % 3) - 1), 4096 * (2 + r() % 64))) {
          live.push_back(std::move(*b));
        }
      }
    }
    return pid;
  };
  for (int i = 0; i < kLive; ++i) kids[static_cast<std::size_t>(i)] = start(i);
  for (int k = 0; k < kKills; ++k) {
    timespec ts{0, static_cast<long>(rng() % 1500) * 1000};
    ::nanosleep(&ts, nullptr);
    const std::size_t victim = rng() % kLive;
    ::kill(kids[victim], SIGKILL);
    ::waitpid(kids[victim], nullptr, 0);
    kids[victim] = start(kKills + k);
  }
  for (pid_t p : kids) {
    ::kill(p, SIGKILL);
    ::waitpid(p, nullptr, 0);
  }
  const std::uint64_t parked = g_parked->load();
  settle("kill", 1);
  Result<ReapReport> r = reap("kill");
  ASSERT_TRUE(r.ok()) << r.error().message;
  verify_all("kill");
  Result<PoolStatus> st = status("kill");
  ASSERT_TRUE(st.ok());
  ASSERT_EQ(st->holders.size(), 1u);  // only the parent is left (verify_all's attachment is gone)
  EXPECT_EQ(st->holders[0].pid, ::getpid());
  std::uint64_t recoveries = 0, held_pages = 0;
  for (const SharedAreaStatus& a : st->areas) {
    recoveries += a.recoveries;
    for (const SharedRun& run : a.runs) {
      EXPECT_EQ(run.holder, 0);
      held_pages += run.pages;
    }
  }
  EXPECT_GT(parked, 0u);
  EXPECT_GE(recoveries, parked) << "each parked child died holding a lock";
  std::uint64_t want = 0;
  for (std::size_t i = 0; i < held.size(); ++i) {
    EXPECT_TRUE(stamped(held[i], 0xabc00000u + static_cast<std::uint32_t>(i))) << i;
    want += held[i].pages();
  }
  EXPECT_EQ(held_pages, want);
  for (DmaBuffer& b : held) EXPECT_TRUE(b.release().ok());
  st = status("kill");
  for (const SharedAreaStatus& a : st->areas) {
    EXPECT_EQ(a.area.used, 0u) << a.area.name;
    EXPECT_EQ(a.area.maxchunk, a.longest_segment) << a.area.name;
    EXPECT_EQ(a.area.alloc_pages_success, a.area.release_pages_success) << a.area.name;
  }
  std::printf("kills %d, parked inside an update %llu, updates completed by the keeper %llu\n", kKills,
              (unsigned long long)parked, (unsigned long long)recoveries);
  ::munmap(m, 4096);
}

}  // namespace
}  // namespace numacma
