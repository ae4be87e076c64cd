// The VFIO checks' shared helpers (vfio_checks.cpp) and the checks of
// vfio_errors.cpp, for numacma-vmcheck's vfio-* dispatcher (run_vfio_check).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "numacma/numacma.hpp"

namespace vmcheck::vfio {

std::uint64_t mask_of(int bits);
/** The pool with `vfio` attached, or nullopt after a FAIL line. */
std::optional<numacma::Pool> make_pool(const std::string& params, const std::string& backing,
                                       std::vector<numacma::VfioDeviceSpec> vfio);
/** What the shell command prints on stdout. */
std::string run(const std::string& cmd);

int check_errors(const std::string& nvme, const std::string& edu);
int check_bench(const std::string& bdf, int node);

}  // namespace vmcheck::vfio
