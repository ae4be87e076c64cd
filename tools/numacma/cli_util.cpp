// tools/numacma/cli_util.cpp — see cli_util.hpp.
#include "cli_util.hpp"

#include <algorithm>

#include "commands.hpp"

namespace numacma::cli {

std::string human_size(std::uint64_t bytes) {
  static const char* const kUnits[] = {"", "K", "M", "G", "T", "P", "E"};
  int u = 0;
  while (bytes != 0 && bytes % 1024 == 0 && u < 6) {
    bytes /= 1024;
    ++u;
  }
  return std::to_string(bytes) + kUnits[u];
}

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

}  // namespace numacma::cli
