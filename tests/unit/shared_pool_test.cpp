// Reserved pools (numacma/shared.hpp): attach gives the same decisions as a
// private pool; holders free only their own buffers; a dead process's buffers
// come back as soon as it is gone (the keeper sees its connection close);
// release refuses while a live process holds buffers; the memory is a sealed
// file with no name. (Attacks on the pool: shared_attack_*_test.cpp.)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "numacma/numacma.h"
#include "numacma/numacma.hpp"
#include "numacma/shared.hpp"
#include "shared_test_util.hpp"

namespace numacma {
namespace {

using testing::ScopedRunDir;
using testing::sim_options;

using testing::spawn;
using testing::wait_exit;

TEST(SharedPool, AttachedPoolDecidesExactlyAsAPrivateOne) {
  ScopedRunDir run;
  const std::string params = "cma=32M cma_pernuma=8M numa_cma=1:4M";
  ASSERT_TRUE(reserve("same", sim_options(params)).ok());
  PoolOptions po;
  po.params = params;
  po.backing = "sim";
  po.sysfs_root = testing::fixture();
  Result<Pool> priv = Pool::create(po);
  Result<Pool> att = Pool::attach("same");
  ASSERT_TRUE(priv.ok() && att.ok()) << (att ? "" : att.error().message);
  std::mt19937 rng(7);
  std::vector<DmaBuffer> a, b;
  for (int i = 0; i < 3000; ++i) {
    if (!a.empty() && rng() % 3 == 0) {
      const std::size_t k = rng() % a.size();
      ASSERT_TRUE(a[k].release().ok());
      ASSERT_TRUE(b[k].release().ok());
      a.erase(a.begin() + static_cast<long>(k));
      b.erase(b.begin() + static_cast<long>(k));
      continue;
    }
    const int node = static_cast<int>(rng() % 3) - 1;
    const std::size_t bytes = 4096 * (1 + rng() % 700);
    const std::uint64_t mask = rng() % 8 == 0 ? 0xffffffffULL : ~0ULL;
    Device d = Device::on_node(node, "d", mask);
    Result<DmaBuffer> x = priv->alloc_coherent(d, bytes);
    Result<DmaBuffer> y = att->alloc_coherent(d, bytes);
    ASSERT_EQ(x.ok(), y.ok()) << i;
    if (!x) {
      EXPECT_EQ(x.error().code, y.error().code);
      continue;
    }
    ASSERT_EQ(x->area_name(), y->area_name()) << i;
    if (x->area_name() != "pages") ASSERT_EQ(x->dma_addr(), y->dma_addr()) << i;
    ASSERT_EQ(x->served(), y->served());
    a.push_back(std::move(*x));
    b.push_back(std::move(*y));
  }
  const Stats sp = priv->stats(), sa = att->stats();
  ASSERT_EQ(sp.areas.size(), sa.areas.size());
  for (std::size_t i = 0; i < sp.areas.size(); ++i) {
    EXPECT_EQ(sp.areas[i].used, sa.areas[i].used);
    EXPECT_EQ(sp.areas[i].maxchunk, sa.areas[i].maxchunk);
    EXPECT_EQ(sp.areas[i].alloc_pages_success, sa.areas[i].alloc_pages_success);
    EXPECT_EQ(sp.areas[i].alloc_pages_fail, sa.areas[i].alloc_pages_fail);
    EXPECT_EQ(sp.areas[i].release_pages_success, sa.areas[i].release_pages_success);
  }
}

TEST(SharedPool, TwoAttachmentsShareTheAreasAndFreeOnlyTheirOwn) {
  ScopedRunDir run;
  ASSERT_TRUE(reserve("two", sim_options("cma=16M cma_pernuma=8M")).ok());
  Result<Pool> p1 = Pool::attach("two"), p2 = Pool::attach("two");
  ASSERT_TRUE(p1.ok() && p2.ok());
  const Device dev = Device::on_node(1);
  Result<DmaBuffer> b1 = p1->alloc_coherent(dev, 65536);
  Result<DmaBuffer> b2 = p2->alloc_coherent(dev, 65536);
  ASSERT_TRUE(b1.ok() && b2.ok());
  EXPECT_EQ(b1->area_name(), "pernuma1");
  EXPECT_EQ(b2->dma_addr(), b1->dma_addr() + 65536);  // the next fit: p1's buffer is seen
  // p2 names p1's buffer (its own mapping of the same page): refused.
  auto* p1_in_p2 = static_cast<char*>(b2->cpu()) - 65536;
  Status s = p2->free_coherent(dev, 65536, p1_in_p2, b1->dma_addr());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Errc::bad_free);
  EXPECT_NE(s.error().message.find("held by pid " + std::to_string(::getpid()) + " ("), std::string::npos)
      << s.error().message;
  // The same memory, seen through both mappings.
  std::memset(b1->cpu(), 0x5a, 65536);
  EXPECT_EQ(static_cast<unsigned char>(p1_in_p2[100]), 0x5a);
  // Detaching gives its buffers back, the reservation stays.
  b2->detach();
  Result<DmaBuffer> b3 = p2->alloc_coherent(dev, 3 * 4096);
  ASSERT_TRUE(b3.ok());
  b3->detach();
  EXPECT_EQ(p1->stats().areas[2].used, 16u + 16u + 3u);
  p2 = make_error(Errc::not_found, "gone");  // the Pool is destroyed: detach
  EXPECT_EQ(p1->stats().areas[2].used, 16u);
  Result<PoolStatus> st = status("two");
  ASSERT_TRUE(st.ok());
  ASSERT_EQ(st->holders.size(), 1u);
  EXPECT_EQ(st->holders[0].pid, ::getpid());
  EXPECT_TRUE(st->holders[0].alive);
  ASSERT_EQ(st->holders[0].pages.size(), 1u);
  EXPECT_EQ(st->holders[0].pages[0], (std::pair<std::string, std::uint64_t>{"pernuma1", 16}));
}

TEST(SharedPool, ThreadsOfOneProcessShareAnAttachment) {
  ScopedRunDir run;
  ASSERT_TRUE(reserve("thr", sim_options("cma=32M cma_pernuma=8M")).ok());
  Result<Pool> p = Pool::attach("thr"), q = Pool::attach("thr");
  ASSERT_TRUE(p.ok() && q.ok());
  std::vector<std::thread> ts;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      Pool& pool = t % 2 == 0 ? *p : *q;
      std::mt19937 rng(static_cast<unsigned>(t));
      std::vector<DmaBuffer> live;
      for (int i = 0; i < 2000; ++i) {
        if (!live.empty() && (live.size() > 16 || rng() % 2 == 0)) {
          const std::size_t k = rng() % live.size();
          if (*static_cast<int*>(live[k].cpu()) != t * 100000 + static_cast<int>(k)) ++bad;
          if (!live[k].release().ok()) ++bad;
          live.erase(live.begin() + static_cast<long>(k));
          for (std::size_t j = k; j < live.size(); ++j) *static_cast<int*>(live[j].cpu()) = t * 100000 + static_cast<int>(j);
          continue;
        }
        Result<DmaBuffer> b = pool.alloc_coherent(Device::on_node(static_cast<int>(rng() % 2)), 4096 * (2 + rng() % 30));
        if (!b) continue;
        *static_cast<int*>(b->cpu()) = t * 100000 + static_cast<int>(live.size());
        live.push_back(std::move(*b));
        (void)pool.stats();
      }
    });
  }
  for (auto& th : ts) th.join();
  EXPECT_EQ(bad.load(), 0);
  for (const AreaReport& a : p->stats().areas) EXPECT_EQ(a.used, 0u) << a.name;
}

