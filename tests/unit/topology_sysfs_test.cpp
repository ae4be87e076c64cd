// Topology from the fixture trees (tests/data) and from this host's /sys.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "topology/topology.hpp"

using numacma::topo::Topology;
namespace fs = std::filesystem;

namespace {
std::string fixture(const char* n) { return std::string(NUMACMA_TEST_DATA) + "/" + n; }
Topology load(const char* n) {
  auto t = Topology::from_sysfs(fixture(n));
  EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().message);
  return std::move(t).value();
}
}  // namespace

TEST(TopologySysfs, Arm64FourNodes) {
  Topology t = load("arm64-4n");
  ASSERT_EQ(t.nodes().size(), 4u);
  EXPECT_EQ(t.node(2)->cpus.front(), 64);
  EXPECT_EQ(t.node(2)->cpus.size(), 32u);
  EXPECT_EQ(t.node(3)->mem.total_bytes, 64ULL << 30);
  EXPECT_EQ(t.node(1)->free_hugepages(2 << 20), 1024u);
  EXPECT_EQ(t.node(1)->free_hugepages(1 << 30), 0u);
  EXPECT_EQ(t.distance(0, 3), 22);
  EXPECT_EQ(t.distance(1, 3), 24);
  EXPECT_EQ(t.nodes_by_distance(2), (std::vector<int>{3, 0, 1}));
  EXPECT_EQ(t.nodes_by_distance(1), (std::vector<int>{0, 2, 3}));
  EXPECT_EQ(t.first_memory_node(), 0);
  ASSERT_NE(t.pci("0000:80:00.0"), nullptr);
  EXPECT_EQ(t.pci("0000:80:00.0")->numa_node, 2);
  EXPECT_EQ(t.pci("0000:80:00.0")->class_code, 0x080600u);
  EXPECT_EQ(t.pci("0000:bd:00.0")->numa_node, 3);
  EXPECT_EQ(t.pci("0000:ff:00.0"), nullptr);
}

