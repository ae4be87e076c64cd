// The hugetlb backing maps its hugepages in ascending physical order
// (src/backing/hugetlb_file.hpp), checked against an independent reading of
// /proc/self/pagemap done here, not through numacma's os layer. Needs root
// (PFNs) and free 2 MiB hugepages on node 0: as root HugepagesGuard raises
// node0's nr_hugepages and puts the old value back; otherwise the tests skip
// with the reason.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "backing/hugetlb_file.hpp"
#include "hugepages_guard.hpp"
#include "numacma/shared.hpp"
#include "shared_test_util.hpp"
#include "numacma/numacma.hpp"
#include "os/os.hpp"

using numacma::Device;
using numacma::Pool;
using numacma::PoolOptions;
using numacma::Result;
using numacma::testing::free_2m_node0;
using numacma::testing::HugepagesGuard;
namespace backing = numacma::backing;
namespace os = numacma::os;

namespace {

constexpr std::uint64_t kPage = 4096, k2M = 2ULL << 20, kPer2M = k2M / kPage;

/** Physical address of each hugepage of [base, base + bytes), from pagemap read
 *  here; 0 for a page that is not present. Empty when pagemap cannot be read. */
std::vector<std::uint64_t> probe_phys(std::uintptr_t base, std::uint64_t bytes) {
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::vector<std::uint64_t> out;
  for (std::uintptr_t va = base; va < base + bytes; va += k2M) {
    std::uint64_t entry = 0;
    if (::pread(fd, &entry, sizeof entry, static_cast<off_t>(va / kPage * sizeof entry)) != sizeof entry) {
      out.clear();
      break;
    }
    const bool present = (entry >> 63) != 0;
    out.push_back(present ? (entry & ((std::uint64_t{1} << 55) - 1)) * kPage : 0);
  }
  ::close(fd);
  return out;
}

bool pfns_visible() {
  // Any hugepage-free check: our own stack page.
  int x = 1;
  const auto va = reinterpret_cast<std::uintptr_t>(&x) & ~(kPage - 1);
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::uint64_t entry = 0;
  const bool ok = ::pread(fd, &entry, sizeof entry, static_cast<off_t>(va / kPage * sizeof entry)) == sizeof entry;
  ::close(fd);
  return ok && (entry & ((std::uint64_t{1} << 55) - 1)) != 0;
}

struct Runs {
  std::uint64_t count = 0;    ///< runs of physically adjacent hugepages
  std::uint64_t longest = 0;  ///< 4 KiB pages of the longest, cut at bytes
};

/** Runs over the slots in the given order; slot k counts min(512, pages left). */
Runs runs_of(const std::vector<std::uint64_t>& phys, std::uint64_t bytes) {
  Runs r;
  std::uint64_t cur = 0;
  const std::uint64_t pages = bytes / kPage;
  for (std::size_t k = 0; k < phys.size() && k * kPer2M < pages; ++k) {
    const std::uint64_t len = std::min(kPer2M, pages - k * kPer2M);
    if (k > 0 && phys[k - 1] + k2M == phys[k]) {
      cur += len;
    } else {
      ++r.count;
      cur = len;
    }
    r.longest = std::max(r.longest, cur);
  }
  return r;
}

const numacma::AreaReport* area(const numacma::Stats& s, const std::string& name) {
  for (const auto& a : s.areas)
    if (a.name == name) return &a;
  return nullptr;
}

/** A hugetlb pool "cma=<mib>M" on this host (made private, or reserved and
 *  attached); the area's span found from its first buffer, its hugepages read
 *  from pagemap and compared with Stats. */
void check_pool_is_sorted(std::uint64_t mib, bool reserved = false) {
  Result<Pool> pool = make_error(numacma::Errc::not_found, "");
  if (reserved) {
    numacma::ReserveOptions r;
    r.params = "cma=" + std::to_string(mib) + "M";
    r.backing = "hugetlb";
    auto notes = numacma::reserve("order", r);
    ASSERT_TRUE(notes.ok()) << notes.error().message;
    pool = Pool::attach("order");
  } else {
    PoolOptions o;
    o.params = "cma=" + std::to_string(mib) + "M";
    o.backing = "hugetlb";
    pool = Pool::create(o);
  }
  ASSERT_TRUE(pool.ok()) << pool.error().message;
  const numacma::Stats st = pool->stats();
  const numacma::AreaReport* a = area(st, "reserved");
  ASSERT_NE(a, nullptr) << "no default area";
  ASSERT_EQ(a->backing, "hugetlb-2M") << a->note;
  ASSERT_FALSE(a->iova) << a->note;
  // The first two-page buffer is page 0 of the area (first fit, A6 alignment).
  auto buf = pool->alloc_coherent(Device::on_node(a->node), 2 * kPage);
  ASSERT_TRUE(buf.ok()) << buf.error().message;
  ASSERT_EQ(buf->area_name(), "reserved");
  ASSERT_EQ(buf->dma_addr(), a->base_dma);
  const auto base = reinterpret_cast<std::uintptr_t>(buf->cpu());
  const std::uint64_t bytes = a->pages * kPage;
  ASSERT_EQ(base % k2M, 0u);

  const std::vector<std::uint64_t> phys = probe_phys(base, bytes);
  ASSERT_EQ(phys.size(), (bytes + k2M - 1) / k2M);
  EXPECT_EQ(phys[0], a->base_dma);
  for (std::size_t k = 1; k < phys.size(); ++k)
    ASSERT_GT(phys[k], phys[k - 1]) << "slot " << k << " is below slot " << k - 1 << ": not ascending";
  std::vector<std::uint64_t> sorted = phys;
  std::sort(sorted.begin(), sorted.end());
  const Runs best = runs_of(sorted, bytes), mapped = runs_of(phys, bytes);
  EXPECT_EQ(a->longest_segment, best.longest) << "the longest run of adjacent hugepages the area holds";
  EXPECT_EQ(a->segments, mapped.count);
  EXPECT_EQ(a->segments, best.count);
  std::printf("cma=%lluM: %zu hugepages, %llu segments, longest %llu pages (%llu MiB)\n",
              static_cast<unsigned long long>(mib), phys.size(), static_cast<unsigned long long>(a->segments),
              static_cast<unsigned long long>(a->longest_segment),
              static_cast<unsigned long long>(a->longest_segment * kPage >> 20));
  ::testing::Test::RecordProperty("segments", std::to_string(a->segments));
  ::testing::Test::RecordProperty("longest_segment", std::to_string(a->longest_segment));
}

class HugetlbOrder : public ::testing::Test {
 protected:
  void need(long hugepages) {
    if (!pfns_visible()) GTEST_SKIP() << "pagemap hides PFNs from this process (needs CAP_SYS_ADMIN)";
    guard_ = std::make_unique<HugepagesGuard>(hugepages);
    if (!guard_->ok()) GTEST_SKIP() << guard_->why();
  }
  void TearDown() override { guard_.reset(); }  // nr_hugepages back to the old value
  std::unique_ptr<HugepagesGuard> guard_;
};

}  // namespace