TEST(SharedPool, ADeadProcessesBuffersComeBackAtOnce) {
  ScopedRunDir run;
  ASSERT_TRUE(reserve("reap", sim_options("cma=16M cma_pernuma=8M")).ok());
  int up[2];
  ASSERT_EQ(::pipe(up), 0);
  const pid_t child = spawn([&] {
    Result<Pool> p = Pool::attach("reap");
    if (!p) return 2;
    for (int i = 0; i < 5; ++i) {
      Result<DmaBuffer> b = p->alloc_coherent(Device::on_node(0), 8192);
      if (!b) return 3;
      b->detach();
    }
    (void)!::write(up[1], "y", 1);
    for (;;) ::pause();
  });
  char c = 0;
  ASSERT_EQ(::read(up[0], &c, 1), 1);
  Result<PoolStatus> before = status("reap");
  ASSERT_TRUE(before.ok()) << before.error().message;
  ASSERT_EQ(before->holders.size(), 1u);
  EXPECT_TRUE(before->holders[0].alive);
  EXPECT_EQ(before->holders[0].pid, child);
  EXPECT_EQ(before->holders[0].buffers, 5u);
  ::kill(child, SIGKILL);  // no destructor, no detach: as after a crash
  wait_exit(child);
  // The kernel closes its connection; the keeper gives its buffers back.
  ASSERT_TRUE(testing::eventually([] { return testing::holders_of("reap") == 0; }));
  Result<PoolStatus> after = status("reap");
  ASSERT_TRUE(after.ok());
  for (const SharedAreaStatus& a : after->areas) {
    EXPECT_EQ(a.area.used, 0u) << a.area.name;
    EXPECT_EQ(a.area.alloc_pages_success, a.area.release_pages_success);
  }
  EXPECT_EQ(after->areas[1].reaped_pages, 10u);  // pernuma0
  Result<ReapReport> r = reap("reap");  // nothing is left to reap
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->buffers, 0u);
  ::close(up[0]), ::close(up[1]);
}

