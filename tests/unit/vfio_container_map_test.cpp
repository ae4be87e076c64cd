// numacma::vfio::Container (vfio_container_fixture.hpp): map/unmap with the
// IOVA rules (floor, MSI window, reserved regions, alignment, limit), several
// devices sharing the mappings, and destruction with nothing left behind, in
// order.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "vfio_container_fixture.hpp"

// ---- map / unmap ----------------------------------------------------------------------

TEST_F(VfioContainer, MapsAreAlignedAboveTheFloorAndBelowTheLimit) {
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  const std::uintptr_t buf = mem(16 * MiB);
  struct Want {
    std::uint64_t bytes, align, limit;
  };
  const std::vector<Want> wants = {{4 * KiB, 4 * KiB, k64},   {8 * KiB, 8 * KiB, k64},
                                   {2 * MiB, 2 * MiB, k64},   {12 * KiB, 16 * KiB, mask_of(24)},
                                   {1 * MiB, 1 * MiB, k64},   {4 * MiB, 2 * MiB, mask_of(28)}};
  std::vector<std::uint64_t> got;
  for (const Want& w : wants) {
    auto iova = c.map(buf, w.bytes, w.align, w.limit, "buf");
    ASSERT_TRUE(iova) << iova.error().message;
    EXPECT_GE(*iova, kIovaFloor);
    EXPECT_EQ(*iova % w.align, 0u);
    EXPECT_LE(*iova + w.bytes - 1, w.limit);
    EXPECT_FALSE(overlaps(*iova, w.bytes, fakevfio::kMsiFirst, fakevfio::kMsiLast));
    EXPECT_TRUE(fake_->has_mapping(*iova, w.bytes)) << fake_->describe();
    EXPECT_EQ(fake_->mapping_containing(*iova).vaddr, buf);
    got.push_back(*iova);
  }
  EXPECT_EQ(got[0], kIovaFloor) << "lowest first";
  auto rep = c.report();
  ASSERT_EQ(rep.mappings.size(), wants.size());
  for (std::size_t i = 1; i < rep.mappings.size(); ++i)
    EXPECT_LT(rep.mappings[i - 1].iova + rep.mappings[i - 1].bytes - 1, rep.mappings[i].iova) << "by IOVA, disjoint";
  EXPECT_EQ(rep.dma_avail, 65535 - static_cast<std::int64_t>(wants.size()));
  EXPECT_EQ(rep.pgsizes, fakevfio::kPgsizes);
  ASSERT_FALSE(rep.ranges.empty());
  EXPECT_EQ(rep.ranges.front().first, kIovaFloor);
  for (const IovaRange& r : rep.ranges) EXPECT_FALSE(overlaps(r.first, r.last - r.first + 1, fakevfio::kMsiFirst, fakevfio::kMsiLast));

  // Unmap: exactly a mapping, or nothing happens.
  const std::uint64_t calls = fake_->calls().size();
  EXPECT_EQ(c.unmap(got[0] + 4096, 4096).error().code, Errc::invalid_argument);
  EXPECT_EQ(c.unmap(got[2], 1 * MiB).error().code, Errc::invalid_argument) << "wrong size";
  EXPECT_EQ(fake_->calls().size(), calls) << "a refused unmap reaches no kernel";
  ASSERT_TRUE(c.unmap(got[2], 2 * MiB));
  EXPECT_FALSE(fake_->has_mapping(got[2], 2 * MiB));
  EXPECT_EQ(c.unmap(got[2], 2 * MiB).error().code, Errc::invalid_argument) << "twice";
  auto again = c.map(buf, 2 * MiB, 2 * MiB, k64, "again");
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, got[2]) << "the IOVA came back to the allocator";
  const auto left = c.report().mappings;
  for (const auto& m : left) ASSERT_TRUE(c.unmap(m.iova, m.bytes));
  EXPECT_TRUE(fake_->mappings().empty());
  EXPECT_EQ(c.report().dma_avail, 65535);
}