TEST_F(HugetlbOrder, Pool64MIsMappedInPhysicalOrder) {
  need(32);
  if (IsSkipped()) return;
  check_pool_is_sorted(64);
}

TEST_F(HugetlbOrder, LargerPoolIsMappedInPhysicalOrder) {
  // 256 hugepages (512 MiB) when node 0 can give them, else the most it can.
  if (!pfns_visible()) GTEST_SKIP() << "pagemap hides PFNs from this process (needs CAP_SYS_ADMIN)";
  std::string why;
  for (long n : {256L, 128L, 64L}) {
    guard_ = std::make_unique<HugepagesGuard>(n);
    if (guard_->ok()) {
      check_pool_is_sorted(static_cast<std::uint64_t>(n) * 2);
      return;
    }
    why += (why.empty() ? "" : "; ") + guard_->why();
    guard_.reset();
  }
  GTEST_SKIP() << why;
}

// A reserved pool's areas (hugetlbfs files, numacma/shared.hpp) are mapped in
// physical order too, in the process that attaches.
TEST_F(HugetlbOrder, ReservedPoolIsMappedInPhysicalOrder) {
  need(32);
  if (IsSkipped()) return;
  numacma::testing::ScopedRunDir run;
  numacma::testing::HugetlbfsMount mount;
  if (!mount.ok()) GTEST_SKIP() << mount.why();
  check_pool_is_sorted(64, true);
  EXPECT_TRUE(numacma::release("order").ok());
}