TEST(SharedPool, AnAllocationThatWouldFailReapsTheDeadFirst) {
  ScopedRunDir run;
  ASSERT_TRUE(reserve("full", sim_options("cma=8M")).ok());
  const pid_t child = spawn([] {
    Result<Pool> p = Pool::attach("full");
    if (!p) return 2;
    Result<DmaBuffer> b = p->alloc_coherent(Device::on_node(0), 8 << 20);  // the whole area
    if (!b || b->area_name() != "reserved") return 3;
    ::_exit(0);  // dies holding the whole area
  });
  Result<Pool> p = Pool::attach("full");  // attached before the child dies: no reap at attach
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(wait_exit(child), 0);
  // 8 MiB: the area is the only way (ordinary pages give at most 4 MiB).
  Result<DmaBuffer> b = p->alloc_coherent(Device::on_node(0), 8 << 20);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->area_name(), "reserved");
  EXPECT_EQ(p->stats().nodes[1].failed, 0u);
  Result<PoolStatus> st = status("full");
  EXPECT_EQ(st->areas[0].reaped_pages, 2048u);
}

TEST(SharedPool, ReleaseIsRefusedWhileALiveProcessHoldsBuffers) {
  ScopedRunDir run;
  ASSERT_TRUE(reserve("busy", sim_options("cma=16M")).ok());
  int up[2], down[2];
  ASSERT_EQ(::pipe(up), 0);
  ASSERT_EQ(::pipe(down), 0);
  const pid_t child = spawn([&] {
    Result<Pool> p = Pool::attach("busy");
    Result<DmaBuffer> b = p ? p->alloc_coherent(Device::on_node(0), 65536) : make_error(Errc::io_error, "");
    const char ok = b ? 'y' : 'n';
    (void)!::write(up[1], &ok, 1);
    char c;
    (void)!::read(down[0], &c, 1);  // hold until told
    return 0;
  });
  char c = 0;
  ASSERT_EQ(::read(up[0], &c, 1), 1);
  ASSERT_EQ(c, 'y');
  Status s = release("busy");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Errc::busy);
  EXPECT_NE(s.error().message.find("pid " + std::to_string(child)), std::string::npos) << s.error().message;
  ::kill(child, SIGKILL);
  wait_exit(child);
  EXPECT_TRUE(release("busy").ok());  // its holder is dead now
  EXPECT_EQ(release("busy").error().code, Errc::not_found);
  EXPECT_EQ(Pool::attach("busy").error().code, Errc::not_found);
  // --force frees it while a live process still holds buffers.
  ASSERT_TRUE(reserve("busy", sim_options("cma=16M")).ok());
  Result<Pool> p = Pool::attach("busy");
  Result<DmaBuffer> b = p->alloc_coherent(Device::on_node(0), 65536);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(release("busy").error().code, Errc::busy);
  EXPECT_TRUE(release("busy", true).ok());
  ::close(up[0]), ::close(up[1]), ::close(down[0]), ::close(down[1]);
}

