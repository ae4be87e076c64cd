// tools/numacma/pool_args.cpp — see pool_args.hpp.
#include "pool_args.hpp"

#include <cstdio>

#include "cli_util.hpp"
#include "config/params.hpp"
#include "topology/topology.hpp"

namespace numacma::cli {

void add_pool_options(CLI::App* sub, PoolArgs& a, const std::string& default_backing) {
  a.backing = default_backing;
  a.sysfs_root_option =
      sub->add_option("--sysfs-root", a.sysfs_root,
                      "sysfs root to read (default /sys; another tree is a fixture: simulated memory)");
  sub->add_option("--backing", a.backing, "auto | hugetlb | hugetlb-1G | anon | sim (default " + default_backing + ")")
      ->check(CLI::IsMember({"auto", "hugetlb", "hugetlb-1G", "anon", "sim"}));
  sub->add_option("--policy", a.policy, "kernel | nearest (default kernel)")->check(policy_names());
  sub->add_option("--device-area", a.device_areas,
                  "NAME:NODE:SIZE, a device's own exclusive area (repeatable)");
  sub->add_option("--order-per-bit", a.order_per_bit, "pages per bitmap bit, as a power of 2")
      ->check(CLI::Range(0u, 9u));
  sub->add_flag("--compact", a.compact,
                "compact each node (sysfs nodeN/compact) before taking its hugepages (hugetlb, auto)");
  sub->add_option("--arch", a.arch,
                  "x86_64 | arm64: whose placement rules the plan and the sim follow (default: this machine's)")
      ->check(CLI::IsMember({"x86_64", "arm64"}));
  add_kernel_options(sub, a.kernel, a.cma_size_pernuma);
  sub->add_option("--vfio", a.vfio,
                  "BDF (DDDD:BB:DD.F, or BB:DD.F for domain 0000) of a device bound to vfio-pci: the "
                  "pool maps its areas into the device's IOMMU container and DMA addresses are IOVAs "
                  "(repeatable)");
  add_iommu_option(sub, a.iommu);
  sub->add_option("--pool", a.pool_name,
                  "attach to the reservation NAME (numacma reserve) instead of reserving a private "
                  "pool: its parameters, backing and policy apply");
}

void add_kernel_options(CLI::App* sub, std::string& kernel, bool& cma_size_pernuma) {
  sub->add_option("--kernel", kernel,
                  "6.12 | 7.2: whose per-NUMA CMA rules (default 6.12: pernuma<N> and numa<N>; 7.2: one "
                  "numa<N> per node)")
      ->check(CLI::IsMember({"6.12", "7.2"}));
  sub->add_flag("--cma-size-pernuma", cma_size_pernuma,
                "with --kernel 7.2: its CONFIG_CMA_SIZE_PERNUMA (no cma_pernuma= nor numa_cma= and more than "
                "one node: every node gets an area of the default area's size)");
}

Result<DeviceAreaSpec> parse_device_area(std::string_view text) {
  // From the right: NAME may hold colons itself (a BDF, "0000:81:00.0").
  const std::string spec(text);
  const auto c2 = spec.rfind(':');
  const auto c1 = c2 == std::string::npos || c2 == 0 ? std::string::npos : spec.rfind(':', c2 - 1);
  if (c1 == std::string::npos || c1 == 0)
    return make_error(Errc::invalid_argument, "'" + spec + "': expected NAME:NODE:SIZE");
  DeviceAreaSpec d;
  d.device = spec.substr(0, c1);
  const std::string node = spec.substr(c1 + 1, c2 - c1 - 1);
  try {
    std::size_t used = 0;
    d.node = std::stoi(node, &used);
    if (used != node.size() || d.node < -1) throw std::invalid_argument(node);
  } catch (const std::exception&) {
    return make_error(Errc::invalid_argument, "'" + spec + "': bad node '" + node + "'");
  }
  Result<std::uint64_t> size = config::parse_size(spec.substr(c2 + 1));
  if (!size) return make_error(Errc::invalid_argument, "'" + spec + "': " + size.error().message);
  d.bytes = *size;
  return d;
}

Result<PoolOptions> to_pool_options(const PoolArgs& a) {
  PoolOptions o;
  o.params = a.params;
  o.backing = a.backing;
  o.policy = a.policy == "nearest" ? Policy::nearest : Policy::kernel;
  o.sysfs_root = a.sysfs_root;
  o.order_per_bit = a.order_per_bit;
  o.compact = a.compact;
  o.arch = a.arch == "arm64" ? Arch::arm64 : a.arch == "x86_64" ? Arch::x86_64 : Arch::host;
  o.kernel = a.kernel == "7.2" ? Kernel::v7_2 : Kernel::v6_12;
  o.cma_size_pernuma = a.cma_size_pernuma;
  o.iommu = iommu_of(a.iommu);
  for (const std::string& spec : a.device_areas) {
    Result<DeviceAreaSpec> d = parse_device_area(spec);
    if (!d) return make_error(Errc::invalid_argument, "--device-area " + d.error().message);
    o.device_areas.push_back(std::move(*d));
  }
  for (const std::string& text : a.vfio) {
    Result<std::string> bdf = topo::parse_bdf(text);
    if (!bdf) return make_error(Errc::invalid_argument, "--vfio: " + bdf.error().message);
    for (const VfioDeviceSpec& v : o.vfio)
      if (v.bdf == *bdf) return make_error(Errc::invalid_argument, "--vfio " + *bdf + " given twice");
    o.vfio.push_back(VfioDeviceSpec{*bdf, ~std::uint64_t{0}});
  }
  return o;
}

std::optional<Pool> create_pool(const std::string& command, const PoolArgs& args) {
  if (!args.pool_name.empty()) {
    if (!args.vfio.empty()) {
      usage_error(command, "--pool and --vfio: an attached pool has no VFIO container of its own");
      return std::nullopt;
    }
    Result<Pool> pool = Pool::attach(args.pool_name);
    if (!pool) {
      failure(command, pool.error().message);
      return std::nullopt;
    }
    if (args.sysfs_root_option != nullptr && args.sysfs_root_option->count() > 0 &&
        args.sysfs_root != pool->sysfs_root()) {
      usage_error(command, "--sysfs-root " + args.sysfs_root + ": reservation '" + args.pool_name +
                               "' was made over " + pool->sysfs_root() +
                               ", and its topology is that one (leave --sysfs-root out)");
      return std::nullopt;
    }
    return std::move(*pool);
  }
  Result<PoolOptions> opts = to_pool_options(args);
  if (!opts) {
    usage_error(command, opts.error().message);
    return std::nullopt;
  }
  Result<Pool> pool = Pool::create(*opts);
  if (!pool) {
    if (pool.error().code == Errc::invalid_argument)
      usage_error(command, pool.error().message);
    else
      failure(command, pool.error().message);
    return std::nullopt;
  }
  return std::move(*pool);
}

void print_stats_tables(const Pool& pool) {
  const Stats st = pool.stats();
  const VfioReport vfio = pool.vfio_report();
  std::printf("areas (dma mode %s%s, addresses %s, policy %s)\n", pool.dma_mode().c_str(),
              vfio.enabled && !vfio.unsafe ? (" over " + vfio.iommu).c_str() : "",
              address_kind_name(pool.address_kind()), pool.policy() == Policy::nearest ? "nearest" : "kernel");
  if (vfio.unsafe) std::printf("%s\n", kNoIommuWarning);
  // Sizes, not page counts: maxchunk is the largest free run; alloc_ok,
  // alloc_fail and released are the kernel's CMA counters, as amounts.
  Table areas({"area", "kind", "node", "backing", "base_dma", "size", "used", "maxchunk", "segs",
               "longest_seg", "alloc_ok", "alloc_fail", "released"});
  for (const AreaReport& a : st.areas)
    areas.add({a.name, a.kind, std::to_string(a.node), a.backing, hex(a.base_dma), human_pages(a.pages),
               human_pages(a.used), human_pages(a.maxchunk), std::to_string(a.segments),
               human_pages(a.longest_segment), human_pages(a.alloc_pages_success),
               human_pages(a.alloc_pages_fail), human_pages(a.release_pages_success)});
  areas.print();
  std::printf("\nper requesting node (allocations)\n");
  Table nodes({"node", "local", "other_node", "default", "pages", "failed"});
  for (const NodeReport& n : st.nodes)
    nodes.add({std::to_string(n.node), std::to_string(n.local), std::to_string(n.other_node),
               std::to_string(n.default_area), std::to_string(n.pages), std::to_string(n.failed)});
  nodes.print();
  for (const ReservationNote& n : pool.reservation_notes())
    std::printf("note: %s (node %d): %s\n", n.area.c_str(), n.node, n.message.c_str());
  if (st.bad_frees != 0) std::printf("bad frees detected: %llu\n", (unsigned long long)st.bad_frees);
}

}  // namespace numacma::cli
