// src/topology/topology.cpp — Topology from a sysfs root (reads through src/os).
//
//   <root>/devices/system/node/{online,has_memory,node<N>/...}
//   <root>/bus/pci/devices/<bdf>/{numa_node,vendor,device,class}
//   <root>/bus/pci/devices/<bdf>/{iommu_group,driver}   (symbolic links)
//   <root>/kernel/iommu_groups/<group>/name              ("vfio-noiommu")
//   <root>/module/vfio/parameters/enable_unsafe_noiommu_mode
//
// Required: node/online. Optional (absent is fine, malformed is an error that
// names the file): has_memory, per-node cpulist/distance/meminfo/hugepages,
// every PCI file and link.
#include <algorithm>

#include "os/os.hpp"
#include "topology/topology.hpp"

namespace numacma::topo {

namespace {

Error in_file(const std::string& path, const Error& e) {
  return make_error(e.code, path + ": " + e.message);
}

/** The file's text, or "" with *present = false when it does not exist. */
Result<std::string> read_optional(const std::string& path, bool* present) {
  *present = os::exists(path);
  if (!*present) return std::string();
  return os::read_file(path);
}

/** The name a link points to (its target's last component), or "" when the
 *  link does not exist. */
Result<std::string> read_optional_link(const std::string& path, bool* present) {
  Result<std::string> target = os::read_link(path);
  *present = target.ok();
  if (!target) {
    if (target.error().code == Errc::not_found) return std::string();
    return target.error();
  }
  return target;
}

}  // namespace

Result<PciDevice> read_pci_device(const std::string& root, std::string_view bdf) {
  PciDevice d;
  d.bdf = std::string(bdf);
  const std::string dir = root + "/bus/pci/devices/" + d.bdf;
  if (!os::exists(dir))
    return make_error(Errc::not_found, "no PCI device " + d.bdf + ": " + dir + " does not exist");
  bool present = false;
  Result<std::string> text = read_optional(dir + "/numa_node", &present);
  if (!text) return text.error();
  if (present) {
    Result<int> node = parse_numa_node(*text);
    if (!node) return in_file(dir + "/numa_node", node.error());
    d.numa_node = *node;
  }
  for (auto [file, field] : {std::pair{"/vendor", &d.vendor}, std::pair{"/device", &d.device},
                             std::pair{"/class", &d.class_code}}) {
    text = read_optional(dir + file, &present);
    if (!text) return text.error();
    if (!present) continue;
    Result<std::uint64_t> v = parse_u64(*text);
    if (!v || *v > 0xffffffffULL)
      return make_error(Errc::invalid_argument, dir + file + ": not a 32-bit hex value");
    *field = static_cast<std::uint32_t>(*v);
  }
  // Links: the kernel makes iommu_group only when an IOMMU translates for the
  // device, and driver only while a driver is bound.
  Result<std::string> target = read_optional_link(dir + "/iommu_group", &present);
  if (!target) return target.error();
  if (present) {
    Result<int> group = parse_iommu_group(*target);
    if (!group) return in_file(dir + "/iommu_group", group.error());
    d.iommu_group = *group;
    // VFIO names the groups it makes for devices without an IOMMU (the kernel's
    // drivers/vfio/group.c); an IOMMU's own groups have no name.
    Result<std::string> name =
        read_optional(root + "/kernel/iommu_groups/" + std::to_string(d.iommu_group) + "/name", &present);
    if (!name) return name.error();
    d.noiommu_group = present && name->rfind("vfio-noiommu", 0) == 0;
  }
  target = read_optional_link(dir + "/driver", &present);
  if (!target) return target.error();
  if (present) {
    Result<std::string> name = parse_link_name(*target);
    if (!name) return in_file(dir + "/driver", name.error());
    d.driver = std::move(*name);
  }
  return d;
}

std::uint64_t NodeInfo::free_hugepages(std::uint64_t page_bytes) const noexcept {
  for (const HugePages& h : hugepages)
    if (h.page_bytes == page_bytes) return h.free;
  return 0;
}

Result<Topology> Topology::from_sysfs(const std::string& root) {
  const std::string nroot = root + "/devices/system/node";
  Result<std::string> online_text = os::read_file(nroot + "/online");
  if (!online_text)
    return make_error(online_text.error().code,
                      "not a sysfs tree with NUMA nodes: " + online_text.error().message);
  Result<std::vector<int>> online = parse_cpulist(*online_text);
  if (!online) return in_file(nroot + "/online", online.error());

  bool present = false;
  Result<std::string> hm_text = read_optional(nroot + "/has_memory", &present);
  if (!hm_text) return hm_text.error();
  std::vector<int> has_memory;
  const bool hm_present = present;
  if (present) {
    Result<std::vector<int>> hm = parse_cpulist(*hm_text);
    if (!hm) return in_file(nroot + "/has_memory", hm.error());
    has_memory = std::move(*hm);
  }

  // Memory blocks (optional): the block size, then each node's memory<M> entries.
  std::uint64_t block_size = 0;
  {
    const std::string bpath = root + "/devices/system/memory/block_size_bytes";
    Result<std::string> b = read_optional(bpath, &present);
    if (!b) return b.error();
    if (present) {
      std::string hex(*b);
      while (!hex.empty() && (hex.back() == '\n' || hex.back() == ' ')) hex.pop_back();
      Result<std::uint64_t> v = parse_u64(hex.rfind("0x", 0) == 0 ? hex : "0x" + hex);
      if (!v || *v == 0 || (*v & (*v - 1)) != 0)
        return make_error(Errc::invalid_argument, bpath + ": '" + hex + "' is not a power-of-two size in hex");
      block_size = *v;
    }
  }

  Topology t;
  t.root_ = root;
  std::vector<std::vector<int>> rows;
  for (int id : *online) {
    NodeInfo n;
    n.id = id;
    const std::string dir = nroot + "/node" + std::to_string(id);
    Result<std::string> text = read_optional(dir + "/cpulist", &present);
    if (!text) return text.error();
    if (present) {
      Result<std::vector<int>> cpus = parse_cpulist(*text);
      if (!cpus) return in_file(dir + "/cpulist", cpus.error());
      n.cpus = std::move(*cpus);
    }
    text = read_optional(dir + "/meminfo", &present);
    if (!text) return text.error();
    if (present) {
      Result<MemInfo> mem = parse_node_meminfo(*text);
      if (!mem) return in_file(dir + "/meminfo", mem.error());
      n.mem = *mem;
    }
    n.has_memory = hm_present ? std::binary_search(has_memory.begin(), has_memory.end(), id)
                              : n.mem.total_bytes > 0;
    text = read_optional(dir + "/distance", &present);
    if (!text) return text.error();
    std::vector<int> row;
    if (present) {
      Result<std::vector<int>> r = parse_distance_row(*text);
      if (!r) return in_file(dir + "/distance", r.error());
      if (r->size() != online->size())
        return make_error(Errc::invalid_argument,
                          dir + "/distance: " + std::to_string(r->size()) + " entries for " +
                              std::to_string(online->size()) + " online nodes");
      row = std::move(*r);
    }
    rows.push_back(std::move(row));
    const std::string hdir = dir + "/hugepages";
    if (os::exists(hdir)) {
      Result<std::vector<std::string>> names = os::list_dir(hdir);
      if (!names) return names.error();
      for (const std::string& name : *names) {
        Result<std::uint64_t> size = parse_hugepage_dir(name);
        if (!size) continue;  // not a hugepages-<n>kB entry
        HugePages h;
        h.page_bytes = *size;
        for (auto [file, field] : {std::pair{"/nr_hugepages", &h.total}, std::pair{"/free_hugepages", &h.free}}) {
          const std::string path = hdir + "/" + name + file;
          Result<std::string> v = read_optional(path, &present);
          if (!v) return v.error();
          if (!present) continue;
          Result<std::uint64_t> num = parse_u64(*v);
          if (!num) return in_file(path, num.error());
          *field = *num;
        }
        n.hugepages.push_back(h);
      }
      std::sort(n.hugepages.begin(), n.hugepages.end(),
                [](const HugePages& a, const HugePages& b) { return a.page_bytes < b.page_bytes; });
    }
    if (block_size != 0) {
      Result<std::vector<std::string>> names = os::list_dir(dir);
      if (!names) return names.error();
      std::vector<std::uint64_t> blocks;
      for (const std::string& name : *names)
        if (Result<std::uint64_t> idx = parse_memory_block_name(name)) blocks.push_back(*idx);
      Result<std::vector<MemRange>> ranges = memory_block_ranges(std::move(blocks), block_size);
      if (!ranges) return in_file(dir, ranges.error());
      n.ranges = std::move(*ranges);
    }
    t.nodes_.push_back(std::move(n));
  }
  // Missing rows: 10 local, 20 remote (what the kernel assumes without a SLIT).
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].empty()) {
      rows[i].assign(rows.size(), 20);
      rows[i][i] = 10;
    }
  }
  t.dist_ = std::move(rows);

  const std::string proot = root + "/bus/pci/devices";
  if (os::exists(proot)) {
    Result<std::vector<std::string>> bdfs = os::list_dir(proot);
    if (!bdfs) return bdfs.error();
    for (const std::string& bdf : *bdfs) {
      Result<PciDevice> d = read_pci_device(root, bdf);
      if (!d) return d.error();
      t.pci_.push_back(std::move(*d));
    }
  }
  Result<NoIommuMode> mode = read_noiommu_mode(root);
  if (!mode) return mode.error();
  t.noiommu_mode_ = *mode;
  return t;
}

