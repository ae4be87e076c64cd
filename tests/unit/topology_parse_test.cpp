// The sysfs parsers: good input, edge cases, and junk that must be an error.
#include <gtest/gtest.h>

#include "topology/topology.hpp"

using namespace numacma::topo;

TEST(TopologyParse, Cpulist) {
  EXPECT_EQ(parse_cpulist("0-3,8,10-11\n").value(), (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(parse_cpulist("\n").value(), std::vector<int>{});
  EXPECT_EQ(parse_cpulist("5").value(), std::vector<int>{5});
  EXPECT_EQ(parse_cpulist("3,1-2,2").value(), (std::vector<int>{1, 2, 3}));
  for (const char* bad : {"3-1", "a", "1,,2", "1-", "-1", "1,", "0-99999999", "1 2", "0x1"})
    EXPECT_FALSE(parse_cpulist(bad).ok()) << bad;
  EXPECT_NE(parse_cpulist("3-1").error().message.find("3-1"), std::string::npos);
}

TEST(TopologyParse, DistanceRow) {
  EXPECT_EQ(parse_distance_row("10 21 21\n").value(), (std::vector<int>{10, 21, 21}));
  EXPECT_EQ(parse_distance_row("  10\t12 ").value(), (std::vector<int>{10, 12}));
  for (const char* bad : {"", "10 x", "10 256", "-1", "10,20"})
    EXPECT_FALSE(parse_distance_row(bad).ok()) << bad;
}

TEST(TopologyParse, NodeMeminfo) {
  auto m = parse_node_meminfo("Node 0 MemTotal:  1024 kB\nNode 0 MemFree:   512 kB\nNode 0 X: y\n");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->total_bytes, 1024u * 1024);
  EXPECT_EQ(m->free_bytes, 512u * 1024);
  EXPECT_FALSE(parse_node_meminfo("Node 0 MemFree: 5 kB\n").ok());
  EXPECT_FALSE(parse_node_meminfo("Node 0 MemTotal: lots kB\n").ok());
  EXPECT_FALSE(parse_node_meminfo("Node 0 MemTotal: 99999999999999999999 kB\n").ok());
}

TEST(TopologyParse, NumaNodeU64AndHugepageDirs) {
  EXPECT_EQ(parse_numa_node("-1\n").value(), -1);
  EXPECT_EQ(parse_numa_node("3").value(), 3);
  for (const char* bad : {"", "-2", "x", "1.5"}) EXPECT_FALSE(parse_numa_node(bad).ok()) << bad;
  EXPECT_EQ(parse_u64("0x1af4\n").value(), 0x1af4u);
  EXPECT_EQ(parse_u64(" 42 ").value(), 42u);
  EXPECT_EQ(parse_u64("18446744073709551615").value(), UINT64_MAX);
  EXPECT_FALSE(parse_u64("18446744073709551616").ok());
  EXPECT_FALSE(parse_u64("0x").ok());
  EXPECT_EQ(parse_hugepage_dir("hugepages-2048kB").value(), 2u << 20);
  EXPECT_EQ(parse_hugepage_dir("hugepages-1048576kB").value(), 1u << 30);
  for (const char* bad : {"hugepages-kB", "hugepages-2048", "huge-2048kB", "hugepages-0kB", "hugepages-x1kB"})
    EXPECT_FALSE(parse_hugepage_dir(bad).ok()) << bad;
}

TEST(TopologyParse, LinkNamesAndIommuGroups) {
  EXPECT_EQ(parse_link_name("../../../bus/pci/drivers/nvme").value(), "nvme");
  EXPECT_EQ(parse_link_name("../../../bus/pci/drivers/vfio-pci").value(), "vfio-pci");
  EXPECT_EQ(parse_link_name("xhci_hcd").value(), "xhci_hcd");
  EXPECT_EQ(parse_link_name("../drivers/nvme/").value(), "nvme");
  for (const char* bad : {"", "/", "../..", "../drivers/.", "../drivers/a b", "../drivers/a\nb"})
    EXPECT_FALSE(parse_link_name(bad).ok()) << bad;
  EXPECT_EQ(parse_iommu_group("../../../kernel/iommu_groups/7").value(), 7);
  EXPECT_EQ(parse_iommu_group("../../../../kernel/iommu_groups/0").value(), 0);
  EXPECT_EQ(parse_iommu_group("../../../kernel/iommu_groups/1048576").value(), 1 << 20);
  for (const char* bad : {"", "../../../kernel/iommu_groups/", "../../../kernel/iommu_groups/x",
                          "../iommu_groups/-1", "../iommu_groups/7a", "../iommu_groups/0x7",
                          "../iommu_groups/99999999"})
    EXPECT_FALSE(parse_iommu_group(bad).ok()) << bad;
  EXPECT_NE(parse_iommu_group("../iommu_groups/seven").error().message.find("seven"), std::string::npos);
}

TEST(TopologyParse, Bdf) {
  EXPECT_EQ(parse_bdf("0000:05:00.0").value(), "0000:05:00.0");
  EXPECT_EQ(parse_bdf("0000:AF:1F.7").value(), "0000:af:1f.7");
  EXPECT_EQ(parse_bdf("ffff:ff:1f.7").value(), "ffff:ff:1f.7");
  // The short form lspci prints: domain 0000.
  EXPECT_EQ(parse_bdf("05:00.0").value(), "0000:05:00.0");
  EXPECT_EQ(parse_bdf("AF:1F.7").value(), "0000:af:1f.7");
  for (const char* bad : {"", "0000:05:00", "0000:05:00.8", "0000:05:20.0", "0000-05-00.0",
                          "0000:05:00.0\n", " 0000:05:00.0", "000g:05:00.0", "0000:05:00.0/..",
                          "00000:05:00.0", "5:00.0", "0:05:00.0", "05:00.8", "05:20.0", "05-00.0",
                          "05:00.0\n", " 05:00.0", "0g:00.0", ":05:00.0", "0000:05"})
    EXPECT_FALSE(parse_bdf(bad).ok()) << bad;
  EXPECT_NE(parse_bdf("05:00").error().message.find("DDDD:BB:DD.F or BB:DD.F"), std::string::npos);
  EXPECT_NE(parse_bdf("05:20.0").error().message.find("device"), std::string::npos);
  EXPECT_NE(parse_bdf("0000:05:20.0").error().message.find("device"), std::string::npos);
}

TEST(ParseMemoryBlocks, NamesAndRanges) {
  using numacma::topo::MemRange;
  EXPECT_EQ(*numacma::topo::parse_memory_block_name("memory42"), 42u);
  for (const char* bad : {"memory", "memoryX", "node0", "memory1a", "mem1"})
    EXPECT_FALSE(numacma::topo::parse_memory_block_name(bad).ok()) << bad;
  // Blocks of 128 MiB: 0, 1, 2 merge; 5 stands apart; given out of order.
  const std::uint64_t bs = 128ULL << 20;
  auto r = numacma::topo::memory_block_ranges({5, 1, 0, 2}, bs);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0], (MemRange{0, 3 * bs}));
  EXPECT_EQ((*r)[1], (MemRange{5 * bs, 6 * bs}));
  EXPECT_FALSE(numacma::topo::memory_block_ranges({0}, 0).ok());
  EXPECT_FALSE(numacma::topo::memory_block_ranges({0}, 3 << 20).ok());  // not a power of two
  EXPECT_FALSE(numacma::topo::memory_block_ranges({~0ULL >> 4}, bs).ok());  // beyond 64 bits
}