TEST_F(VfioContainer, MapErrorsNameTheLimit) {
  Container& c = make();
  EXPECT_EQ(c.map(0x10000000, 4096, 4096, k64, "x").error().code, Errc::invalid_argument) << "no device yet";
  ASSERT_TRUE(c.attach(kA, k64));
  const std::uintptr_t buf = mem(8 * MiB);
  auto e = c.map(buf, 4 * MiB, 4096, mask_of(22), "big");  // 1 MiB .. 4 MiB free: 3 MiB
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, Errc::no_memory) << e.error().message;
  EXPECT_TRUE(contains(e.error().message, "big: IOVA space exhausted")) << e.error().message;
  e = c.map(buf, 4096, 4096, 0xfffff, "low");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, Errc::unreachable) << e.error().message;
  EXPECT_EQ(c.map(buf, 100, 4096, k64, "odd").error().code, Errc::invalid_argument);
  EXPECT_EQ(fake_->map_calls(), 0u) << "refused before MAP_DMA";
}

TEST_F(VfioContainer, MapsAvoidTheMsiWindowAndReservedRegionsFromSysfs) {
  // An IOMMU whose IOVA_RANGE does not leave the MSI window out (so only the
  // sysfs reserved_regions keep the container out of it), and a direct-mapped
  // region at 2-4 MiB.
  fake_->ranges = {{0, (1ULL << 48) - 1}};
  tree_->set_reserved_regions(10,
                              "0x00000000fee00000 0x00000000feefffff msi\n"
                              "0x0000000000200000 0x00000000003fffff direct\n");
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  const std::uintptr_t buf = mem(256 * MiB);
  auto first = c.map(buf, 1 * MiB, 1 * MiB, k64, "a");
  auto second = c.map(buf, 1 * MiB, 1 * MiB, k64, "b");
  ASSERT_TRUE(first && second);
  EXPECT_EQ(*first, 1 * MiB);
  EXPECT_EQ(*second, 4 * MiB) << "2-4 MiB is reserved";
  // 256 MiB chunks up to 4 GiB: the one that would straddle the MSI window goes above it.
  std::vector<std::uint64_t> chunks;
  for (int i = 0; i < 17; ++i) {
    auto r = c.map(buf, 256 * MiB, 1 * MiB, k64, "chunk");
    ASSERT_TRUE(r) << r.error().message;
    chunks.push_back(*r);
  }
  EXPECT_EQ(chunks[15], fakevfio::kMsiLast + 1) << "the 16th chunk would cover the MSI window";
  for (const auto& m : fake_->mappings()) {
    EXPECT_FALSE(overlaps(m.iova, m.bytes, fakevfio::kMsiFirst, fakevfio::kMsiLast)) << fakevfio::hex(m.iova);
    EXPECT_FALSE(overlaps(m.iova, m.bytes, 2 * MiB, 4 * MiB - 1)) << fakevfio::hex(m.iova);
    EXPECT_GE(m.iova, kIovaFloor);
  }
  for (const IovaRange& r : c.report().ranges) {
    EXPECT_FALSE(overlaps(r.first, r.last - r.first + 1, fakevfio::kMsiFirst, fakevfio::kMsiLast));
    EXPECT_FALSE(overlaps(r.first, r.last - r.first + 1, 2 * MiB, 4 * MiB - 1));
  }
}

TEST_F(VfioContainer, AFailedMapDmaGivesTheIovaBackAndExplains) {
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  const std::uintptr_t buf = mem(4 * MiB);
  fake_->fail_map_nth = 2;
  auto a = c.map(buf, 64 * KiB, 64 * KiB, k64, "one");
  ASSERT_TRUE(a);
  auto b = c.map(buf, 64 * KiB, 64 * KiB, k64, "two");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Errc::no_memory) << b.error().message;
  EXPECT_TRUE(contains(b.error().message, "two: ")) << b.error().message;
  EXPECT_FALSE(contains(b.error().message, "RLIMIT_MEMLOCK")) << "unlimited: no memlock hint";
  auto b2 = c.map(buf, 64 * KiB, 64 * KiB, k64, "two");
  ASSERT_TRUE(b2);
  EXPECT_EQ(*b2, *a + 64 * KiB) << "the failed IOVA was given back";
  EXPECT_EQ(c.report().mappings.size(), 2u);

  // ENOMEM with a finite RLIMIT_MEMLOCK: the hint to raise it.
  fake_->memlock = 64 * MiB;
  fake_->fail_map_nth = fake_->map_calls() + 1;
  auto m = c.map(buf, 4096, 4096, k64, "three");
  ASSERT_FALSE(m);
  EXPECT_TRUE(contains(m.error().message, "RLIMIT_MEMLOCK is 64.0 MiB")) << m.error().message;

  // The container's mapping limit (dma_entry_limit): ENOSPC.
  fake_->fail_map_nth = 0;
  fake_->dma_entry_limit = 3;
  ASSERT_TRUE(c.map(buf, 4096, 4096, k64, "third"));
  auto full = c.map(buf, 4096, 4096, k64, "fourth");
  ASSERT_FALSE(full);
  EXPECT_TRUE(contains(full.error().message, "dma_entry_limit")) << full.error().message;
  EXPECT_EQ(full.error().sys_errno, ENOSPC);
  EXPECT_EQ(c.report().mappings.size(), 3u);
  EXPECT_EQ(c.report().dma_avail, 0);
}

