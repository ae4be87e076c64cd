// src/os/dir_names.hpp — the names in an open directory stream (files.cpp's
// list_dir and dirs.cpp's list_at read them the same way). Internal to src/os.
#pragma once

#include <dirent.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace numacma::os {

/** Every name but "." and "..", sorted; closes the stream. */
inline std::vector<std::string> read_names(DIR* d) {
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    names.emplace_back(e->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace numacma::os
