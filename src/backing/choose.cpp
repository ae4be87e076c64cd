// src/backing/choose.cpp — which backing a sysfs root allows (backing.hpp).
// Pure logic: the decision is made from the text of the root alone, so that
// a fixture is recognised before anything is mapped, bound or read.
#include <filesystem>

#include "backing/backing.hpp"

namespace numacma::backing {

bool is_host_sysfs(std::string_view sysfs_root) {
  // lexically_normal folds "//sys/./" and a trailing slash; it reads nothing.
  std::string norm = std::filesystem::path(std::string(sysfs_root)).lexically_normal().string();
  while (norm.size() > 1 && norm.back() == '/') norm.pop_back();
  if (norm.rfind("//", 0) == 0) norm.erase(0, 1);  // POSIX keeps a leading "//"; Linux treats it as "/"
  return norm == "/sys";
}

Result<std::string> backing_for_root(std::string_view asked, std::string_view sysfs_root) {
  const std::string kind(asked);
  if (is_host_sysfs(sysfs_root)) return kind;
  if (kind == "auto" || kind == "sim") return std::string("sim");
  if (kind == "anon" || kind == "hugetlb" || kind == "hugetlb-2M" || kind == "hugetlb-1G")
    return make_error(Errc::invalid_argument,
                      "backing '" + kind + "' with sysfs root '" + std::string(sysfs_root) +
                          "': a tree other than /sys is a fixture, not this machine, and " + kind +
                          " memory would be this machine's, on nodes the fixture only describes; "
                          "use backing sim (or auto, which means sim over a fixture)");
  return kind;  // unknown: make_backing names the valid ones
}

}  // namespace numacma::backing
