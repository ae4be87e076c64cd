// Shared pools tried as an attacker would (shared_attack_util.hpp lists the
// findings), 1-4: the state is hostile input and the files cannot be
// resized; a live holder in another PID namespace is never reaped; corrupt
// records are dropped; a stopped holder makes others wait a bounded time.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>

#include "shared_attack_util.hpp"

namespace numacma {
namespace {

// ---- 1. the state is hostile input; the files cannot be resized ----------------

/** What a hostile member of the group does with an attachment: every byte of
 *  the state rewritten (random, then the fields that matter made extreme). */
void scribble(const Pool& p, unsigned seed) {
  auto [base, bytes] = shared::state_for_testing(p);
  ASSERT_NE(base, nullptr);
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i + 8 <= bytes; i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(base + i, &v, 8);
  }
}

TEST(SharedAttack, AHostileStateMakesNoProcessTouchAFileCrashOrHang) {
  ScopedRunDir run;
  Victim victim;
  ASSERT_TRUE(reserve("hostile", sim_options("cma=16M cma_pernuma=8M")).ok());
  AttachOptions ao;
  ao.timeout_ms = 100;
  for (unsigned seed = 1; seed <= 8; ++seed) {
    Result<Pool> p = Pool::attach("hostile", ao);  // an honest process, attached throughout
    ASSERT_TRUE(p.ok()) << p.error().message;
    std::vector<DmaBuffer> mine;
    for (int i = 0; i < 8; ++i)
      if (Result<DmaBuffer> b = p->alloc_coherent(Device::on_node(i % 2), 4096 * (2 + i))) mine.push_back(std::move(*b));
    {
      Result<Pool> attacker = Pool::attach("hostile", ao);
      ASSERT_TRUE(attacker.ok()) << attacker.error().message;
      scribble(*attacker, seed);
      // Half the time the locks are left free, so that the others run their
      // allocator over the garbage (else every lock is held by a made-up owner).
      if (seed % 2 == 0)
        for (std::uint32_t a = 0; a < 3; ++a) *shared::lock_word_for_testing(*attacker, a) = 0;
      // Whatever it wrote, every other process gets answers, in bounded time,
      // and writes only into the pool's own memory.
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < 16; ++i) {
        Result<DmaBuffer> b = p->alloc_coherent(Device::on_node(i % 2), 4096 * (1 + i % 9));
        if (b) std::memset(b->cpu(), 0x77, b->size());
      }
      for (DmaBuffer& b : mine) (void)b.release();
      (void)p->stats();
      (void)status("hostile");
      (void)reap("hostile");
      EXPECT_LT(ms_since(t0), 60000) << "seed " << seed;
    }  // the attacker goes: the keeper repairs what it can
    Result<PoolStatus> st = status("hostile");
    EXPECT_TRUE(st.ok()) << st.error().message;
  }
  // Once no attacker is left, the pool is whole again.
  ASSERT_TRUE(testing::eventually([] { return testing::holders_of("hostile") == 0; }));
  ASSERT_TRUE(reap("hostile").ok());
  {
    Result<Pool> p = Pool::attach("hostile");
    ASSERT_TRUE(p.ok());
    Result<DmaBuffer> whole = p->alloc_coherent(Device::on_node(0), 16 << 20);
    EXPECT_TRUE(whole.ok()) << whole.error().message;
  }
  EXPECT_TRUE(victim.intact());
  EXPECT_TRUE(release("hostile", true).ok());
  EXPECT_FALSE(std::filesystem::exists(run.dir() + "/pools/hostile"));
  EXPECT_TRUE(victim.intact());
}

