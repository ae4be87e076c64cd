// src/topology/topology.hpp — NUMA nodes, distances and PCI devices, read
// from a sysfs root directory (default "/sys"; tests point it at a fixture
// tree under tests/data/).
//
//   <root>/devices/system/node/online              "0-3"
//   <root>/devices/system/node/has_memory          "0-3"  (absent: = online)
//   <root>/devices/system/node/node<N>/cpulist     "0-15,64-79"
//   <root>/devices/system/node/node<N>/distance    "10 12 20 22"
//   <root>/devices/system/node/node<N>/meminfo     "Node 0 MemTotal: 131072 kB" ...
//   <root>/devices/system/node/node<N>/hugepages/hugepages-<K>kB/{nr,free}_hugepages
//   <root>/devices/system/node/node<N>/memory<M>   (memory blocks, optional)
//   <root>/devices/system/memory/block_size_bytes  "8000000" (hex, optional)
//   <root>/bus/pci/devices/<bdf>/{numa_node,vendor,device,class}
//   <root>/bus/pci/devices/<bdf>/iommu_group -> ../../../kernel/iommu_groups/7
//   <root>/bus/pci/devices/<bdf>/driver      -> ../../../bus/pci/drivers/nvme
//
// The parsers below take text and never touch files, so they are fuzzed on
// their own; Topology::from_sysfs reads the files through src/os and hands the
// text to them. A missing optional file (hugepages, has_memory, PCI) is not an
// error; a malformed one is, naming the file.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "numacma/result.hpp"

namespace numacma::topo {

// ---- pure parsers -------------------------------------------------------

/** A physical memory range [start, end). */
struct MemRange {
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  bool operator==(const MemRange&) const = default;
};


/** "0-3,8,10-11\n" -> {0,1,2,3,8,10,11}; "" or "\n" -> {}. Sorted, unique.
 *  Rejects reversed ranges, junk, and ids above 1 << 20. */
Result<std::vector<int>> parse_cpulist(std::string_view text);

/** "10 21 21\n" -> {10,21,21}. Each value 0..255. */
Result<std::vector<int>> parse_distance_row(std::string_view text);

struct MemInfo {
  std::uint64_t total_bytes = 0;
  std::uint64_t free_bytes = 0;
};
/** Node meminfo ("Node 0 MemTotal:   1048576 kB" lines). MemTotal required. */
Result<MemInfo> parse_node_meminfo(std::string_view text);

/** "-1\n" or "2\n" -> the int. */
Result<int> parse_numa_node(std::string_view text);

/** Decimal or 0x-hex unsigned integer, surrounding whitespace allowed. */
Result<std::uint64_t> parse_u64(std::string_view text);

/** "memory42" -> 42 (a memory block's index); not_found for other names. */
Result<std::uint64_t> parse_memory_block_name(std::string_view name);

/** Memory block indices and the block size into sorted, merged ranges.
 *  Rejects a block size that is 0 or not a power of two, and an index whose
 *  range does not fit in 64 bits. */
Result<std::vector<MemRange>> memory_block_ranges(std::vector<std::uint64_t> indices,
                                                  std::uint64_t block_size);

/** "hugepages-2048kB" -> 2097152 bytes. */
Result<std::uint64_t> parse_hugepage_dir(std::string_view name);

/** A sysfs link target's last component, the name it links to:
 *  "../../../bus/pci/drivers/nvme" -> "nvme". Rejects an empty name, "."
 *  and "..", and names with whitespace or control characters (a driver name
 *  is written back to sysfs and kept one a line). */
Result<std::string> parse_link_name(std::string_view target);

/** The iommu_group link's target -> the group number:
 *  "../../../kernel/iommu_groups/7" -> 7. */
Result<int> parse_iommu_group(std::string_view target);

/** A PCI address -> the form sysfs names it by, lowercase "DDDD:BB:DD.F"
 *  (domain, bus, device 0-1f, function 0-7; hex in either case). The short
 *  "BB:DD.F" that lspci prints means domain 0000. Every BDF that enters
 *  numacma (CLI, PoolOptions::vfio, Device::from_pci, vfio bind) goes
 *  through this one function. Anything else is invalid_argument saying the
 *  forms. */
Result<std::string> parse_bdf(std::string_view text);

// ---- the topology --------------------------------------------------------

struct HugePages {
  std::uint64_t page_bytes = 0;  ///< 2 MiB, 1 GiB
  std::uint64_t total = 0;
  std::uint64_t free = 0;
};

struct NodeInfo {
  int id = 0;
  bool has_memory = false;
  std::vector<int> cpus;
  MemInfo mem;
  /** The node's physical memory, from its memory blocks
   *  (node<N>/memory<M> x devices/system/memory/block_size_bytes), sorted
   *  and merged; empty when the tree has no memory blocks. */
  std::vector<MemRange> ranges;
  std::vector<HugePages> hugepages;  ///< sorted by page_bytes
  /** Free hugepages of that size (0 when the size is absent). */
  std::uint64_t free_hugepages(std::uint64_t page_bytes) const noexcept;
};

struct PciDevice {
  std::string bdf;               ///< "0000:81:00.0"
  int numa_node = -1;            ///< -1: the device has no node
  std::uint32_t vendor = 0;
  std::uint32_t device = 0;
  std::uint32_t class_code = 0;
  int iommu_group = -1;          ///< -1: no group (no IOMMU, or it is off)
  /** The group is VFIO's no-IOMMU group (<root>/kernel/iommu_groups/<g>/name
   *  is "vfio-noiommu"): vfio-pci made it because no IOMMU translates for the
   *  device; its node is /dev/vfio/noiommu-<g>. */
  bool noiommu_group = false;
  std::string driver;            ///< the bound driver ("nvme", "vfio-pci"); "" when none
};

/** One device's files under <root>/bus/pci/devices/<bdf>: not_found naming
 *  the directory when it is absent; absent files keep their defaults; a
 *  malformed file or link is an error naming it. */
Result<PciDevice> read_pci_device(const std::string& root, std::string_view bdf);

class Topology {
 public:
  /** Reads the tree under root. Fails when node/online is missing or any
   *  present file is malformed (the message names the file). */
  static Result<Topology> from_sysfs(const std::string& root = "/sys");

