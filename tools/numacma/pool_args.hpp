// tools/numacma/pool_args.hpp — the options that build a Pool, shared by
// `replay`, `demo` and `bench`: --sysfs-root --params --backing --policy
// --device-area NAME:NODE:SIZE --order-per-bit --compact --vfio BDF --pool NAME.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "numacma/numacma.hpp"

namespace numacma::cli {

struct PoolArgs {
  std::string sysfs_root = "/sys";
  std::string params;
  std::string backing = "auto";
  std::string policy = "kernel";
  std::vector<std::string> device_areas;
  unsigned order_per_bit = 0;
  bool compact = false;  ///< compact each node before taking its hugepages
  std::string arch;  ///< "" = this machine's
  std::string kernel = "6.12";    ///< --kernel: whose per-NUMA CMA rules
  bool cma_size_pernuma = false;  ///< --cma-size-pernuma (7.2's CONFIG_CMA_SIZE_PERNUMA)
  std::vector<std::string> vfio;  ///< BDFs bound to vfio-pci: the pool runs in vfio mode
  std::string iommu = "auto";     ///< --iommu auto|iommufd|type1 (vfio mode)
  /** --pool NAME: attach to that reservation (numacma reserve) instead of
   *  building a private pool; its own parameters and backing apply. */
  std::string pool_name;
  /** The --sysfs-root option (add_pool_options): whether it was given. With
   *  --pool the reservation's own root applies, and another is refused. */
  const CLI::Option* sysfs_root_option = nullptr;
};

/** "NAME:NODE:SIZE" (NODE may be -1, SIZE takes K/M/G suffixes; NAME may be
 *  a BDF, "0000:81:00.0:2:64M", as the last two colons split) -> the spec;
 *  invalid_argument quoting the text otherwise. Pure: also parses the
 *  device_area= lines of a reserve config (reserve_config.hpp). */
Result<DeviceAreaSpec> parse_device_area(std::string_view spec);

/** --kernel 6.12|7.2 and --cma-size-pernuma (also used by `plan`). */
void add_kernel_options(CLI::App* sub, std::string& kernel, bool& cma_size_pernuma);

/** Adds the options to `sub`, with `backing` as the default backing. */
void add_pool_options(CLI::App* sub, PoolArgs& args, const std::string& default_backing);

/** PoolArgs -> PoolOptions; a malformed --device-area or --vfio BDF (or one
 *  given twice) is invalid_argument. Each --vfio device gets a 64-bit mask. */
Result<PoolOptions> to_pool_options(const PoolArgs& args);

/** Builds the pool that the options describe. On failure reports it for
 *  `command` (exit code 2 for bad options, 1 when the pool cannot be built)
 *  and returns nothing. A fixture (--sysfs-root other than /sys) makes
 *  backing auto mean sim and refuses a real backing (exit 2); with --pool,
 *  a --sysfs-root other than the reservation's is refused (exit 2). */
std::optional<Pool> create_pool(const std::string& command, const PoolArgs& args);

/** Prints the stats as tables (areas, then per-node counters). */
void print_stats_tables(const Pool& pool);

}  // namespace numacma::cli