TEST(SharedAttack, NoOneCanResizeOrRewriteThePoolsFiles) {
  ScopedRunDir run;
  ASSERT_TRUE(reserve("sealed", sim_options("cma=16M")).ok());
  Result<Pool> root_side = Pool::attach("sealed");
  ASSERT_TRUE(root_side.ok());
  // What an admitted process is handed: the layout, the state, the memory.
  Result<shared::KeeperLink> k = shared::connect_keeper("sealed", 2000);
  ASSERT_TRUE(k.ok()) << k.error().message;
  Result<shared::Answer> a = shared::ask(*k, "sealed", shared::ReqOp::attach, false, 2000);
  ASSERT_TRUE(a.ok()) << a.error().message;
  ASSERT_EQ(a->fds.size(), 3u);
  for (const os::Fd& fd : a->fds) {
    EXPECT_NE(::ftruncate(fd.get(), 0), 0) << "a pool file was truncated";
    EXPECT_EQ(errno, EPERM);
    EXPECT_NE(::ftruncate(fd.get(), 1ULL << 40), 0) << "a pool file was grown";
  }
  const char junk[8] = "garbage";
  EXPECT_LT(::pwrite(a->fds[0].get(), junk, sizeof junk, 0), 0) << "the layout was rewritten";
  // The other process's mappings are whole: every page of its state and memory reads.
  auto [base, bytes] = shared::state_for_testing(*root_side);
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < bytes; i += 4096) sum += base[i];
  (void)sum;
  Result<DmaBuffer> b = root_side->alloc_coherent(Device::on_node(0), 16 << 20);
  ASSERT_TRUE(b.ok()) << b.error().message;
  std::memset(b->cpu(), 1, b->size());
}

TEST(SharedAttack, AForgedLockOwnerDelaysAtMostTheTimeoutAndReapFreesIt) {
  ScopedRunDir run;
  ASSERT_TRUE(reserve("forged", sim_options("cma=16M")).ok());
  AttachOptions ao;
  ao.timeout_ms = 300;
  Result<Pool> p = Pool::attach("forged", ao);
  ASSERT_TRUE(p.ok());
  std::uint32_t* lock = shared::lock_word_for_testing(*p, 0);
  ASSERT_NE(lock, nullptr);
  *lock = 777;
  const auto t0 = std::chrono::steady_clock::now();
  Result<DmaBuffer> b = p->alloc_coherent(Device::on_node(0), 65536);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, Errc::busy) << b.error().message;
  EXPECT_GE(ms_since(t0), 250);
  EXPECT_LT(ms_since(t0), 5000);
  // The keeper sees an owner that is no attached holder, takes it over and repairs.
  Result<ReapReport> r = reap("forged");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_GE(r->recovered_locks, 1u);
  Result<DmaBuffer> again = p->alloc_coherent(Device::on_node(0), 65536);
  EXPECT_TRUE(again.ok()) << again.error().message;
}

// ---- 2. liveness the kernel vouches for ------------------------------------------

TEST(SharedAttack, ALiveHolderInAnotherPidNamespaceIsNeverReaped) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (a new PID namespace)";
  ScopedRunDir run;
  ASSERT_TRUE(reserve("ns", sim_options("cma=16M")).ok());
  int up[2], down[2];
  ASSERT_EQ(::pipe(up), 0);
  ASSERT_EQ(::pipe(down), 0);
  const pid_t outer = spawn([&] {
    const int null = ::open("/dev/null", O_WRONLY);  // the namespace's processes write nowhere ctest waits on
    ::dup2(null, 1), ::dup2(null, 2);
    if (::unshare(CLONE_NEWPID) != 0) return 40;
    const pid_t inner = spawn([&] {  // pid 1 of its namespace
      Result<Pool> p = Pool::attach("ns");
      if (!p) return 2;
      Result<DmaBuffer> b = p->alloc_coherent(Device::on_node(0), 65536);
      if (!b) return 3;
      std::memset(b->cpu(), 0x5c, 65536);
      (void)!::write(up[1], "y", 1);
      char c;
      (void)!::read(down[0], &c, 1);
      const auto* q = static_cast<const unsigned char*>(b->cpu());
      for (std::size_t i = 0; i < 65536; ++i)
        if (q[i] != 0x5c) return 4;  // someone else wrote into it
      return b->release().ok() ? 0 : 5;
    });
    return wait_exit(inner);
  });
  KillOnExit guard{outer};
  char c = 0;
  ASSERT_EQ(::read(up[0], &c, 1), 1);
  // A host process: attaching, allocating, reaping must not touch it.
  Result<Pool> host = Pool::attach("ns");
  ASSERT_TRUE(host.ok());
  std::vector<DmaBuffer> mine;
  for (int i = 0; i < 40; ++i) {
    Result<DmaBuffer> b = host->alloc_coherent(Device::on_node(0), 65536);
    if (!b) break;
    std::memset(b->cpu(), 0xee, 65536);
    mine.push_back(std::move(*b));
  }
  ASSERT_TRUE(reap("ns").ok());
  Result<PoolStatus> st = status("ns");
  ASSERT_TRUE(st.ok());
  ASSERT_EQ(st->holders.size(), 2u);
  for (const HolderStatus& h : st->holders) EXPECT_TRUE(h.alive) << h.pid;
  mine.clear();
  (void)!::write(down[1], "g", 1);
  EXPECT_EQ(wait_exit(outer), 0);
  guard.pid = -1;
  for (int fd : {up[0], up[1], down[0], down[1]}) ::close(fd);
}

