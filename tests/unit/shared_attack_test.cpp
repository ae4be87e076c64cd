// Shared pools tried as an attacker would (issue: "shared pools you can
// trust"). Each finding of that review is a test here:
//   1. a member of the pool's group rewrites the state and tries to
//      truncate the pool's files: no other file is opened, written or
//      unlinked, nobody crashes (SIGBUS), nothing hangs
//   2. a live holder in another PID namespace is never taken for dead
//   3. corrupt records are dropped, never followed
//   4. a stopped holder makes others wait a bounded time, and is named
//   5. memory is zeroed, in every mode, across users too
//   6. release --force removes exactly its own pool
//   7. names cannot be squatted; run directories and lock files are checked
//   8. API corners are refused and counted
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/records.hpp"
#include "numacma/numacma.h"
#include "numacma/numacma.hpp"
#include "numacma/shared.hpp"
#include "second_user.hpp"
#include "shared/client.hpp"
#include "shared/layout.hpp"
#include "shared/testing.hpp"
#include "shared_test_util.hpp"

namespace numacma {
namespace {

using testing::ScopedRunDir;
using testing::sim_options;

using testing::spawn;
using testing::wait_exit;

/** Kills a child when the test leaves, whichever way (a stopped child would
 *  otherwise keep ctest's output pipe open for ever). */
struct KillOnExit {
  pid_t pid;
  ~KillOnExit() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

/** A file root owns and nobody else may touch; what the attacker aims at. */
struct Victim {
  std::string path;
  const std::string text = "root's own data, not to be touched\n";
  Victim() {
    path = "/tmp/numacma-victim-" + std::to_string(::getpid());
    std::ofstream(path) << text;
    ::chmod(path.c_str(), 0600);
  }
  ~Victim() { std::filesystem::remove(path); }
  bool intact() const { return std::filesystem::exists(path) && slurp(path) == text; }
};

std::int64_t ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
}

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

// ---- 5. zeroed memory -------------------------------------------------------------------

/** A private sim pool through the C API (cma=16M on the x86-2s fixture). */
ncma_pool* c_pool() {
  const std::string root = testing::fixture();
  ncma_pool_options co = {"sim", "kernel", root.c_str(), nullptr, 0};
  return ncma_pool_create("cma=16M", &co);
}

bool all_zero(const void* p, std::size_t n) {
  const auto* c = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i)
    if (c[i] != 0) return false;
  return true;
}

TEST(SharedAttack, MemoryIsZeroedInEveryMode) {
  PoolOptions o;
  o.params = "cma=16M";
  o.backing = "sim";
  o.sysfs_root = testing::fixture();
  Result<Pool> p = Pool::create(o);
  ASSERT_TRUE(p.ok());
  for (std::size_t size : {std::size_t{4096}, std::size_t{65536}, std::size_t{1} << 20}) {
    void* at = nullptr;
    {
      Result<DmaBuffer> b = p->alloc_coherent(Device::on_node(0), size);
      ASSERT_TRUE(b.ok());
      at = b->cpu();
      std::memset(b->cpu(), 0xab, size);
    }
    Result<DmaBuffer> again = p->alloc_coherent(Device::on_node(0), size);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->cpu(), at) << "the same memory comes back, so the test means something";
    EXPECT_TRUE(all_zero(again->cpu(), size)) << size << " bytes, " << again->area_name();
  }
  // The C API too.
  ncma_pool* cp = c_pool();
  ASSERT_NE(cp, nullptr);
  ncma_device* d = ncma_device_node(0, "d");
  uint64_t dma = 0;
  void* c1 = ncma_alloc_coherent(cp, d, 65536, &dma);
  ASSERT_NE(c1, nullptr);
  std::memset(c1, 0xcd, 65536);
  ASSERT_EQ(ncma_free_coherent(cp, d, 65536, c1, dma), 0);
  void* c2 = ncma_alloc_coherent(cp, d, 65536, &dma);
  ASSERT_EQ(c2, c1);
  EXPECT_TRUE(all_zero(c2, 65536));
  ncma_free_coherent(cp, d, 65536, c2, dma);
  ncma_device_destroy(d);
  ncma_pool_destroy(cp);
  // The opt-out: a private pool told not to zero hands back what was there.
  o.zero = false;
  Result<Pool> raw = Pool::create(o);
  ASSERT_TRUE(raw.ok());
  {
    Result<DmaBuffer> b = raw->alloc_coherent(Device::on_node(0), 65536);
    std::memset(b->cpu(), 0xab, 65536);
  }
  Result<DmaBuffer> dirty = raw->alloc_coherent(Device::on_node(0), 65536);
  EXPECT_EQ(static_cast<const unsigned char*>(dirty->cpu())[0], 0xab);
}

