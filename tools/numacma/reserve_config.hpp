// tools/numacma/reserve_config.hpp — the file of `numacma reserve NAME
// --config FILE` (packaging/systemd/example.conf), parsed without touching
// the file system:
//
//   # a comment: '#' to the end of the line
//   params=cma=64M cma_pernuma=16M        required by reserve; the kernel's syntax
//   backing=hugetlb                       auto | hugetlb | hugetlb-1G | anon | sim
//   group=dpdk                            its members may attach (name or number)
//   policy=nearest                        kernel | nearest
//   order_per_bit=0                       0..9
//   compact=yes                           yes|no, true|false, on|off, 1|0
//   device_area=0000:81:00.0:2:64M        NAME:NODE:SIZE, one per line, repeatable
//
// One KEY=VALUE a line, blanks around either ignored, every key but
// device_area at most once. Errors name the line: "line 3: unknown key ...".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "numacma/shared.hpp"

namespace numacma::cli {

struct ReserveConfig {
  /** The file's values over ReserveOptions' defaults. */
  ReserveOptions options;
  /** The keys the file set, in file order (device_area once per line), so
   *  that the command can tell a default from a value the file gave. */
  std::vector<std::string> keys;
};

/** The keys a reserve config may hold, in the order the docs list them. */
const std::vector<std::string>& reserve_config_keys();

/** Parses the text of a config file. invalid_argument naming the line for a
 *  line that is not KEY=VALUE, an unknown key, a key given twice, an empty
 *  value, or a bad value (params are checked with the kernel syntax). */
Result<ReserveConfig> parse_reserve_config(std::string_view text);

}  // namespace numacma::cli