// ---- 3. corrupt records -------------------------------------------------------------

TEST(SharedAttack, CorruptRecordsAreDroppedNeverFollowed) {
  ScopedRunDir run;
  ASSERT_TRUE(reserve("recs", sim_options("cma=16M")).ok());
  {
    Result<Pool> p = Pool::attach("recs");
    ASSERT_TRUE(p.ok());
    Result<DmaBuffer> keep = p->alloc_coherent(Device::on_node(0), 65536);
    ASSERT_TRUE(keep.ok());
    keep->detach();
    const core::Records r = shared::records_for_testing(*p, 0);
    ASSERT_EQ(r.count, 4096u);
    std::uint64_t* recs = r.words;
    ASSERT_EQ(core::rec_of(recs[0]).pages, 16u);  // the buffer kept above
    recs[100] = core::rec_word({0xffffffffu, 1});  // 2^32-1 pages
    recs[4095] = core::rec_word({64, 1});          // past the area's end
    recs[200] = core::rec_word({4, 0xffffffffu});  // no such holder
    recs[300] = core::rec_word({0, 1});            // no pages
  }  // detached: the keeper reaps this holder's records, the forged ones too
  ASSERT_TRUE(reap("recs").ok());
  Result<Pool> q = Pool::attach("recs");
  ASSERT_TRUE(q.ok()) << q.error().message;
  Result<DmaBuffer> whole = q->alloc_coherent(Device::on_node(0), 16 << 20);
  ASSERT_TRUE(whole.ok()) << whole.error().message << " (a forged record still holds pages)";
  EXPECT_EQ(whole->area_name(), "reserved");
  whole = DmaBuffer();
  EXPECT_TRUE(shared::verify_for_testing(*q).ok());
  EXPECT_TRUE(status("recs").ok());
  q = make_error(Errc::not_found, "");
  EXPECT_TRUE(release("recs").ok());
}

// ---- 4. a stopped holder ---------------------------------------------------------------

int g_stop_report = -1;
void stop_in_update(int point) {
  if (point != 2) return;
  (void)!::write(g_stop_report, "P", 1);
  ::raise(SIGSTOP);
}