TEST(SharedAttack, NoProcessReadsWhatAnotherWrote) {
  ScopedRunDir run;
  testing::SecondUser u;
  ReserveOptions o = sim_options("cma=16M");
  if (u.ok) o.group = testing::kSecondGroup;
  ASSERT_TRUE(reserve("secret", o).ok());
  std::uint64_t dma = 0;
  {
    Result<Pool> root_side = Pool::attach("secret");
    ASSERT_TRUE(root_side.ok());
    Result<DmaBuffer> b = root_side->alloc_coherent(Device::on_node(0), 65536);
    ASSERT_TRUE(b.ok());
    std::memcpy(b->cpu(), "root's secret", 14);
    dma = b->dma_addr();
  }  // freed and detached
  const auto reader = [&] {
    Result<Pool> p = Pool::attach("secret");
    if (!p) return 2;
    Result<DmaBuffer> b = p->alloc_coherent(Device::on_node(0), 65536);
    if (!b) return 3;
    if (b->dma_addr() != dma) return 4;  // the same memory, or the test proves nothing
    return all_zero(b->cpu(), 65536) ? 0 : 5;
  };
  EXPECT_EQ(u.ok ? testing::as_second_user(u, true, reader) : wait_exit(spawn(reader)), 0);
}

// ---- 6. release --force removes exactly its pool ----------------------------------------

TEST(SharedAttack, ReleaseForceRemovesExactlyItsOwnPool) {
  ScopedRunDir run;
  ASSERT_TRUE(reserve("a", sim_options("cma=8M")).ok());
  ASSERT_TRUE(reserve("a.b", sim_options("cma=8M")).ok());
  ASSERT_TRUE(reserve("a.", sim_options("cma=8M")).ok());
  // A keeper that is gone: killed.
  {
    Result<Pool> p = Pool::attach("a");
    ASSERT_TRUE(p.ok());
    const pid_t keeper = shared::keeper_pid_for_testing(*p);
    ASSERT_GT(keeper, 0);
    ::kill(keeper, SIGKILL);
  }
  ASSERT_TRUE(testing::eventually([] { return status("a").error().code == Errc::not_found; }));
  EXPECT_EQ(reserve("a", sim_options("cma=8M")).error().code, Errc::busy);  // its directory is still there
  EXPECT_TRUE(release("a", true).ok());
  EXPECT_FALSE(std::filesystem::exists(run.dir() + "/pools/a"));
  for (const char* other : {"a.b", "a."}) {
    EXPECT_TRUE(std::filesystem::exists(run.dir() + "/pools/" + other)) << other;
    Result<Pool> q = Pool::attach(other);
    EXPECT_TRUE(q.ok()) << other;
  }
  // A stranger's entry in a pool's directory survives its release --force.
  ASSERT_TRUE(reserve("c", sim_options("cma=8M")).ok());
  std::ofstream(run.dir() + "/pools/c/not-numacmas") << "x";
  EXPECT_FALSE(release("c", true).ok());
  EXPECT_TRUE(std::filesystem::exists(run.dir() + "/pools/c/not-numacmas"));
}

// ---- 7. names and directories -------------------------------------------------------------

TEST(SharedAttack, NamesCannotBeSquatted) {
  ScopedRunDir run;
  // The names the old file-backed areas used, and names in /dev/shm in general.
  std::vector<std::string> squats;
  for (int pid = ::getpid(); pid < ::getpid() + 64; ++pid)
    for (const char* area : {"reserved", "pernuma0", "pernuma1"}) {
      squats.push_back(std::string("/dev/shm/numacma.sq.") + area + "." + std::to_string(pid));
      std::ofstream(squats.back()) << "squat";
    }
  Result<std::vector<ReservationNote>> r = reserve("sq", sim_options("cma=8M cma_pernuma=4M"));
  EXPECT_TRUE(r.ok()) << r.error().message;
  for (const std::string& s : squats) {
    EXPECT_EQ(slurp(s), "squat");
    std::filesystem::remove(s);
  }
}