TEST(TopologySysfs, EpycEightNodesTiesBreakByLowerId) {
  Topology t = load("epyc-8n");
  ASSERT_EQ(t.nodes().size(), 8u);
  EXPECT_EQ(t.nodes_by_distance(5), (std::vector<int>{4, 6, 7, 0, 1, 2, 3}));
  EXPECT_EQ(t.nodes_by_distance(0), (std::vector<int>{1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(t.node(7)->free_hugepages(2 << 20), 0u);
  EXPECT_EQ(t.distance(2, 6), 32);
}

TEST(TopologySysfs, TwoSocketAndMemoryless) {
  Topology x = load("x86-2s");
  EXPECT_EQ(x.node(1)->cpus.size(), 48u);
  EXPECT_EQ(x.node(1)->free_hugepages(1 << 30), 2u);
  EXPECT_EQ(x.pci("0000:00:1f.0")->numa_node, -1);
  Topology m = load("memless-3n");
  EXPECT_FALSE(m.node(2)->has_memory);
  EXPECT_TRUE(m.node(1)->has_memory);
  EXPECT_EQ(m.nodes_by_distance(0), (std::vector<int>{1}));  // node 2 has no memory
  EXPECT_EQ(m.nodes_by_distance(2), (std::vector<int>{0, 1}));
  Topology v = load("vm1");
  EXPECT_EQ(v.nodes().size(), 1u);
  EXPECT_EQ(v.nodes_by_distance(0), std::vector<int>{});
  EXPECT_EQ(v.max_node_id(), 0);
}

TEST(TopologySysfs, ThisHostLoads) {
  auto t = Topology::from_sysfs("/sys");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_GE(t->nodes().size(), 1u);
  EXPECT_GE(t->first_memory_node(), 0);
}

TEST(TopologySysfs, ErrorsNameTheFile) {
  auto missing = Topology::from_sysfs("/nonexistent/root");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent/root"), std::string::npos);
  const fs::path tmp = fs::temp_directory_path() / ("numacma-topo-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  // copy_symlinks: the trees hold links (iommu_group, driver) that lead back
  // into the tree; following them would copy forever.
  fs::copy(fixture("arm64-4n"), tmp, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  const fs::path bad = tmp / "devices/system/node/node1/distance";
  std::ofstream(bad) << "10 12 x 24\n";
  auto t = Topology::from_sysfs(tmp.string());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find("node1/distance"), std::string::npos) << t.error().message;
  std::ofstream(bad) << "10 12\n";  // too short for 4 online nodes
  EXPECT_FALSE(Topology::from_sysfs(tmp.string()).ok());
  std::ofstream(bad) << "12 10 22 24\n";
  std::ofstream(tmp / "bus/pci/devices/0000:80:00.0/numa_node") << "two\n";
  auto p = Topology::from_sysfs(tmp.string());
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("0000:80:00.0/numa_node"), std::string::npos);
  fs::remove_all(tmp);
}

TEST(TopologySysfs, IommuGroupsAndDriversFromTheLinks) {
  Topology x = load("x86-2s");
  EXPECT_EQ(x.pci("0000:17:00.0")->iommu_group, 13);
  EXPECT_EQ(x.pci("0000:17:00.0")->driver, "nvme");
  EXPECT_EQ(x.pci("0000:98:00.0")->iommu_group, 48);
  EXPECT_EQ(x.pci("0000:98:00.0")->driver, "ice");
  EXPECT_EQ(x.pci("0000:98:00.1")->iommu_group, 48);
  EXPECT_EQ(x.pci("0000:98:00.1")->driver, "vfio-pci");
  EXPECT_EQ(x.pci("0000:00:00.0")->iommu_group, 0);  // group 0 is a group
  EXPECT_EQ(x.pci("0000:00:00.0")->driver, "");      // no driver bound
  Topology a = load("arm64-4n");
  EXPECT_EQ(a.pci("0000:80:00.0")->iommu_group, -1);  // neither link
  EXPECT_EQ(a.pci("0000:80:00.0")->driver, "");
  EXPECT_EQ(a.pci("0000:00:00.0")->driver, "pcieport");
  EXPECT_EQ(a.pci("0000:bd:00.0")->iommu_group, 6);
  Topology v = load("vm1");  // no IOMMU: drivers but no groups
  for (const auto& d : v.pci_devices()) EXPECT_EQ(d.iommu_group, -1) << d.bdf;
  EXPECT_EQ(v.pci("0000:00:01.0")->driver, "virtio-pci");
  EXPECT_EQ(v.pci("0000:00:00.0")->driver, "");
}

TEST(TopologySysfs, OneDeviceAlone) {
  auto d = numacma::topo::read_pci_device(fixture("x86-2s"), "0000:98:00.1");
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->numa_node, 1);
  EXPECT_EQ(d->class_code, 0x020000u);
  EXPECT_EQ(d->iommu_group, 48);
  EXPECT_EQ(d->driver, "vfio-pci");
  auto none = numacma::topo::read_pci_device(fixture("x86-2s"), "0000:99:00.0");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, numacma::Errc::not_found);
  EXPECT_NE(none.error().message.find("x86-2s/bus/pci/devices/0000:99:00.0"), std::string::npos)
      << none.error().message;
}

TEST(TopologySysfs, MalformedLinksNameTheFile) {
  const fs::path tmp = fs::temp_directory_path() / ("numacma-links-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::copy(fixture("x86-2s"), tmp, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  const fs::path dev = tmp / "bus/pci/devices/0000:17:00.0";
  ASSERT_TRUE(Topology::from_sysfs(tmp.string()).ok());
  fs::remove(dev / "iommu_group");
  fs::create_symlink("../../../../kernel/iommu_groups/seven", dev / "iommu_group");
  auto t = Topology::from_sysfs(tmp.string());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find("0000:17:00.0/iommu_group"), std::string::npos) << t.error().message;
  EXPECT_NE(t.error().message.find("seven"), std::string::npos) << t.error().message;
  // A plain file where the kernel makes a link is not a link: an error too.
  fs::remove(dev / "iommu_group");
  std::ofstream(dev / "iommu_group") << "7\n";
  auto f = Topology::from_sysfs(tmp.string());
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error().message.find("0000:17:00.0/iommu_group"), std::string::npos) << f.error().message;
  fs::remove(dev / "iommu_group");  // absent again: no group, no error
  fs::remove(dev / "driver");
  fs::create_symlink("../../../../bus/pci/drivers/..", dev / "driver");  // no driver's name at the end
  fs::create_symlink("../../../../kernel/iommu_groups/13", dev / "iommu_group");
  auto d = Topology::from_sysfs(tmp.string());
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("0000:17:00.0/driver"), std::string::npos) << d.error().message;
  fs::remove(dev / "driver");
  auto ok = Topology::from_sysfs(tmp.string());
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->pci("0000:17:00.0")->driver, "");
  EXPECT_EQ(ok->pci("0000:17:00.0")->iommu_group, 13);
  fs::remove_all(tmp);
}

TEST(TopologySysfs, MemoryBlocksGiveEachNodeItsPhysicalRanges) {
  // A copy of vm1 with memory blocks as a kernel with memory hotplug shows
  // them: block_size_bytes in hex without 0x, node0/memory<M> entries.
  const fs::path tmp = fs::temp_directory_path() / ("numacma-blocks-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::copy(fixture("vm1"), tmp, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  EXPECT_TRUE(load("vm1").node(0)->ranges.empty());  // no blocks: no ranges
  fs::create_directories(tmp / "devices/system/memory");
  std::ofstream(tmp / "devices/system/memory/block_size_bytes") << "8000000\n";  // 128 MiB
  for (int m : {0, 1, 2, 8, 9}) fs::create_directories(tmp / ("devices/system/node/node0/memory" + std::to_string(m)));
  auto t = Topology::from_sysfs(tmp.string());
  ASSERT_TRUE(t.ok()) << t.error().message;
  const auto& r = t->node(0)->ranges;
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0], (numacma::topo::MemRange{0, 3ULL << 27}));
  EXPECT_EQ(r[1], (numacma::topo::MemRange{8ULL << 27, 10ULL << 27}));
  std::ofstream(tmp / "devices/system/memory/block_size_bytes") << "zz\n";
  auto bad = Topology::from_sysfs(tmp.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("block_size_bytes"), std::string::npos) << bad.error().message;
  fs::remove_all(tmp);
}
