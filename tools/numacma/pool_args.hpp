// tools/numacma/pool_args.hpp — the options that build a Pool, shared by
// `replay`, `demo` and `bench`: --sysfs-root --params --backing --policy
// --device-area NAME:NODE:SIZE --order-per-bit --compact --vfio BDF.
#pragma once

#include <optional>
#include <string>
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
  std::vector<std::string> vfio;  ///< BDFs bound to vfio-pci: the pool runs in vfio mode
};

/** Adds the options to `sub`, with `backing` as the default backing. */
void add_pool_options(CLI::App* sub, PoolArgs& args, const std::string& default_backing);

/** PoolArgs -> PoolOptions; a malformed --device-area or --vfio BDF (or one
 *  given twice) is invalid_argument. Each --vfio device gets a 64-bit mask. */
Result<PoolOptions> to_pool_options(const PoolArgs& args);

/** Builds the pool that the options describe. On failure reports it for
 *  `command` (exit code 2 for bad options, 1 when the pool cannot be built)
 *  and returns nothing. */
std::optional<Pool> create_pool(const std::string& command, const PoolArgs& args);

/** Prints the stats as tables (areas, then per-node counters). */
void print_stats_tables(const Pool& pool);

}  // namespace numacma::cli
