// tools/numacma/cli_util.cpp — see cli_util.hpp.
#include "cli_util.hpp"

#include <algorithm>

#include "commands.hpp"

namespace numacma::cli {

std::string human_size(std::uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (u < 6 && (bytes >> (10 * (u + 1))) != 0) ++u;  // the largest unit not above the size
  const std::uint64_t unit = std::uint64_t{1} << (10 * u);
  if (bytes % unit == 0) return std::to_string(bytes / unit) + " " + kUnits[u];
  // Not whole: one decimal, as ls -h and numfmt --to=iec-i show it.
  char buf[32];
  const double v = static_cast<double>(bytes) / static_cast<double>(unit);
  if (v >= 1023.95 && u < 6) {
    std::snprintf(buf, sizeof buf, "%.1f %s", v / 1024, kUnits[u + 1]);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  }
  return buf;
}

std::string human_pages(std::uint64_t pages) { return human_size(pages * 4096); }

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string cpulist_text(const std::vector<int>& cpus) {
  std::string out;
  for (std::size_t i = 0; i < cpus.size();) {
    std::size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += std::to_string(cpus[i]);
    if (j > i) out += "-" + std::to_string(cpus[j]);
    i = j + 1;
  }
  return out.empty() ? "-" : out;
}

// Defined here rather than in main.cpp so that the pure helpers (and the
// renderers built on them) link into unit tests without the CLI's main.
int& exit_code() {
  static int code = 0;
  return code;
}

std::string Table::str() const {
  std::vector<std::size_t> width;
  for (const auto& r : rows_) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string text;
  for (const auto& r : rows_) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    text += line + "\n";
  }
  return text;
}

void Table::print(std::FILE* out) const { std::fputs(str().c_str(), out); }

void usage_error(const std::string& command, const std::string& message) {
  std::fprintf(stderr, "numacma %s: %s\n", command.c_str(), message.c_str());
  exit_code() = 2;
}

void failure(const std::string& command, const std::string& message) {
  std::fprintf(stderr, "numacma %s: %s\n", command.c_str(), message.c_str());
  exit_code() = 1;
}

CLI::Option* add_iommu_option(CLI::App* sub, std::string& value) {
  return sub
      ->add_option("--iommu", value,
                   "with VFIO devices: auto | iommufd | type1 | noiommu, the kernel interface (auto: iommufd "
                   "when /dev/iommu and the devices' cdevs exist, else the type1 container). noiommu: VFIO's "
                   "no-IOMMU mode for a device no IOMMU translates for, UNSAFE (the device can write "
                   "anywhere in memory): physical addresses, hugetlb backing, root; never chosen by auto")
      ->check(CLI::IsMember({"auto", "iommufd", "type1", "noiommu"}));
}

Iommu iommu_of(const std::string& name) {
  if (name == "iommufd") return Iommu::iommufd;
  if (name == "type1") return Iommu::type1;
  if (name == "noiommu") return Iommu::noiommu;
  return Iommu::automatic;
}

}  // namespace numacma::cli
