// Pool::use_external_iommu: a pool's DMA addresses moved into an IOMMU
// another framework owns (numacma/dpdk.h's ncma_dpdk_register over
// DPDK's VFIO container). A fake IOMMU records every map and unmap: each
// area mapped once at an IOVA the pool chose in the usable ranges, page
// buffers mapped below their device's mask and unmapped when freed, every
// refusal leaving the pool as it was, nothing mapped after the pool goes.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "numacma/numacma.h"
#include "numacma/numacma.hpp"
#include "fixture_pool_options.hpp"
#include "numacma/shared.hpp"
#include "shared_test_util.hpp"

using numacma::AddressKind;
using numacma::Device;
using numacma::Errc;
using numacma::ExternalIommu;
using numacma::ExternalIommuSpec;
using numacma::Pool;
using numacma::PoolOptions;
using numacma::Status;

namespace {

constexpr std::uint64_t k1M = 1ULL << 20, k2M = 2ULL << 20, k4G = 1ULL << 32;

struct FakeIommu final : ExternalIommu {
  struct Map {
    std::uintptr_t va;
    std::uint64_t bytes;
  };
  std::map<std::uint64_t, Map> live;  // iova -> mapping
  int maps = 0, unmaps = 0;
  int fail_at = -1;  // the map() call (0-based) that fails
  Status map(std::uintptr_t va, std::uint64_t iova, std::uint64_t bytes) override {
    if (maps++ == fail_at) return numacma::make_error(Errc::io_error, "fake: map refused");
    for (const auto& [i, m] : live)
      if (iova < i + m.bytes && i < iova + bytes) return numacma::make_error(Errc::io_error, "fake: overlap");
    live[iova] = {va, bytes};
    return {};
  }
  Status unmap(std::uintptr_t va, std::uint64_t iova, std::uint64_t bytes) override {
    ++unmaps;
    const auto it = live.find(iova);
    if (it == live.end() || it->second.va != va || it->second.bytes != bytes)
      return numacma::make_error(Errc::io_error, "fake: no such mapping");
    live.erase(it);
    return {};
  }
};

/** An anon pool of this host with two areas (default + node 0's), or null. */
std::unique_ptr<Pool> anon_pool() {
  PoolOptions o;
  o.params = "cma=8M cma_pernuma=8M";
  o.backing = "anon";
  auto p = Pool::create(o);
  if (!p) return nullptr;
  return std::make_unique<Pool>(std::move(*p));
}

ExternalIommuSpec spec(const std::shared_ptr<FakeIommu>& f) {
  ExternalIommuSpec s;
  s.iommu = f;
  // the MSI window is not usable, as on x86
  s.usable = {{0, 0xfedfffffULL}, {0xfef00000ULL, (1ULL << 39) - 1}};
  s.owner = "fake";
  return s;
}

#define ANON_POOL_OR_SKIP(p)                                       \
  auto p = anon_pool();                                            \
  if (!p || p->stats().areas.empty()) GTEST_SKIP() << "no anon pool with areas on this host"

}  // namespace

TEST(ExternalIommu, EveryAreaIsMappedOnceAtAnIovaThePoolChose) {
  ANON_POOL_OR_SKIP(p);
  auto f = std::make_shared<FakeIommu>();
  ASSERT_TRUE(p->use_external_iommu(spec(f)));
  EXPECT_EQ(p->address_kind(), AddressKind::iova_external);
  EXPECT_TRUE(p->device_usable());
  EXPECT_EQ(p->dma_mode(), "external");
  const numacma::Stats st = p->stats();
  ASSERT_EQ(f->live.size(), st.areas.size());
  for (const auto& a : st.areas) {
    EXPECT_TRUE(a.device_usable) << a.name;
    const auto it = f->live.find(a.base_dma);
    ASSERT_NE(it, f->live.end()) << a.name << " at " << a.base_dma;
    EXPECT_GE(a.base_dma, k1M);
    EXPECT_EQ(a.base_dma % k2M, 0u) << a.name;
    EXPECT_LT(a.base_dma + it->second.bytes, k4G) << "lowest first: small areas stay below 4 GiB";
  }
  // A buffer of an area: inside that area's mapping, IOVA-contiguous.
  auto b = p->alloc_coherent(Device::on_node(0, "nic"), 65536);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_TRUE(b->device_usable());
  bool inside = false;
  for (const auto& [iova, m] : f->live)
    inside |= b->dma_addr() >= iova && b->dma_addr() + 65536 <= iova + m.bytes &&
              b->dma_addr() - iova == reinterpret_cast<std::uintptr_t>(b->cpu()) - m.va;
  EXPECT_TRUE(inside) << "the buffer's IOVA is its area's IOVA plus its offset";
}

