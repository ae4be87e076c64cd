// src/shared/testing.hpp — what the tests of shared pools look at beneath the
// API (an attached pool's state mapping, its invariants). Not for users.
#pragma once

#include <cstddef>
#include <utility>

#include "core/records.hpp"
#include "numacma/numacma.hpp"

namespace numacma::shared {

/** Every area's invariants (core::verify), each under its lock, with the
 *  holder table's attached and reap-pending slots as the holders. */
Status verify_for_testing(const Pool& attached);

/** The attached pool's mapping of the state file: what any admitted process
 *  can write, so what a hostile one would. {nullptr, 0} for a private pool. */
std::pair<unsigned char*, std::size_t> state_for_testing(const Pool& attached);

/** Area i's lock word and records in that mapping (nullptr / empty when
 *  there is no such area). */
std::uint32_t* lock_word_for_testing(const Pool& attached, std::uint32_t area);
core::Records records_for_testing(const Pool& attached, std::uint32_t area);

/** The keeper's pid, as it wrote it into the state (0: unknown). */
int keeper_pid_for_testing(const Pool& attached);

}  // namespace numacma::shared
