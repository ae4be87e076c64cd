// tools/numacma/cli_util.hpp — small helpers shared by the commands: sizes
// in human units, aligned text tables, and the usage/failure exits.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "numacma/numacma.hpp"

namespace numacma::cli {

/** Sizes in IEC units, as every table and message shows them (bytes stay
 *  in JSON): 1048576 -> "1 MiB", 65536 -> "64 KiB", 0 -> "0 B", 512 -> "512 B";
 *  a size that is not whole in its unit gets one decimal: 12345 -> "12.1 KiB". */
std::string human_size(std::uint64_t bytes);
/** human_size of that many 4 KiB pages (the areas' unit). */
std::string human_pages(std::uint64_t pages);

/** "0x1f000". */
std::string hex(std::uint64_t v);

/** {0,1,2,3,8} -> "0-3,8"; {} -> "-". */
std::string cpulist_text(const std::vector<int>& cpus);

/** A text table: header row, then rows; columns padded to their widest cell. */
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  /** The table as text, one line per row, each ending in '\n'. */
  std::string str() const;
  void print(std::FILE* out = stdout) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

/** Bad usage (a value CLI11 cannot judge): message on stderr, exit code 2. */
void usage_error(const std::string& command, const std::string& message);
/** The operation failed: message on stderr, exit code 1. */
void failure(const std::string& command, const std::string& message);

/** CLI11 validator for --policy. */
inline const CLI::IsMember& policy_names() {
  static const CLI::IsMember v({"kernel", "nearest"});
  return v;
}

/** --iommu auto | iommufd | type1 | noiommu (PoolOptions::iommu) on `sub`,
 *  with its help. */
CLI::Option* add_iommu_option(CLI::App* sub, std::string& value);
/** What every report of a pool in VFIO's no-IOMMU mode says (one line). */
inline constexpr const char* kNoIommuWarning =
    "UNSAFE: VFIO no-IOMMU mode: no IOMMU isolates the devices, which can read and write all of memory; "
    "their DMA addresses are physical";
/** The Iommu an --iommu value names (auto: Iommu::automatic). */
Iommu iommu_of(const std::string& name);

}  // namespace numacma::cli