Result<Topology::NoIommuMode> read_noiommu_mode(const std::string& root) {
  bool present = false;
  Result<std::string> mode = read_optional(root + "/module/vfio/parameters/enable_unsafe_noiommu_mode", &present);
  if (!mode) return mode.error();
  if (!present) return Topology::NoIommuMode::absent;
  return !mode->empty() && ((*mode)[0] == 'Y' || (*mode)[0] == '1') ? Topology::NoIommuMode::on
                                                                     : Topology::NoIommuMode::off;
}

Topology Topology::from_parts(std::vector<NodeInfo> nodes, std::vector<std::vector<int>> distances,
                              std::vector<PciDevice> pci) {
  Topology t;
  t.root_ = "(by hand)";
  std::sort(nodes.begin(), nodes.end(), [](const NodeInfo& a, const NodeInfo& b) { return a.id < b.id; });
  t.nodes_ = std::move(nodes);
  const std::size_t n = t.nodes_.size();
  if (distances.size() != n ||
      std::any_of(distances.begin(), distances.end(), [&](const auto& r) { return r.size() != n; })) {
    distances.assign(n, std::vector<int>(n, 20));
    for (std::size_t i = 0; i < n; ++i) distances[i][i] = 10;
  }
  t.dist_ = std::move(distances);
  t.pci_ = std::move(pci);
  return t;
}