TEST(SharedPool, ReserveRefusesATakenNameAndBadInput) {
  ScopedRunDir run;
  ASSERT_TRUE(reserve("x", sim_options("cma=16M")).ok());
  EXPECT_EQ(reserve("x", sim_options("cma=16M")).error().code, Errc::busy);
  EXPECT_EQ(reserve("bad/name", sim_options("cma=16M")).error().code, Errc::invalid_argument);
  EXPECT_EQ(reserve("y", sim_options("cma=12Q")).error().code, Errc::invalid_argument);
  ReserveOptions o = sim_options("cma=16M");
  o.group = "no-such-group-numacma";
  EXPECT_EQ(reserve("y", o).error().code, Errc::not_found);
  o = sim_options("cma=16M");
  o.backing = "sideways";
  EXPECT_EQ(reserve("y", o).error().code, Errc::invalid_argument);
  Result<std::vector<std::string>> names = reserved_pools();
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"x"});
}

TEST(SharedPool, AnAnonReservationIsShmemBoundToItsNodeWithNoName) {
  ScopedRunDir run;
  ReserveOptions o;
  o.params = "cma=8M";
  o.backing = "anon";
  Result<std::vector<ReservationNote>> r = reserve("anon", o);
  if (!r && (r.error().code == Errc::permission || r.error().code == Errc::unsupported))
    GTEST_SKIP() << r.error().message;
  ASSERT_TRUE(r.ok()) << r.error().message;
  Result<Pool> p = Pool::attach("anon"), q = Pool::attach("anon");
  ASSERT_TRUE(p.ok() && q.ok()) << (p ? q.error().message : p.error().message);
  EXPECT_EQ(p->dma_mode(), "iova");
  Result<DmaBuffer> a = p->alloc_coherent(Device::on_node(0), 65536);
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_TRUE(a->iova());
  EXPECT_EQ(a->dma_addr() % 65536, 0u);
  std::memset(a->cpu(), 0x3c, 65536);
  // The same pages through the other attachment's mapping, at the same IOVA offset.
  Result<DmaBuffer> b = q->alloc_coherent(Device::on_node(0), 65536);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->dma_addr(), a->dma_addr() + 65536);
  const auto* same = static_cast<const unsigned char*>(b->cpu()) - 65536;
  EXPECT_EQ(same[0], 0x3c);
  EXPECT_EQ(same[65535], 0x3c);
  Result<PoolStatus> st = status("anon");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->areas[0].area.backing, "anon");
  EXPECT_TRUE(st->areas[0].area.iova);
  // No file of the pool in /dev/shm, nor anywhere: nothing to squat or replace.
  for (const auto& e : std::filesystem::directory_iterator("/dev/shm"))
    EXPECT_EQ(e.path().filename().string().rfind("numacma.anon.", 0), std::string::npos) << e.path();
  std::vector<std::string> in_dir;
  for (const auto& e : std::filesystem::directory_iterator(run.dir() + "/pools/anon"))
    in_dir.push_back(e.path().filename().string());
  EXPECT_EQ(in_dir, std::vector<std::string>{"sock"});
  a = DmaBuffer();
  b = DmaBuffer();
  p = make_error(Errc::not_found, "");
  q = make_error(Errc::not_found, "");
  EXPECT_TRUE(release("anon").ok());
  EXPECT_FALSE(std::filesystem::exists(run.dir() + "/pools/anon"));
}

