// src/shared/status.hpp — a reservation's status from a copy of its state
// (status.cpp; the fuzz target feeds it damaged copies).
#pragma once

#include <string_view>
#include <vector>

#include "numacma/shared.hpp"
#include "shared/layout.hpp"

namespace numacma::shared {

/** PoolStatus from a validated layout and a private copy of the state file,
 *  read as hostile input (never out of bounds, whatever the copy holds). */
Result<PoolStatus> read_status(std::string_view name, const Layout& l, std::vector<unsigned char> state);

}  // namespace numacma::shared
