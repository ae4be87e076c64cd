// Fuzz every sysfs parser, and the proc tables vfio bind reads
// (src/vfio/in_use.hpp), with the same bytes: none may crash, hang or
// return a value that breaks its own contract.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "topology/topology.hpp"
#include "vfio/in_use.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace numacma::topo;
  const std::string_view s(reinterpret_cast<const char*>(data), size);
  if (auto c = parse_cpulist(s); c.ok()) {
    for (std::size_t i = 1; i < c->size(); ++i)
      if ((*c)[i - 1] >= (*c)[i]) std::abort();  // sorted and unique
  }
  if (auto d = parse_distance_row(s); d.ok()) {
    for (int v : *d)
      if (v < 0 || v > 255) std::abort();
  }
  (void)parse_node_meminfo(s);
  if (auto n = parse_numa_node(s); n.ok() && *n < -1) std::abort();
  (void)parse_u64(s);
  if (auto h = parse_hugepage_dir(s); h.ok() && *h == 0) std::abort();
  if (auto l = parse_link_name(s); l.ok() && (l->empty() || l->find('/') != std::string::npos))
    std::abort();
  if (auto g = parse_iommu_group(s); g.ok() && *g < 0) std::abort();
  if (auto b = parse_bdf(s); b.ok() && (b->size() != 12 || parse_bdf(*b).value() != *b)) std::abort();
  namespace vfio = numacma::vfio;
  if (auto m = vfio::parse_mountinfo(s); m.ok())
    for (const vfio::MountEntry& e : *m)
      if (e.dev.find(':') == std::string::npos) std::abort();
  (void)vfio::parse_swaps(s);
  for (auto r : {vfio::parse_route(s), vfio::parse_ipv6_route(s)})
    if (r.ok())
      for (const vfio::RouteEntry& e : *r)
        if (e.dest.empty() || e.ifname.empty()) std::abort();
  if (std::string h = vfio::nvme_head_of(s); !h.empty() && (h.size() >= s.size() || h.rfind("nvme", 0) != 0))
    std::abort();
  return 0;
}