TEST(SharedPool, AForkedChildIsNotItsParentsHolder) {
  ScopedRunDir run;
  ASSERT_TRUE(reserve("fork", sim_options("cma=16M")).ok());
  Result<Pool> p = Pool::attach("fork");
  ASSERT_TRUE(p.ok());
  Result<DmaBuffer> b = p->alloc_coherent(Device::on_node(0), 65536);
  ASSERT_TRUE(b.ok());
  const pid_t child = spawn([&] {
    // The inherited attachment neither allocates nor frees for the parent...
    Result<DmaBuffer> c = p->alloc_coherent(Device::on_node(0), 65536);
    if (c || c.error().code != Errc::invalid_argument) return 1;
    if (b->release().ok()) return 2;
    // ...and a normal exit (destructors run) does not detach the parent's slot.
    p = make_error(Errc::not_found, "");
    Result<Pool> own = Pool::attach("fork");  // the child's own attachment works
    if (!own) return 3;
    Result<DmaBuffer> d = own->alloc_coherent(Device::on_node(0), 65536);
    return d ? 0 : 4;
  });
  ASSERT_EQ(wait_exit(child), 0);
  ASSERT_TRUE(testing::eventually([] { return testing::holders_of("fork") == 1; }));
  Result<PoolStatus> st = status("fork");
  ASSERT_TRUE(st.ok());
  ASSERT_EQ(st->holders.size(), 1u);  // the parent; the child detached its own
  EXPECT_EQ(st->holders[0].pid, ::getpid());
  EXPECT_EQ(st->holders[0].buffers, 1u);
  EXPECT_TRUE(b->release().ok());
}

// A3's single page in an attached pool takes the fast path of a private
// pool's (the node's last freed page, this process's own memory): the same
// page comes back zeroed and counted, and a forked child's inherited
// attachment is still refused on that path.
TEST(SharedPool, AnAttachedPoolsKeptPageComesBackZeroedAndCounted) {
  ScopedRunDir run;
  ASSERT_TRUE(reserve("kept", sim_options("cma=16M")).ok());
  Result<Pool> p = Pool::attach("kept");
  ASSERT_TRUE(p.ok());
  const Device dev = Device::on_node(0);
  void* at = nullptr;
  {
    Result<DmaBuffer> b = p->alloc_coherent(dev, 4096);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b->served(), Served::pages);
    at = b->cpu();
    std::memset(b->cpu(), 0x5a, 4096);
  }
  Result<DmaBuffer> again = p->alloc_coherent(dev, 4096);
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->cpu(), at) << "the kept page comes back, or the test proves nothing";
  const auto* c = static_cast<const unsigned char*>(again->cpu());
  EXPECT_EQ(std::count(c, c + 4096, 0), 4096) << "a kept page is zeroed";
  const Stats st = p->stats();
  std::uint64_t pages = 0;
  for (const NodeReport& n : st.nodes) pages += n.pages;
  EXPECT_EQ(pages, 2u);
  EXPECT_EQ(st.pages_live, 1u);
  ASSERT_TRUE(again->release().ok());
  const pid_t child = spawn([&] {
    Result<DmaBuffer> k = p->alloc_coherent(dev, 4096);  // the kept page is there: still refused
    return !k && k.error().code == Errc::invalid_argument ? 0 : 1;
  });
  EXPECT_EQ(wait_exit(child), 0);
}

// A9's counters are striped by holder in the state file (no line passed
// between processes that allocate at once): each attachment counts into its
// own stripe, and every reader (Pool::stats, status) sees the sum.
TEST(SharedPool, EveryReaderSeesTheCountersOfEveryHolderSummed) {
  ScopedRunDir run;
  ASSERT_TRUE(reserve("ctr", sim_options("cma=16M cma_pernuma=8M")).ok());
  Result<Pool> a = Pool::attach("ctr");
  Result<Pool> b = Pool::attach("ctr");
  ASSERT_TRUE(a.ok() && b.ok());
  std::vector<DmaBuffer> keep;
  const auto take = [&keep](Pool& p, int node, std::size_t bytes) {
    Result<DmaBuffer> r = p.alloc_coherent(Device::on_node(node), bytes);
    ASSERT_TRUE(r.ok()) << r.error().message;
    keep.push_back(std::move(*r));
  };
  for (int i = 0; i < 3; ++i) take(*a, 1, 65536);
  for (int i = 0; i < 2; ++i) take(*b, 1, 65536);
  take(*b, 0, 65536);
  take(*b, 1, 4096);
  for (const Pool* p : {&*a, &*b}) {
    const Stats st = p->stats();
    ASSERT_GE(st.nodes.size(), 2u);
    EXPECT_EQ(st.nodes[1].node, 1);
    EXPECT_EQ(st.nodes[1].local, 5u);
    EXPECT_EQ(st.nodes[1].pages, 1u);
    EXPECT_EQ(st.nodes[0].local, 1u);
  }
  Result<PoolStatus> st = status("ctr");
  ASSERT_TRUE(st.ok());
  std::uint64_t local1 = 0, pages1 = 0, local0 = 0;
  for (const SharedNodeStatus& n : st->nodes) {
    if (n.alloc.node == 1) local1 = n.alloc.local, pages1 = n.alloc.pages;
    if (n.alloc.node == 0) local0 = n.alloc.local;
  }
  EXPECT_EQ(local1, 5u);
  EXPECT_EQ(pages1, 1u);
  EXPECT_EQ(local0, 1u);
}

