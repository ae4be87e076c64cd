// Shared pools tried as an attacker would (shared_attack_util.hpp lists the
// findings), 5-8: memory is zeroed in every mode and across users; release
// --force removes exactly its own pool; names cannot be squatted, run
// directories and lock files are checked; API corners are refused and counted.
#include <gtest/gtest.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <filesystem>

#include "shared_attack_util.hpp"

namespace numacma {
namespace {

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