TEST(ExternalIommu, PageBuffersAreMappedBelowTheMaskAndUnmappedWhenFreed) {
  ANON_POOL_OR_SKIP(p);
  auto f = std::make_shared<FakeIommu>();
  ASSERT_TRUE(p->use_external_iommu(spec(f)));
  const std::size_t areas = f->live.size();
  Device d = Device::on_node(0, "narrow");
  d.coherent_dma_mask = k4G - 1;
  auto b = p->alloc_coherent(d, 4096);  // A3: one page, never an area
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->area_name(), "pages");
  EXPECT_LT(b->dma_addr() + 4095, k4G);
  ASSERT_EQ(f->live.size(), areas + 1);
  EXPECT_EQ(f->live.at(b->dma_addr()).va, reinterpret_cast<std::uintptr_t>(b->cpu()));
  const int unmaps = f->unmaps;
  b = numacma::DmaBuffer();
  EXPECT_EQ(f->unmaps, unmaps + 1);
  EXPECT_EQ(f->live.size(), areas) << "freed pages are unmapped, never kept for the next A3";
}

TEST(ExternalIommu, AMaskNoUsableIovaMeetsIsUnreachable) {
  ANON_POOL_OR_SKIP(p);
  auto f = std::make_shared<FakeIommu>();
  ExternalIommuSpec s = spec(f);
  s.usable = {{k4G, (1ULL << 39) - 1}};
  ASSERT_TRUE(p->use_external_iommu(s));
  Device d = Device::on_node(0, "narrow");
  d.coherent_dma_mask = k4G - 1;
  auto b = p->alloc_coherent(d, 4096);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Errc::unreachable) << b.error().message;
}

TEST(ExternalIommu, TheAreasAreUnmappedWhenThePoolGoes) {
  auto f = std::make_shared<FakeIommu>();
  {
    ANON_POOL_OR_SKIP(p);
    ASSERT_TRUE(p->use_external_iommu(spec(f)));
    EXPECT_FALSE(f->live.empty());
    auto b = p->alloc_coherent(Device::on_node(0), 4096);
    ASSERT_TRUE(b);
    b->detach();  // left to the pool: unmapped and freed with it
  }
  EXPECT_TRUE(f->live.empty());
  EXPECT_EQ(f->maps, f->unmaps);
}

TEST(ExternalIommu, TheKernelCountersSurviveTheMove) {
  ANON_POOL_OR_SKIP(p);
  {
    auto b = p->alloc_coherent(Device::on_node(0), 65536);
    ASSERT_TRUE(b);
  }
  const numacma::Stats before = p->stats();
  auto f = std::make_shared<FakeIommu>();
  ASSERT_TRUE(p->use_external_iommu(spec(f)));
  const numacma::Stats after = p->stats();
  ASSERT_EQ(before.areas.size(), after.areas.size());
  for (std::size_t i = 0; i < after.areas.size(); ++i) {
    EXPECT_EQ(after.areas[i].alloc_pages_success, before.areas[i].alloc_pages_success);
    EXPECT_EQ(after.areas[i].release_pages_success, before.areas[i].release_pages_success);
    EXPECT_EQ(after.areas[i].used, 0u);
  }
}

TEST(ExternalIommu, RefusalsLeaveThePoolAsItWas) {
  ANON_POOL_OR_SKIP(p);
  auto f = std::make_shared<FakeIommu>();
  ExternalIommuSpec none;
  EXPECT_EQ(p->use_external_iommu(none).error().code, Errc::invalid_argument);
  ExternalIommuSpec empty = spec(f);
  empty.usable = {{0, k1M - 1}};  // all of it below the floor
  EXPECT_EQ(p->use_external_iommu(empty).error().code, Errc::invalid_argument);
  ExternalIommuSpec inverted = spec(f);
  inverted.usable = {{k4G, k1M}};
  EXPECT_EQ(p->use_external_iommu(inverted).error().code, Errc::invalid_argument);
  {
    auto live = p->alloc_coherent(Device::on_node(0), 65536);
    ASSERT_TRUE(live);
    Status s = p->use_external_iommu(spec(f));
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code, Errc::busy);
    EXPECT_NE(s.error().message.find("before the first allocation"), std::string::npos) << s.error().message;
  }
  if (p->stats().areas.size() > 1) {  // the second area's map fails: the first is unmapped again
    f->fail_at = 1;
    Status s = p->use_external_iommu(spec(f));
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code, Errc::io_error);
    EXPECT_TRUE(f->live.empty());
    EXPECT_EQ(p->address_kind(), AddressKind::virtual_only);
    auto b = p->alloc_coherent(Device::on_node(0), 65536);
    ASSERT_TRUE(b) << b.error().message;
    f->fail_at = -1;
  }
  EXPECT_EQ(p->address_kind(), AddressKind::virtual_only);
  ASSERT_TRUE(p->use_external_iommu(spec(f)));
  Status again = p->use_external_iommu(spec(f));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::busy);
}