const NodeInfo* Topology::node(int id) const noexcept {
  auto it = std::lower_bound(nodes_.begin(), nodes_.end(), id,
                             [](const NodeInfo& n, int v) { return n.id < v; });
  return it != nodes_.end() && it->id == id ? &*it : nullptr;
}

int Topology::distance(int a, int b) const noexcept {
  const NodeInfo* na = node(a);
  const NodeInfo* nb = node(b);
  if (na == nullptr || nb == nullptr) return -1;
  return dist_[static_cast<std::size_t>(na - nodes_.data())][static_cast<std::size_t>(nb - nodes_.data())];
}

std::vector<int> Topology::nodes_by_distance(int from) const {
  std::vector<int> out;
  if (node(from) == nullptr) return out;
  for (const NodeInfo& n : nodes_)
    if (n.id != from && n.has_memory) out.push_back(n.id);
  std::stable_sort(out.begin(), out.end(), [&](int a, int b) {
    const int da = distance(from, a), db = distance(from, b);
    return da != db ? da < db : a < b;
  });
  return out;
}

int Topology::first_memory_node() const noexcept {
  for (const NodeInfo& n : nodes_)
    if (n.has_memory) return n.id;
  return -1;
}

int Topology::max_node_id() const noexcept { return nodes_.empty() ? -1 : nodes_.back().id; }

const PciDevice* Topology::pci(std::string_view bdf) const noexcept {
  for (const PciDevice& d : pci_)
    if (d.bdf == bdf) return &d;
  return nullptr;
}

}  // namespace numacma::topo
