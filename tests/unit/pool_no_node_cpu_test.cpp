// Rules A3 and A7 (docs/semantics.md) for a device with no node (-1): its pages come from the
// calling CPU's node, as the kernel's alloc_pages_node(NUMA_NO_NODE) takes
// numa_mem_id() — not from the first node with memory. A CPU the topology does
// not list counts as CPU 0; a CPU on a memoryless node gets the nearest node
// with memory. A9 still counts the request for its requesting node, -1.
//
// The explicit-CPU tests call PoolImpl::alloc (what Pool::alloc_coherent, the
// C API and the replayer call with the CPU they found). The calling-thread
// tests pin themselves to one CPU and build a copy of the arm64-4n fixture
// whose node 2 holds exactly that CPU, so that the answer "node 2" can only
// come from asking which CPU the thread is on (the live pool does; a replay
// never does: it takes the trace's CPU).
#include <gtest/gtest.h>
#include <sched.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "numacma/numacma.h"
#include "numacma/numacma.hpp"
#include "pool/pool_impl.hpp"
#include "pool/replay.hpp"

namespace fs = std::filesystem;
using numacma::Device;
using numacma::kNoNode;
using numacma::Pool;
using numacma::PoolOptions;
using numacma::Served;

namespace {

constexpr std::size_t K = 1024;
// The fixtures' sysfs links (driver, iommu_group) are copied as links.
constexpr auto kCopy = fs::copy_options::recursive | fs::copy_options::copy_symlinks;

std::string fixture(const std::string& name) { return std::string(NUMACMA_TEST_DATA) + "/" + name; }

Pool make_pool(const std::string& root, const std::string& params) {
  PoolOptions o;
  o.params = params;
  o.backing = "sim";
  o.sysfs_root = root;
  auto p = Pool::create(o);
  EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
  return std::move(p).value();
}

numacma::detail::PoolImpl& impl(const Pool& p) { return *numacma::detail::impl_of(p); }

const numacma::NodeReport* node_report(const numacma::Stats& s, int n) {
  for (const auto& r : s.nodes)
    if (r.node == n) return &r;
  return nullptr;
}

TEST(NoNodeCpu, PagesComeFromTheCallingCpusNode) {
  // arm64-4n: CPUs 0-31 node 0, 32-63 node 1, 64-95 node 2, 96-127 node 3.
  // No default area: a multi-page -1 request goes straight to pages (A4, A7).
  Pool pool = make_pool(fixture("arm64-4n"), "cma_pernuma=2M");
  auto& p = impl(pool);
  const Device none = Device::on_node(kNoNode, "none");
  const std::pair<int, int> cases[] = {{40, 1}, {100, 3}, {64, 2}, {0, 0}, {127, 3}};
  for (const auto& [cpu, want] : cases) {
    for (std::size_t bytes : {4 * K, 64 * K}) {  // A3's single page, A7's block
      auto r = p.alloc(none, bytes, cpu);
      ASSERT_TRUE(r.ok()) << r.error().message;
      EXPECT_EQ(r->node, want) << "cpu " << cpu << ", " << bytes << " bytes";
      EXPECT_EQ(r->served, Served::pages);
      ASSERT_TRUE(p.free(bytes, r->cpu, r->dma, numacma::detail::kPagesBuffer, r->node).ok());
    }
  }
  // A9: counted for the requesting node, -1, not for the node that served it.
  const auto st = pool.stats();
  ASSERT_NE(node_report(st, kNoNode), nullptr);
  EXPECT_EQ(node_report(st, kNoNode)->pages, 10u);
  for (int n = 0; n < 4; ++n) EXPECT_EQ(node_report(st, n)->pages, 0u) << n;
}

TEST(NoNodeCpu, TheBlockLivesOnTheRealNodesShelfNeverOnMinusOne) {
  // x86-2s: CPUs 0-23 and 48-71 on node 0, 24-47 and 72-95 on node 1.
  Pool pool = make_pool(fixture("x86-2s"), "cma_pernuma=2M");
  auto& p = impl(pool);
  const Device none = Device::on_node(kNoNode, "none");
  auto a = p.alloc(none, 4 * K, 80);
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->node, 1);
  auto shelf_live = [&](int node) {
    std::lock_guard<numacma::detail::ShelfLock> lock(p.pages.of(node).mu);
    return p.pages.of(node).live.size();
  };
  EXPECT_EQ(shelf_live(1), 1u);
  EXPECT_EQ(shelf_live(kNoNode), 0u);
  // Freed, the page is kept for node 1 (A3's cache): a CPU of node 0 does not
  // get it, a CPU of node 1 does.
  ASSERT_TRUE(p.free(4 * K, a->cpu, a->dma, numacma::detail::kPagesBuffer, a->node).ok());
  auto b = p.alloc(none, 4 * K, 50);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->node, 0);
  EXPECT_NE(b->cpu, a->cpu);
  auto c = p.alloc(none, 4 * K, 30);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->node, 1);
  EXPECT_EQ(c->cpu, a->cpu);
  EXPECT_EQ(shelf_live(kNoNode), 0u);
  ASSERT_TRUE(p.free(4 * K, b->cpu, b->dma, numacma::detail::kPagesBuffer, b->node).ok());
  ASSERT_TRUE(p.free(4 * K, c->cpu, c->dma, numacma::detail::kPagesBuffer, c->node).ok());
}