TEST(SharedAttack, AStoppedHolderMakesOthersWaitBoundedAndIsNamed) {
  ScopedRunDir run;
  ASSERT_TRUE(reserve("stopped", sim_options("cma=16M")).ok());
  int up[2];
  ASSERT_EQ(::pipe(up), 0);
  const pid_t holder = spawn([&] {
    Result<Pool> p = Pool::attach("stopped");
    if (!p) return 2;
    g_stop_report = up[1];
    core::set_update_hook_for_testing(stop_in_update);
    (void)p->alloc_coherent(Device::on_node(0), 65536);  // stops inside, holding the area's lock
    return 0;
  });
  KillOnExit guard{holder};
  char c = 0;
  ASSERT_EQ(::read(up[0], &c, 1), 1);
  ASSERT_TRUE(testing::eventually([&] { return slurp("/proc/" + std::to_string(holder) + "/stat").find(") T ") != std::string::npos; }));
  AttachOptions ao;
  ao.timeout_ms = 300;
  Result<Pool> p = Pool::attach("stopped", ao);
  ASSERT_TRUE(p.ok()) << p.error().message;
  auto t0 = std::chrono::steady_clock::now();
  Result<DmaBuffer> b = p->alloc_coherent(Device::on_node(0), 65536);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code, Errc::busy);
  EXPECT_NE(b.error().message.find("pid " + std::to_string(holder)), std::string::npos) << b.error().message;
  EXPECT_LT(ms_since(t0), 5000);
  t0 = std::chrono::steady_clock::now();
  Result<PoolStatus> st = status("stopped");  // reads without the lock
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(st->holders.size(), 2u);
  EXPECT_TRUE(reap("stopped").ok());
  EXPECT_EQ(release("stopped").error().code, Errc::busy) << "a live holder has a buffer in flight";
  EXPECT_TRUE(release("stopped", true).ok());  // --force, with the holder stopped
  EXPECT_LT(ms_since(t0), 10000);
  EXPECT_FALSE(std::filesystem::exists(run.dir() + "/pools/stopped"));
  ::close(up[0]), ::close(up[1]);
}

/** An IOMMU that maps nothing: use_external_iommu's bookkeeping only. */
struct NullIommu final : ExternalIommu {
  Status map(std::uintptr_t, std::uint64_t, std::uint64_t) override { return {}; }
  Status unmap(std::uintptr_t, std::uint64_t, std::uint64_t) override { return {}; }
};

// Moving an attached pool into another framework's IOMMU (ncma_dpdk_register)
// counts this process's buffers under each area's lock: a holder stopped with
// that lock held makes it busy within the timeout, naming the pid, and leaves
// the pool as it was (still usable once the holder is gone).
TEST(SharedAttack, AStoppedHolderMakesAnIommuMoveBusyNotHang) {
  ScopedRunDir run;
  ReserveOptions o;
  o.params = "cma=16M";
  o.backing = "anon";
  if (auto r = reserve("moved", o); !r) GTEST_SKIP() << "no anon reservation here: " << r.error().message;
  int up[2];
  ASSERT_EQ(::pipe(up), 0);
  const pid_t holder = spawn([&] {
    Result<Pool> p = Pool::attach("moved");
    if (!p) return 2;
    g_stop_report = up[1];
    core::set_update_hook_for_testing(stop_in_update);
    (void)p->alloc_coherent(Device::on_node(0), 65536);  // stops inside, holding the area's lock
    return 0;
  });
  KillOnExit guard{holder};
  char c = 0;
  ASSERT_EQ(::read(up[0], &c, 1), 1);
  ASSERT_TRUE(testing::eventually([&] { return slurp("/proc/" + std::to_string(holder) + "/stat").find(") T ") != std::string::npos; }));
  AttachOptions ao;
  ao.timeout_ms = 300;
  Result<Pool> p = Pool::attach("moved", ao);
  ASSERT_TRUE(p.ok()) << p.error().message;
  ExternalIommuSpec spec;
  spec.iommu = std::make_shared<NullIommu>();
  spec.usable = {{0, (1ULL << 39) - 1}};
  spec.owner = "test";
  const auto t0 = std::chrono::steady_clock::now();
  Status s = p->use_external_iommu(spec);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Errc::busy);
  EXPECT_NE(s.error().message.find("pid " + std::to_string(holder)), std::string::npos) << s.error().message;
  EXPECT_LT(ms_since(t0), 5000);
  EXPECT_NE(p->address_kind(), AddressKind::iova_external) << "the pool is as it was";
  ::kill(holder, SIGKILL);
  ::waitpid(holder, nullptr, 0);
  guard.pid = 0;
  EXPECT_TRUE(testing::eventually([] { return reap("moved").ok() && testing::holders_of("moved") == 1; }));
  ASSERT_TRUE(p->use_external_iommu(spec)) << "once the holder is gone the move goes through";
  EXPECT_EQ(p->address_kind(), AddressKind::iova_external);
  ::close(up[0]), ::close(up[1]);
}

}  // namespace
}  // namespace numacma