TEST_F(VfioContainer, MemlockIsCheckedBeforePinning) {
  fake_->unlimited = false;
  fake_->memlock = 1 * MiB;
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  const std::uintptr_t buf = mem(4 * MiB);
  auto a = c.map(buf, 512 * KiB, 4096, k64, "first");
  ASSERT_TRUE(a) << a.error().message;
  auto b = c.map(buf, 1 * MiB, 4096, k64, "second");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Errc::no_memory);
  EXPECT_TRUE(contains(b.error().message, "RLIMIT_MEMLOCK is 1.0 MiB but VFIO must pin 1.5 MiB (second included)"))
      << b.error().message;
  EXPECT_TRUE(contains(b.error().message, "ulimit -l")) << b.error().message;
  EXPECT_EQ(fake_->map_calls(), 1u) << "refused before MAP_DMA";
  ASSERT_TRUE(c.unmap(*a, 512 * KiB));
  EXPECT_TRUE(c.map(buf, 1 * MiB, 4096, k64, "second")) << "unmapped bytes are no longer counted";
  // Root (CAP_IPC_LOCK) is not limited.
  fake_->unlimited = true;
  EXPECT_TRUE(c.map(buf, 2 * MiB, 4096, k64, "third"));
}

// ---- several devices --------------------------------------------------------------------

TEST_F(VfioContainer, ALaterGroupSharesTheContainersMappings) {
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  const std::uintptr_t buf = mem(4 * MiB);
  auto iova = c.map(buf, 2 * MiB, 2 * MiB, mask_of(32), "area");
  ASSERT_TRUE(iova);
  ASSERT_TRUE(c.attach(kB, mask_of(32))) << fake_->describe();
  EXPECT_NE(fake_->container_of_group(11), -1);
  EXPECT_EQ(fake_->container_of_group(11), fake_->container_of_group(10)) << "one container";
  EXPECT_EQ(fake_->mappings().size(), 1u) << "nothing is mapped again: the group joins the domain";
  EXPECT_EQ(c.min_mask(), mask_of(32));
  EXPECT_EQ(c.device_count(), 2u);
  EXPECT_EQ(c.find(kB), 1);
  EXPECT_EQ(c.device(1).group, 11);
  EXPECT_EQ(c.device(1).node, 0);
  EXPECT_EQ(c.device(1).dma_mask, mask_of(32));
  // A second device of a group already in the container opens no group again.
  ASSERT_TRUE(c.attach(kA2, k64));
  const auto calls = fake_->calls();
  int opens = 0;
  for (const auto& s : calls) opens += s == "open " + kRoot + "/10";
  EXPECT_EQ(opens, 1);
  EXPECT_EQ(fake_->open_fds(FakeKernel::Kind::group), 2u);
  EXPECT_EQ(fake_->open_fds(FakeKernel::Kind::device), 3u);
  EXPECT_EQ(c.report().devices.size(), 3u);
  EXPECT_EQ(fake_->open_fds(FakeKernel::Kind::container), 1u);
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "set_iommu " + std::to_string(fake_->container_of_group(10))), 1)
      << "SET_IOMMU once";
}