TEST(NoNodeCpu, UnknownCpuIsCpu0sNodeAndMemorylessNodesTakeTheNearest) {
  // memless-3n: node 0 (CPUs 0-3) and 1 (4-7) have memory, node 2 (8-11) has
  // none; every distance is 20, so node 2's nearest node with memory is 0.
  Pool pool = make_pool(fixture("memless-3n"), "cma_pernuma=2M");
  auto& p = impl(pool);
  const Device none = Device::on_node(kNoNode, "none");
  const std::pair<int, int> cases[] = {{5, 1}, {9, 0}, {-1, 0}, {12, 0}, {1 << 20, 0}};
  for (const auto& [cpu, want] : cases) {
    auto r = p.alloc(none, 8 * K, cpu);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->node, want) << "cpu " << cpu;
    ASSERT_TRUE(p.free(8 * K, r->cpu, r->dma, numacma::detail::kPagesBuffer, r->node).ok());
  }
  EXPECT_TRUE(p.knows_cpu(11));
  EXPECT_FALSE(p.knows_cpu(12));
  EXPECT_FALSE(p.knows_cpu(-1));
  // A device with a node is not moved by the CPU.
  auto on1 = p.alloc(Device::on_node(1, "on1"), 4 * K, 0);
  ASSERT_TRUE(on1.ok());
  EXPECT_EQ(on1->node, 1);
  ASSERT_TRUE(p.free(4 * K, on1->cpu, on1->dma, numacma::detail::kPagesBuffer, 1).ok());
}

TEST(NoNodeCpu, UnknownCpuWithoutCpu0FallsToTheFirstNodeWithMemory) {
  // A copy of memless-3n that lists no CPU at all and where only node 1 has
  // memory: an unknown CPU, with no CPU 0 to stand in, gets node 1, the first
  // node with memory.
  const fs::path root = fs::path(::testing::TempDir()) / "nonode_nocpu0";
  fs::remove_all(root);
  fs::copy(fixture("memless-3n"), root, kCopy);
  for (int n : {0, 1, 2})
    std::ofstream(root / ("devices/system/node/node" + std::to_string(n) + "/cpulist")) << "\n";
  std::ofstream(root / "devices/system/node/has_memory") << "1\n";
  {
    Pool pool = make_pool(root.string(), "");
    auto& p = impl(pool);
    EXPECT_FALSE(p.knows_cpu(0));
    for (int cpu : {-1, 0, 7}) {
      auto r = p.alloc(Device::on_node(kNoNode, "none"), 4 * K, cpu);
      ASSERT_TRUE(r.ok()) << r.error().message;
      EXPECT_EQ(r->node, 1) << "cpu " << cpu;
      ASSERT_TRUE(p.free(4 * K, r->cpu, r->dma, numacma::detail::kPagesBuffer, r->node).ok());
    }
  }
  fs::remove_all(root);
}

/** Pins this thread to one CPU it may run on (not CPU 0 where there is a
 *  choice) for the test's lifetime, and writes a copy of arm64-4n in which
 *  node `node_of_pinned` holds exactly that CPU and node 3 holds CPU 0 (when
 *  it is another CPU). */
class PinnedFixture {
 public:
  PinnedFixture(const std::string& name, int node_of_pinned) {
    CPU_ZERO(&saved_);
    ok_ = ::sched_getaffinity(0, sizeof saved_, &saved_) == 0;
    for (int c = 0; ok_ && c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &saved_) && (cpu_ < 0 || cpu_ == 0)) cpu_ = c;
    if (cpu_ < 0) ok_ = false;
    if (ok_) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu_, &one);
      ok_ = ::sched_setaffinity(0, sizeof one, &one) == 0;
    }
    root_ = fs::path(::testing::TempDir()) / name;
    fs::remove_all(root_);
    fs::copy(fixture("arm64-4n"), root_, kCopy);
    std::map<int, std::string> lists{{0, ""}, {1, ""}, {2, ""}, {3, ""}};
    if (node_of_pinned >= 0) lists[node_of_pinned] = std::to_string(cpu_);
    if (cpu_ != 0) lists[3] += (lists[3].empty() ? "" : ",") + std::string("0");
    for (const auto& [n, text] : lists)
      std::ofstream(root_ / ("devices/system/node/node" + std::to_string(n) + "/cpulist"))
          << text << "\n";
  }
  ~PinnedFixture() {
    if (ok_) ::sched_setaffinity(0, sizeof saved_, &saved_);
    fs::remove_all(root_);
  }
  bool ok() const { return ok_; }
  int cpu() const { return cpu_; }
  std::string root() const { return root_.string(); }

 private:
  cpu_set_t saved_;
  int cpu_ = -1;
  bool ok_ = false;
  fs::path root_;
};