TEST(ExternalIommu, ASimPoolAndAMovedFromPoolAreRefused) {
  auto p = Pool::create(fixture_pool::options("sim", fixture_pool::kArm));
  ASSERT_TRUE(p) << p.error().message;
  auto f = std::make_shared<FakeIommu>();
  Status s = p->use_external_iommu(spec(f));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::unsupported);
  EXPECT_TRUE(f->live.empty());
  Pool moved = std::move(*p);
  EXPECT_EQ(p->use_external_iommu(spec(f)).error().code, Errc::invalid_argument);
}

TEST(ExternalIommu, TheCNameOfTheKind) {
  EXPECT_STREQ(ncma_address_kind_name(NCMA_ADDR_IOVA_EXTERNAL), "iova_external");
  EXPECT_STREQ(numacma::address_kind_name(AddressKind::iova_external), "iova_external");
  EXPECT_TRUE(numacma::device_usable(AddressKind::iova_external));
  EXPECT_STREQ(ncma_address_kind_name(NCMA_ADDR_IOVA_EXTERNAL + 1), "unknown");
}

// An attached pool moves in this process only: its own live buffers stop the
// move, another attachment's do not (that one keeps its addresses, in its own
// IOMMU); what this process takes at its IOVAs is in the reservation's state,
// so `numacma status` sees it, and both free their own.
TEST(ExternalIommu, AnAttachedPoolMovesInThisProcessOnlyAndStatusSeesWhatItTakes) {
  numacma::testing::ScopedRunDir run;
  numacma::ReserveOptions o;
  o.params = "cma=8M";
  o.backing = "anon";
  if (auto r = numacma::reserve("ext", o); !r) GTEST_SKIP() << "no anon reservation here: " << r.error().message;
  auto mine = Pool::attach("ext");
  auto other = Pool::attach("ext");
  ASSERT_TRUE(mine && other);
  const Device dev = Device::on_node(0, "nic");
  auto theirs = other->alloc_coherent(dev, 65536);
  ASSERT_TRUE(theirs) << theirs.error().message;
  const std::uint64_t their_dma = theirs->dma_addr();
  auto f = std::make_shared<FakeIommu>();
  {
    auto own = mine->alloc_coherent(dev, 65536);
    ASSERT_TRUE(own);
    Status s = mine->use_external_iommu(spec(f));
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code, Errc::busy);
    EXPECT_NE(s.error().message.find("of this process"), std::string::npos) << s.error().message;
  }
  ASSERT_TRUE(mine->use_external_iommu(spec(f))) << "another attachment's buffer does not stop the move";
  EXPECT_EQ(mine->address_kind(), AddressKind::iova_external);
  ASSERT_EQ(f->live.size(), 1u);
  const auto& [iova, m] = *f->live.begin();
  auto b = mine->alloc_coherent(dev, 131072);
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_GE(b->dma_addr(), iova);
  EXPECT_LE(b->dma_addr() + 131072, iova + m.bytes);
  EXPECT_EQ(b->dma_addr() - iova, reinterpret_cast<std::uintptr_t>(b->cpu()) - m.va);
  EXPECT_NE(reinterpret_cast<std::uintptr_t>(b->cpu()), reinterpret_cast<std::uintptr_t>(theirs->cpu()))
      << "the two buffers share the area's state: never the same memory";
  EXPECT_EQ(theirs->dma_addr(), their_dma) << "the other attachment did not move";
  auto st = numacma::status("ext");
  ASSERT_TRUE(st) << st.error().message;
  ASSERT_EQ(st->areas.size(), 1u);
  EXPECT_EQ(st->areas[0].area.used, (65536 + 131072) / 4096u) << "status sees what both took";
  ASSERT_TRUE(b->release());
  ASSERT_TRUE(theirs->release());
  st = numacma::status("ext");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->areas[0].area.used, 0u);
  mine = numacma::make_error(Errc::not_found, "");
  EXPECT_TRUE(f->live.empty()) << "the area is unmapped when the pool goes";
}