  /** Builds one by hand (tests, the sim): distances[i][j] between nodes[i]
   *  and nodes[j]; empty distances means 10 local and 20 remote. */
  static Topology from_parts(std::vector<NodeInfo> nodes,
                             std::vector<std::vector<int>> distances,
                             std::vector<PciDevice> pci = {});

  /** Online nodes, sorted by id. */
  const std::vector<NodeInfo>& nodes() const noexcept { return nodes_; }
  /** nullptr when the node is not online. */
  const NodeInfo* node(int id) const noexcept;
  bool is_online(int id) const noexcept { return node(id) != nullptr; }
  /** Distance from a to b (10 = local); -1 when either is not online. */
  int distance(int a, int b) const noexcept;
  /** The other online nodes with memory, by increasing distance from `from`,
   *  ties broken by lower id (docs/semantics.md A5, policy=nearest). */
  std::vector<int> nodes_by_distance(int from) const;
  /** First online node with memory, -1 when none (docs/semantics.md R5). */
  int first_memory_node() const noexcept;
  int max_node_id() const noexcept;

  const std::vector<PciDevice>& pci_devices() const noexcept { return pci_; }
  /** nullptr when no such device. */
  const PciDevice* pci(std::string_view bdf) const noexcept;

  const std::string& root() const noexcept { return root_; }

  /** VFIO's no-IOMMU mode (<root>/module/vfio/parameters/
   *  enable_unsafe_noiommu_mode): on, off, or absent (vfio not loaded, or
   *  built without CONFIG_VFIO_NOIOMMU). */
  enum class NoIommuMode { absent, off, on };
  NoIommuMode vfio_noiommu_mode() const noexcept { return noiommu_mode_; }

 private:
  std::string root_;
  NoIommuMode noiommu_mode_ = NoIommuMode::absent;
  std::vector<NodeInfo> nodes_;
  std::vector<std::vector<int>> dist_;  // indexed by position in nodes_
  std::vector<PciDevice> pci_;
};

/** vfio's enable_unsafe_noiommu_mode under <root>/module/vfio/parameters
 *  (Topology::vfio_noiommu_mode reads it so); an unreadable present file is an error. */
Result<Topology::NoIommuMode> read_noiommu_mode(const std::string& root);

}  // namespace numacma::topo