// A child forked by a holder that outlives it does not keep the holder's
// buffers held: its copy of the keeper connection is closed at the fork.
TEST(SharedPool, AHolderThatDiesIsReapedThoughItsForkedChildLivesOn) {
  ScopedRunDir run;
  ASSERT_TRUE(reserve("orphan", sim_options("cma=16M")).ok());
  int up[2];
  ASSERT_EQ(::pipe(up), 0);
  const pid_t holder = spawn([&] {
    Result<Pool> p = Pool::attach("orphan");
    if (!p) return 2;
    Result<DmaBuffer> b = p->alloc_coherent(Device::on_node(0), 65536);
    if (!b) return 3;
    b->detach();
    const pid_t grandchild = ::fork();
    if (grandchild == 0) {
      ::close(up[1]);
      const int null = ::open("/dev/null", O_WRONLY);  // not ctest's output pipe: this one lives on
      ::dup2(null, 1), ::dup2(null, 2);
      for (;;) ::pause();  // lives on, never touching the pool
    }
    (void)!::write(up[1], &grandchild, sizeof grandchild);
    ::_exit(0);
  });
  ::close(up[1]);
  pid_t grandchild = -1;
  ASSERT_EQ(::read(up[0], &grandchild, sizeof grandchild), static_cast<ssize_t>(sizeof grandchild));
  ASSERT_EQ(wait_exit(holder), 0);
  EXPECT_TRUE(testing::eventually([] { return testing::holders_of("orphan") == 0; }));
  Result<PoolStatus> st = status("orphan");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->areas[0].area.used, 0u);
  ::kill(grandchild, SIGKILL);
  ::close(up[0]);
}

TEST(SharedPool, CApiAttachAllocFreeDetach) {
  ScopedRunDir run;
  ASSERT_TRUE(reserve("c", sim_options("cma=16M cma_pernuma=8M")).ok());
  EXPECT_EQ(ncma_pool_attach("nope"), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_ENOENT);
  ncma_pool* p = ncma_pool_attach("c");
  ASSERT_NE(p, nullptr) << ncma_last_error_message();
  ncma_device* d = ncma_device_node(1, "dev");
  uint64_t dma = 0;
  void* cpu = ncma_alloc_coherent(p, d, 65536, &dma);
  ASSERT_NE(cpu, nullptr);
  ncma_pool* q = ncma_pool_attach("c");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(ncma_free_coherent(q, d, 65536, cpu, dma), NCMA_EBADFREE);  // not q's mapping, nor its buffer
  void* cpu2 = ncma_alloc_coherent(p, d, 65536, &dma);
  ASSERT_NE(cpu2, nullptr);
  ncma_pool_destroy(p);  // detaches: both buffers go back
  Result<PoolStatus> st = status("c");
  for (const SharedAreaStatus& a : st->areas) EXPECT_EQ(a.area.used, 0u);
  ncma_pool_destroy(q);
  ncma_device_destroy(d);
  EXPECT_STREQ(ncma_strerror(NCMA_ECORRUPT), "corrupt");
}

}  // namespace
}  // namespace numacma