TEST(NoNodeCpu, AllocCoherentAsksWhichCpuTheThreadIsOn) {
  PinnedFixture fx("nonode_pinned_cpp", 2);
  if (!fx.ok()) GTEST_SKIP() << "cannot pin this thread to one CPU";
  Pool pool = make_pool(fx.root(), "cma_pernuma=2M");
  for (std::size_t bytes : {4 * K, 64 * K}) {
    auto b = pool.alloc_coherent(Device::on_node(kNoNode, "none"), bytes);
    ASSERT_TRUE(b.ok()) << b.error().message;
    EXPECT_EQ(b->node(), 2) << "pinned to CPU " << fx.cpu() << ", " << bytes << " bytes";
    EXPECT_EQ(b->area_name(), "pages");
  }
  EXPECT_EQ(node_report(pool.stats(), kNoNode)->pages, 2u);
}

TEST(NoNodeCpu, TheCApiAsksWhichCpuTheThreadIsOn) {
  PinnedFixture fx("nonode_pinned_c", 2);
  if (!fx.ok()) GTEST_SKIP() << "cannot pin this thread to one CPU";
  const std::string root = fx.root();
  ncma_pool_options opt{"sim", "kernel", root.c_str(), nullptr, 0};
  ncma_pool* pool = ncma_pool_create("cma_pernuma=2M", &opt);
  ASSERT_NE(pool, nullptr) << ncma_last_error_message();
  ncma_device* none = ncma_device_node(-1, "none");
  ncma_device* on2 = ncma_device_node(2, "on2");
  std::uint64_t dma = 0;
  void* cpu = ncma_alloc_coherent(pool, none, 4096, &dma);
  ASSERT_NE(cpu, nullptr) << ncma_last_error_message();
  // Freed, the page is kept for its node's next single-page request (A3): a
  // device on node 2 gets the very same page only if it was node 2's.
  ASSERT_EQ(ncma_free_coherent(pool, none, 4096, cpu, dma), NCMA_OK);
  std::uint64_t dma2 = 0;
  void* again = ncma_alloc_coherent(pool, on2, 4096, &dma2);
  ASSERT_NE(again, nullptr) << ncma_last_error_message();
  EXPECT_EQ(again, cpu) << "pinned to CPU " << fx.cpu();
  EXPECT_EQ(dma2, dma);
  ASSERT_EQ(ncma_free_coherent(pool, on2, 4096, again, dma2), NCMA_OK);
  ncma_device_destroy(none);
  ncma_device_destroy(on2);
  ncma_pool_destroy(pool);
}

TEST(NoNodeCpu, ReplayTakesTheTracesCpuNeverItsOwn) {
  // Pinned to a CPU of node 2: a replay does not ask which CPU it runs on
  // (replay_cpu_test.cpp compares every host CPU); a line without cpu= is
  // made on CPU 0 (node 3 here, or 2 when the pinned CPU is 0).
  PinnedFixture fx("nonode_replay_own", 2);
  if (!fx.ok()) GTEST_SKIP() << "cannot pin this thread to one CPU";
  Pool pool = make_pool(fx.root(), "cma_pernuma=2M");
  numacma::replay::Replayer r(pool);
  const auto own = r.feed("alloc a -1 4K", 1);
  EXPECT_EQ(own["node"], fx.cpu() != 0 ? 3 : 2) << own.dump();
  const auto given = r.feed("alloc b -1 4K cpu=" + std::to_string(fx.cpu()), 2);
  EXPECT_EQ(given["node"], 2) << given.dump();
  // A CPU the topology does not list: CPU 0's node.
  const auto unknown = r.feed("alloc u -1 4K cpu=100000", 4);
  EXPECT_EQ(unknown["node"], fx.cpu() != 0 ? 3 : 2) << unknown.dump();
  const auto bad = r.feed("alloc c -1 4K cpu=x", 3);
  EXPECT_EQ(bad["op"], "error");
  EXPECT_NE(bad["error"].get<std::string>().find("line 3: alloc: 'cpu=x'"), std::string::npos)
      << bad.dump();
}

}  // namespace