TEST_F(VfioContainer, ReservedRegionsOfALaterGroupAreExcluded) {
  tree_->set_reserved_regions(11,
                              "0x00000000fee00000 0x00000000feefffff msi\n"
                              "0x0000000000400000 0x00000000005fffff reserved\n");
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  const std::uintptr_t buf = mem(8 * MiB);
  auto low = c.map(buf, 1 * MiB, 1 * MiB, k64, "low");
  ASSERT_TRUE(low);
  EXPECT_EQ(*low, 1 * MiB);
  ASSERT_TRUE(c.attach(kB, k64));
  for (const IovaRange& r : c.report().ranges)
    EXPECT_FALSE(overlaps(r.first, r.last - r.first + 1, 4 * MiB, 6 * MiB - 1))
        << fakevfio::hex(r.first) << "-" << fakevfio::hex(r.last);
  auto next = c.map(buf, 4 * MiB, 1 * MiB, k64, "next");  // 2 MiB .. 6 MiB would cross it
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, 6 * MiB);
  auto small = c.map(buf, 2 * MiB, 1 * MiB, k64, "small");
  ASSERT_TRUE(small);
  EXPECT_EQ(*small, 2 * MiB) << "below the reserved region";
}

TEST_F(VfioContainer, AGroupWhoseReservedRegionCoversALiveMappingIsRefusedCleanly) {
  tree_->set_reserved_regions(12,
                              "0x00000000fee00000 0x00000000feefffff msi\n"
                              "0x0000000000400000 0x00000000005fffff reserved\n");
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  const std::uintptr_t buf = mem(8 * MiB);
  auto big = c.map(buf, 8 * MiB, 4096, k64, "area");  // 1 MiB .. 9 MiB
  ASSERT_TRUE(big);
  auto e = attach_error(c, kC);
  EXPECT_EQ(e.code, Errc::unsupported) << e.message;
  EXPECT_TRUE(contains(e.message, "cannot attach " + kC)) << e.message;
  EXPECT_EQ(c.device_count(), 1u);
  EXPECT_EQ(fake_->container_of_group(12), -1);
  EXPECT_FALSE(fake_->group_open(12));
  EXPECT_EQ(fake_->open_fds(FakeKernel::Kind::device), 1u);
  EXPECT_TRUE(fake_->has_mapping(*big, 8 * MiB)) << "the live mapping is untouched";
  // Its device fd was closed before the group left the container (EBUSY otherwise).
  const auto calls = fake_->calls();
  const long dev = fakevfio::find_last_call(calls, "device_fd ");
  ASSERT_GE(dev, 0);
  const long unset = fakevfio::find_call(calls, "unset_container ", static_cast<std::size_t>(dev));
  ASSERT_GE(unset, 0);
  const long close_dev = fakevfio::find_call(calls, "close ", static_cast<std::size_t>(dev));
  EXPECT_LT(close_dev, unset);
  EXPECT_TRUE(fake_->violations().empty()) << fake_->describe();
}

// ---- destruction --------------------------------------------------------------------------

TEST_F(VfioContainer, DestructionUnmapsEverythingAndClosesInOrder) {
  Container& c = make();
  ASSERT_TRUE(c.attach(kA, k64));
  ASSERT_TRUE(c.attach(kB, k64));
  ASSERT_TRUE(c.attach(kA2, k64));
  const std::uintptr_t buf = mem(8 * MiB);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.map(buf, 2 * MiB, 2 * MiB, k64, "m"));
  ASSERT_TRUE(c.read32(0, 0, 0));  // BAR0 mmapped
  ASSERT_TRUE(c.read32(1, 0, 0));
  EXPECT_EQ(fake_->mmapped_regions(), 2u);
  const std::size_t before = fake_->calls().size();
  c_.reset();
  EXPECT_TRUE(fake_->clean()) << fake_->describe();
  const auto all = fake_->calls();
  const std::vector<std::string> calls(all.begin() + static_cast<long>(before), all.end());
  const long first_unset = fakevfio::find_call(calls, "unset_container");
  const long last_unmap = fakevfio::find_last_call(calls, "unmap ");
  const long last_munmap = fakevfio::find_last_call(calls, "munmap");
  ASSERT_GE(first_unset, 0);
  EXPECT_LT(last_unmap, first_unset) << "every mapping undone before a group leaves";
  EXPECT_LT(last_munmap, first_unset);
  // Three device fds closed, then per group unset before close; the container last.
  int closes_before_unset = 0;
  for (long i = 0; i < first_unset; ++i) closes_before_unset += calls[static_cast<std::size_t>(i)].rfind("close ", 0) == 0;
  EXPECT_EQ(closes_before_unset, 3) << "device fds before the groups";
  EXPECT_EQ(calls.back().rfind("close ", 0), 0u);
  int unsets = 0;
  for (const auto& s : calls) unsets += s.rfind("unset_container", 0) == 0;
  EXPECT_EQ(unsets, 2);
}