TEST(SharedAttack, RunDirectoriesAndLockFilesAreChecked) {
  ScopedRunDir run;
  Victim victim;
  const std::string base = run.dir();
  // Writable by others.
  const std::string open_dir = base + "/open";
  std::filesystem::create_directories(open_dir);
  ::chmod(open_dir.c_str(), 0777);
  ::setenv("NUMACMA_RUN_DIR", open_dir.c_str(), 1);
  Result<std::vector<ReservationNote>> r = reserve("x", sim_options("cma=8M"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::permission);
  EXPECT_NE(r.error().message.find("writable by others"), std::string::npos) << r.error().message;
  // A symbolic link.
  const std::string link = base + "/link";
  std::filesystem::create_directory_symlink(base, link);
  ::setenv("NUMACMA_RUN_DIR", link.c_str(), 1);
  r = reserve("x", sim_options("cma=8M"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("symbolic link"), std::string::npos) << r.error().message;
  // Owned by another user.
  testing::SecondUser u;
  if (u.ok) {
    const std::string theirs = base + "/theirs";
    std::filesystem::create_directories(theirs);
    ::chown(theirs.c_str(), u.uid, u.own_gid);
    ::setenv("NUMACMA_RUN_DIR", theirs.c_str(), 1);
    r = reserve("x", sim_options("cma=8M"));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("owned by uid " + std::to_string(u.uid)), std::string::npos)
        << r.error().message;
    EXPECT_EQ(Pool::attach("x").error().code, Errc::permission);
  }
  // The lock file a symbolic link to root's file: refused, the file untouched.
  const std::string good = base + "/good";
  std::filesystem::create_directories(good + "/pools");
  std::filesystem::create_symlink(victim.path, good + "/pools/.lock");
  ::setenv("NUMACMA_RUN_DIR", good.c_str(), 1);
  r = reserve("x", sim_options("cma=8M"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::permission) << r.error().message;
  EXPECT_TRUE(victim.intact());
  ::setenv("NUMACMA_RUN_DIR", base.c_str(), 1);
}

// ---- 8. API corners ----------------------------------------------------------------------

TEST(SharedAttack, ApiCornersAreRefusedAndCounted) {
  PoolOptions o;
  o.params = "cma=16M";
  o.backing = "sim";
  o.sysfs_root = testing::fixture();
  Result<Pool> p = Pool::create(o);
  ASSERT_TRUE(p.ok());
  const Device dev = Device::on_node(0);
  // A free by address of a buffer a DmaBuffer still owns: refused, counted;
  // the handle then frees it, and no two live buffers ever alias.
  for (std::size_t size : {std::size_t{4096}, std::size_t{65536}}) {
    Result<DmaBuffer> a = p->alloc_coherent(dev, size);
    ASSERT_TRUE(a.ok());
    const std::uint64_t bad0 = p->stats().bad_frees;
    Status s = p->free_coherent(dev, size, a->cpu(), a->dma_addr());
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, Errc::bad_free);
    EXPECT_NE(s.error().message.find("DmaBuffer owns"), std::string::npos) << s.error().message;
    EXPECT_EQ(p->stats().bad_frees, bad0 + 1);
    Result<DmaBuffer> b = p->alloc_coherent(dev, size);
    ASSERT_TRUE(b.ok());
    EXPECT_NE(a->cpu(), b->cpu());
    EXPECT_TRUE(a->release().ok());
    Result<DmaBuffer> c = p->alloc_coherent(dev, size);
    ASSERT_TRUE(c.ok());
    EXPECT_NE(c->cpu(), b->cpu());
    // Detached, it is the caller's to free by address.
    void* cpu = c->cpu();
    const std::uint64_t dma = c->dma_addr();
    c->detach();
    EXPECT_TRUE(p->free_coherent(dev, size, cpu, dma).ok());
  }
  // A free of size SIZE_MAX: refused as what it is.
  Result<DmaBuffer> z = p->alloc_coherent(dev, 65536);
  Status s = p->free_coherent(dev, SIZE_MAX, z->cpu(), z->dma_addr());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("larger than any buffer"), std::string::npos) << s.error().message;
  // A moved-from Pool: errors, not a crash.
  Pool moved = std::move(*p);
  EXPECT_EQ(p->alloc_coherent(dev, 4096).error().code, Errc::invalid_argument);
  EXPECT_EQ(p->free_coherent(dev, 4096, z->cpu(), z->dma_addr()).error().code, Errc::bad_free);
  EXPECT_TRUE(p->stats().areas.empty());
  EXPECT_EQ(p->dump_bitmap("reserved").error().code, Errc::invalid_argument);
  EXPECT_EQ(Device::from_pci("0000:00:00.0", *p).error().code, Errc::invalid_argument);
  // The C API: a dma_pool block is not a coherent buffer of the pool.
  ncma_pool* cp = c_pool();
  ASSERT_NE(cp, nullptr);
  ncma_device* d = ncma_device_node(0, "d");
  ncma_dma_pool* dp = ncma_dma_pool_create(cp, "blocks", d, 4096, 4096, 0);
  ASSERT_NE(dp, nullptr);
  uint64_t dma = 0;
  void* blk = ncma_dma_pool_alloc(dp, &dma);
  ASSERT_NE(blk, nullptr);
  EXPECT_EQ(ncma_free_coherent(cp, d, 4096, blk, dma), NCMA_EBADFREE);
  EXPECT_EQ(ncma_dma_pool_free(dp, blk, dma), 0);
  EXPECT_EQ(ncma_dma_pool_destroy(dp), 0);
  // Extreme node ids and codes.
  ncma_device* far = ncma_device_node(INT_MAX, "far");
  EXPECT_EQ(ncma_alloc_coherent(cp, far, 65536, &dma), nullptr);
  EXPECT_EQ(ncma_last_error(), NCMA_EINVAL);
  ncma_device* neg = ncma_device_node(INT_MIN, "neg");
  EXPECT_EQ(ncma_alloc_coherent(cp, neg, 65536, &dma), nullptr);
  EXPECT_STREQ(ncma_strerror(INT_MIN), "not an ncma error code");
  EXPECT_STREQ(ncma_strerror(INT_MAX), "not an ncma error code");
  EXPECT_STREQ(ncma_strerror(NCMA_ECORRUPT), "corrupt");
  ncma_device_destroy(far);
  ncma_device_destroy(neg);
  ncma_device_destroy(d);
  ncma_pool_destroy(cp);
}

}  // namespace
}  // namespace numacma