TEST_F(HugetlbOrder, CompactFirst) {
  need(4);
  if (IsSkipped()) return;
  PoolOptions o;
  o.params = "cma=8M";
  o.backing = "hugetlb";
  o.compact = true;
  auto pool = Pool::create(o);
  ASSERT_TRUE(pool.ok()) << pool.error().message;
  const numacma::Stats st = pool->stats();
  const numacma::AreaReport* a = area(st, "reserved");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->backing, "hugetlb-2M");
  const bool can = os::is_root() && os::exists("/sys/devices/system/node/node0/compact");
  bool noted = false;
  for (const auto& n : pool->reservation_notes()) noted |= n.message.find("compaction") != std::string::npos;
  EXPECT_EQ(noted, !can) << "a note only when the node could not be compacted";
}

TEST_F(HugetlbOrder, PopulateSortedThenMapInOrderGivesTheSamePages) {
  need(8);
  if (IsSkipped()) return;
  const long free0 = free_2m_node0();
  auto fd = os::memfd_hugetlb("numacma-order-test", k2M);
  ASSERT_TRUE(fd.ok()) << fd.error().message;
  const std::uint64_t bytes = 8 * k2M;
  auto m = backing::populate_sorted(*fd, bytes, k2M, 0, true);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->mapped_bytes, bytes);
  EXPECT_EQ(m->huge_page_bytes, k2M);
  ASSERT_EQ(m->order.size(), 8u);
  std::vector<std::uint32_t> perm = m->order;
  std::sort(perm.begin(), perm.end());
  std::vector<std::uint32_t> iota(8);
  std::iota(iota.begin(), iota.end(), 0u);
  EXPECT_EQ(perm, iota) << "order is a permutation of the file's pages";
  ASSERT_EQ(m->phys.size(), 8u);
  EXPECT_TRUE(std::is_sorted(m->phys.begin(), m->phys.end()));
  EXPECT_EQ(probe_phys(m->cpu_base, bytes), m->phys);
  EXPECT_EQ(free_2m_node0(), free0 - 8);

  // Another mapping of the same file in the same order: the same page per slot.
  auto again = backing::map_in_order(*fd, m->order, k2M, true);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_NE(*again, m->cpu_base);
  EXPECT_EQ(probe_phys(*again, bytes), m->phys);
  for (std::size_t k = 0; k < 8; ++k) reinterpret_cast<volatile char*>(m->cpu_base)[k * k2M + 77] = char(k + 1);
  for (std::size_t k = 0; k < 8; ++k)
    EXPECT_EQ(reinterpret_cast<volatile char*>(*again)[k * k2M + 77], char(k + 1)) << "slot " << k;

  // And in the reverse order: slot k holds what slot 7 - k holds in the first.
  std::vector<std::uint32_t> rev(m->order.rbegin(), m->order.rend());
  auto reversed = backing::map_in_order(*fd, rev, k2M, false);
  ASSERT_TRUE(reversed.ok()) << reversed.error().message;
  std::vector<std::uint64_t> want(m->phys.rbegin(), m->phys.rend());
  EXPECT_EQ(probe_phys(*reversed, bytes), want);

  backing::unmap_huge(*reversed, bytes);
  backing::unmap_huge(*again, bytes);
  backing::unmap_huge(m->cpu_base, bytes);
  EXPECT_EQ(free_2m_node0(), free0 - 8) << "the open file still holds its pages";
  ASSERT_TRUE(os::close_fd(*fd).ok());
  EXPECT_EQ(free_2m_node0(), free0) << "no mapping and no descriptor: the pages are back";
}

TEST_F(HugetlbOrder, PopulateSortedUndoesOnFailure) {
  need(4);
  if (IsSkipped()) return;
  const long free0 = free_2m_node0();
  auto fd = os::memfd_hugetlb("numacma-order-test", k2M);
  ASSERT_TRUE(fd.ok()) << fd.error().message;
  EXPECT_EQ(backing::populate_sorted(*fd, 0, k2M, 0, false).error().code, numacma::Errc::invalid_argument);
  EXPECT_EQ(backing::populate_sorted(*fd, k2M + kPage, k2M, 0, false).error().code,
            numacma::Errc::invalid_argument);
  // A node with no memory (nor existence): mbind refuses, nothing stays behind.
  auto m = backing::populate_sorted(*fd, 4 * k2M, k2M, 1000, false);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("mbind"), std::string::npos) << m.error().message;
  EXPECT_EQ(::lseek(*fd, 0, SEEK_END), 0) << "the file is truncated back";
  EXPECT_EQ(free_2m_node0(), free0);
  ASSERT_TRUE(os::close_fd(*fd).ok());
}
